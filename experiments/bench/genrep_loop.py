"""One zoom-walk step on a random BigGAN-deep-128, steer against the loop the steerability
authors wrote for PyTorch (GenRep's utils/biggan_steer_train.py), on the same weights,
measured side by side in one run.

The authors' loop, rebuilt from its published description (not its code):
  * the generator is pytorch_pretrained_biggan's BigGAN-deep, frozen (eval; its weights
    still require grad, as a module fresh from from_pretrained does);
  * each step draws truncated-normal z (the package's truncated_noise_sample, numpy) and
    random one-hot classes, and a zoom per sample: U(0.25, 1) or U(1, 4);
  * the target: G(z) moved to numpy, each image zoomed about its centre on the CPU with an
    affine warp (OpenCV's warpAffine when cv2 is installed, else PIL's affine transform),
    with a mask of the pixels the zoom defines, back to torch;
  * the walk z + log(alpha) w, G again, loss = sum of squared masked differences over the
    mask's non-zero count, Adam on w.
steer's step is `fit_walk` on steer's BigGANDeep holding the same state dict: target and mask
by kornia on the batch, without gradient; the frozen generator; the same loss.

    python experiments/bench/genrep_loop.py --batch 4
    python experiments/bench/genrep_loop.py --batch 16 --threads 2
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import numpy as np
import torch


def zoom_numpy(images: np.ndarray, alphas: np.ndarray):
    """Per image (N, H, W, C) in [-1, 1]: zoomed about the centre, and its mask, on the CPU."""
    n, h, w, c = images.shape
    out, masks = np.empty_like(images), np.empty_like(images)
    try:
        import cv2
    except ImportError:
        cv2 = None
    for i in range(n):
        a = float(alphas[i])
        # output pixel (x, y) reads input ((x - cx) / a + cx, (y - cy) / a + cy)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        if cv2 is not None:
            m = np.array([[a, 0, cx * (1 - a)], [0, a, cy * (1 - a)]], dtype=np.float32)
            out[i] = cv2.warpAffine(images[i], m, (w, h), flags=cv2.INTER_LINEAR).reshape(h, w, c)
            masks[i] = cv2.warpAffine(np.ones_like(images[i]), m, (w, h), flags=cv2.INTER_NEAREST).reshape(h, w, c)
        else:
            from PIL import Image
            coeffs = (1 / a, 0, cx - cx / a, 0, 1 / a, cy - cy / a)
            for ch in range(c):
                plane = Image.fromarray(images[i, :, :, ch].astype(np.float32), mode="F")
                out[i, :, :, ch] = np.asarray(plane.transform((w, h), Image.AFFINE, coeffs, Image.BILINEAR))
                ones = Image.fromarray(np.ones((h, w), np.float32), mode="F")
                masks[i, :, :, ch] = np.asarray(ones.transform((w, h), Image.AFFINE, coeffs, Image.NEAREST))
    return out, masks


def authors_step(G, w, opt, batch, step, truncation=1.0):
    from pytorch_pretrained_biggan import truncated_noise_sample
    rng = np.random.RandomState(step)
    z = torch.from_numpy(truncated_noise_sample(batch_size=batch, truncation=truncation, seed=step))
    labels = torch.zeros(batch, 1000)
    labels[torch.arange(batch), torch.from_numpy(rng.randint(0, 1000, batch))] = 1
    alphas = np.where(rng.rand(batch) < 0.5, rng.uniform(0.25, 1, batch), rng.uniform(1, 4, batch))
    with torch.no_grad():
        source = G(z, labels, truncation).permute(0, 2, 3, 1).numpy()
    target, mask = zoom_numpy(source, alphas)
    target = torch.from_numpy(target).permute(0, 3, 1, 2)
    mask = torch.from_numpy(mask).permute(0, 3, 1, 2)
    walked = G(z + torch.from_numpy(np.log(alphas)).float()[:, None] * w, labels, truncation)
    loss = ((walked * mask - target * mask) ** 2).sum() / torch.count_nonzero(mask)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channel-width", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    from steer.edits import get_edit
    from steer.fit import FitConfig, fit_walk
    from steer.generators.biggan import random_biggan, save_biggan_folder
    from steer.walks import make_walk

    ours = random_biggan(128, args.channel_width, seed=0).eval().requires_grad_(False)
    with tempfile.TemporaryDirectory() as tmp:
        save_biggan_folder(ours, tmp)
        theirs = BigGAN(BigGANConfig.from_json_file(f"{tmp}/config.json"))
        theirs.load_state_dict(torch.load(f"{tmp}/pytorch_model.bin", weights_only=True))
    theirs.eval()
    # the same weights give the same images (truncation 1)
    z, classes = ours.sample(2, seed=0)
    with torch.no_grad():
        diff = (ours.synthesize(z, classes, truncation=1.0) -
                theirs(z, torch.nn.functional.one_hot(classes, 1000).float(), 1.0)).abs().max().item()
    edit = get_edit("zoom")
    w = torch.zeros(1, 128, requires_grad=True)
    opt = torch.optim.Adam([w], lr=1e-3)

    def run_theirs():
        for s in range(args.steps):
            authors_step(theirs, w, opt, args.batch, s)

    def run_ours(steps=args.steps):
        walk = make_walk("linear", edit, (128,), ours.resolution)
        fit_walk(ours, walk, edit, FitConfig(steps=steps, batch=args.batch, lr=1e-3, checkpoint_every=10**9),
                 progress=False)

    authors_step(theirs, w, opt, args.batch, 0)  # warm up both
    run_ours(1)
    times = {"theirs": [], "ours": []}
    for _ in range(args.rounds):  # interleaved, so drift in the machine's load hits both alike
        for name, fn in (("theirs", run_theirs), ("ours", run_ours)):
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) / args.steps)
    t_theirs, t_ours = statistics.median(times["theirs"]), statistics.median(times["ours"])
    warp = "OpenCV warpAffine" if _has_cv2() else "PIL affine (cv2 not installed)"
    print(f"BigGAN-deep-128 (channel width {args.channel_width}, random weights), zoom walk step, batch {args.batch}, "
          f"CPU {torch.get_num_threads()} threads, median of {args.rounds} rounds of {args.steps} steps")
    print(f"    authors' loop (pytorch_pretrained_biggan, numpy targets, {warp}): {t_theirs * 1e3:8.1f} ms/step")
    print(f"    steer fit_walk (kornia targets, frozen G):                       {t_ours * 1e3:8.1f} ms/step")
    print(f"    ratio authors / steer: {t_theirs / t_ours:.2f}x   same weights: max |image difference| {diff:.1e}")
    return t_theirs / t_ours if math.isfinite(t_ours) else None


def _has_cv2() -> bool:
    try:
        import cv2  # noqa: F401
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    main()
