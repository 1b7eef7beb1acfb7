"""Photo inversion on CPU: early stopping against PTI's fixed schedule, by the same code.

For each image (scikit-learn's two sample photos, loaded at run time, and images the model
itself generated) the same inversion runs twice:

- early: stop projecting once the loss has not improved by 0.1 % for 40 steps, and stop
  either phase as soon as the reconstruction reaches the bar (PSNR >= 30 dB by default);
- official: PTI's schedule, every one of 450 projection and 350 tuning steps.

It prints the wall seconds of each, their ratio and the PSNR each reached, per image and in
total. The photos' class is chosen by the class trial (as `steer invert` without --class);
the generated images get their own class.

    python experiments/bench/invert.py [--models dcgan-shapes32,dssgan-shapes32] [--bar 30]
"""
from __future__ import annotations

import argparse
import time

import torch
from PIL import Image, ImageOps

import steer
from steer.data.folder import to_tensor
from steer.invert import InvertConfig, invert


def photos(resolution: int):
    from sklearn.datasets import load_sample_image
    for name in ("china.jpg", "flower.jpg"):
        im = ImageOps.fit(Image.fromarray(load_sample_image(name)), (resolution, resolution), Image.Resampling.LANCZOS)
        yield name, to_tensor(im)[None], None


def generated(G, count: int):
    z, classes = G.sample(count, seed=11)
    with torch.no_grad():
        images = G.synthesize(z, classes)
    for i in range(count):
        yield f"generated #{i}", images[i:i + 1], int(classes[i])


def run(G, image, class_index, config):
    start = time.perf_counter()
    result = invert(G, image, config, class_index=class_index)
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="dcgan-shapes32,dssgan-shapes32")
    parser.add_argument("--bar", type=float, default=30.0, help="reconstruction quality to reach, PSNR in dB")
    parser.add_argument("--generated", type=int, default=2, help="how many generated images per model")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    early = InvertConfig(target_psnr=args.bar)
    official = InvertConfig.official()
    print(f"inversion, CPU {torch.get_num_threads()} thread(s), loss L2 (no LPIPS weights here); bar: PSNR >= {args.bar:g} dB")
    print(f"early:    projection stops after {early.patience} steps without a {early.min_improvement:.1%} gain, "
          f"either phase at the bar (at most {early.project_steps} + {early.tune_steps} steps)")
    print(f"official: {official.project_steps} projection + {official.tune_steps} tuning steps, no stopping; "
          f"tuning lr {official.tune_lr:g} in both")
    for name in args.models.split(","):
        G = steer.load_generator(name, device="cpu")
        print(f"\n{name}")
        print(f"  {'image':<14}{'early s':>9}{'steps':>10}{'PSNR':>7}   {'official s':>10}{'steps':>10}{'PSNR':>7}"
              f"{'ratio':>8}")
        total_early = total_official = 0.0
        reached = []
        for label, image, class_index in list(photos(G.resolution)) + list(generated(G, args.generated)):
            t_early, r_early = run(G, image, class_index, early)
            t_official, r_official = run(G, image, class_index, official)
            total_early += t_early
            total_official += t_official
            reached.append(r_early.tuning.psnr >= args.bar)
            steps = lambda r: f"{r.projection.steps}+{r.tuning.steps}"  # noqa: E731
            print(f"  {label:<14}{t_early:9.1f}{steps(r_early):>10}{r_early.tuning.psnr:7.2f}   {t_official:10.1f}"
                  f"{steps(r_official):>10}{r_official.tuning.psnr:7.2f}{t_official / t_early:7.2f}x", flush=True)
        print(f"  {'total':<14}{total_early:9.1f}{'':>10}{'':>7}   {total_official:10.1f}{'':>10}{'':>7}"
              f"{total_official / total_early:7.2f}x")
        print(f"  early stopping reached the bar on {sum(reached)} of {len(reached)} images")


if __name__ == "__main__":
    main()
