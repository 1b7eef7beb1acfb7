"""Does training G with the walk (and the data augmented by the edit) push a walk's limits out?

Three arms per edit (zoom and shift_x), all from the bundled dcgan-shapes32:

  (a) pretrained: the generator as shipped; a walk learned on it (`steer walk`);
  (b) augmented:  the generator fine-tuned on data augmented by the edit, no walk
                  (`steer finetune --walk-weight 0`), then a walk learned on it (`steer walk`);
  (c) joint:      generator and walk fine-tuned together (`steer finetune`).

(b) and (c) have the same budget (steps, batch, D warm-up, share of edited images). For
each arm: the walk's masked L2 to its target edit per alpha, across and beyond the training
range, beside the zero walk's on the same generator; the reach and the realism along the
walk from `steer quantify` (Frechet distance to the shapes data in the shapes classifier's
features; alpha at the identity is the plain samples).

    python experiments/joint_finetune/run.py             # everything (resumes what is done)
    python experiments/joint_finetune/run.py --analyse   # only the tables and the figure
    python experiments/joint_finetune/run.py --edits shift_x   # one edit (e.g. beside another process)

Runs go to runs/joint/; results.json and walk_error.png to experiments/joint_finetune/.
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = Path("runs/joint")
BASE = "dcgan-shapes32"
FINETUNE = ["--steps", "600", "--warmup-steps", "200", "--batch", "32", "--seed", "0", "--device", "cpu"]
EDITS = {
    "zoom": [0.125, 0.177, 0.25, 0.354, 0.5, 0.707, 1.0, 1.414, 2.0, 2.828, 4.0, 5.657, 8.0],
    "shift_x": [-24.0, -20.0, -16.0, -12.0, -8.0, -4.0, 0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0],
}
TRAINING_RANGE = {"zoom": (0.25, 4.0), "shift_x": (-16.0, 16.0)}
ARMS = ("pretrained", "augmented", "joint")
SAMPLES = 200


def sh(*args):
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def arm_paths(edit, arm):
    """(model, walk file) of one arm."""
    run = RUNS / edit / arm
    if arm == "pretrained":
        return BASE, run / "walk" / "walk.safetensors"
    if arm == "augmented":
        return str(run / "model"), run / "walk" / "walk.safetensors"
    return str(run / "model"), run / "walk.safetensors"


def run_all(edits):
    for edit in edits:
        for arm in ARMS:
            run = RUNS / edit / arm
            model, walk = arm_paths(edit, arm)
            if arm != "pretrained" and not (run / "model" / "weights.safetensors").exists():
                sh("steer", "finetune", "--model", BASE, "--edit", edit, "--out", str(run), *FINETUNE,
                   *(["--walk-weight", "0"] if arm == "augmented" else []))
            if not walk.exists():
                sh("steer", "walk", "--model", model, "--edit", edit, "--steps", "800", "--schedule", "constant",
                   "--seed", "0", "--out", str(walk.parent))
            if not (run / "quantify" / "quantify.json").exists():
                sh("steer", "quantify", "--walk", str(walk), "--model", model, "--samples", str(SAMPLES),
                   "--alphas", ",".join(f"{a:g}" for a in EDITS[edit]), "--out", str(run / "quantify"))


def walk_errors(edit, arm):
    """Masked L2 to the target per alpha for the arm's walk and for the zero walk."""
    import torch

    from steer import load_generator
    from steer.edits import get_edit
    from steer.fit import FitConfig, evaluate_walk
    from steer.walks import LinearWalk, load

    model, walk_path = arm_paths(edit, arm)
    G = load_generator(model, device="cpu")
    walk, _ = load(walk_path)
    e = get_edit(edit)
    zero = LinearWalk(walk.latent_shape, sliders=e.sliders, init_std=0.0)
    config = FitConfig(batch=50, seed=0)
    out = {"walk": [], "zero": []}
    with torch.no_grad():
        for a in EDITS[edit]:
            alpha = torch.full((config.batch,), float(a))
            out["walk"].append(evaluate_walk(G, walk.eval(), e, config, alpha=alpha))
            out["zero"].append(evaluate_walk(G, zero, e, config, alpha=alpha))
    return out


LOOSE = {"zoom": "|walked median - target median| <= 0.5 x |target median|",
         "shift_x": "|walked median - target median| <= 0.1 (of the width)"}


def achieved(walked, target, identity, i, edit):
    import math
    if edit == "zoom":
        return math.log(walked[i] / walked[identity]) / math.log(target[i] / target[identity])
    return (walked[i] - walked[identity]) / (target[i] - target[identity])


def analyse():
    from steer.steerability import reach

    result = {"base": BASE, "finetune": "steer finetune --model dcgan-shapes32 --edit EDIT " + " ".join(FINETUNE),
              "walk": "steer walk --edit EDIT --seed 0 (800 steps, linear, masked L2)",
              "samples": f"{SAMPLES} per alpha for quantify, 200 held-out for the walk error", "edits": {}}
    for edit, alphas in EDITS.items():
        rows = {}
        for arm in ARMS:
            run = RUNS / edit / arm
            q = json.loads((run / "quantify" / "quantify.json").read_text())
            identity = q["alphas"].index(q["identity"])
            lo, hi = TRAINING_RANGE[edit]
            errors = walk_errors(edit, arm)
            inside = [i for i, a in enumerate(alphas) if lo <= a <= hi and a != q["identity"]]
            outside = [i for i, a in enumerate(alphas) if not lo <= a <= hi]
            fd = [r.get("frechet_walked_to_data") for r in q["per_alpha"]]
            walked = [r["walked"]["median"] for r in q["per_alpha"]]
            target = [r["target"]["median"] for r in q["per_alpha"]]
            rows_reach_50 = reach(q["alphas"], walked, target, q["identity"], 0.5 if edit == "zoom" else 0.1,
                                  relative=edit == "zoom")
            rows[arm] = {
                "alphas": alphas, "walk_l2": errors["walk"], "zero_walk_l2": errors["zero"],
                "walk_l2_inside": sum(errors["walk"][i] for i in inside) / len(inside),
                "walk_l2_outside": sum(errors["walk"][i] for i in outside) / len(outside),
                "relative_to_zero_inside": sum(errors["walk"][i] / errors["zero"][i] for i in inside) / len(inside),
                "reach": q.get("follows_target", q["reach"]), "tolerance": q["tolerance"]["rule"],
                "reach_loose": rows_reach_50, "tolerance_loose": LOOSE[edit],
                # how much of the asked change the walk achieves, inside the training range: for zoom
                # log(walked / walked at 1) / log(target / target at 1) of the median area; for shifts
                # (walked - walked at 0) / (target - target at 0) of the median centre
                "achieved_share_inside": sum(achieved(walked, target, identity, i, edit) for i in inside) / len(inside),
                "frechet_plain": fd[identity], "frechet_walked": fd,
                "frechet_walked_inside_mean": sum(fd[i] for i in inside) / len(inside),
                "walked_median": walked, "target_median": target,
            }
        result["edits"][edit] = rows
    (HERE / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    figure(result)
    for edit, rows in result["edits"].items():
        print(f"{edit}:")
        print(f"  {'arm':11} {'L2 in':>8} {'L2 out':>8} {'in/zero':>8} {'achieved':>9} {'reach':>13} "
              f"{'loose reach':>13} {'FD plain':>9} {'FD walked':>10}")
        for arm, r in rows.items():
            strict = f"{r['reach']['low']:.3g}..{r['reach']['high']:.3g}"
            loose = f"{r['reach_loose']['low']:.3g}..{r['reach_loose']['high']:.3g}"
            print(f"  {arm:11} {r['walk_l2_inside']:8.4f} {r['walk_l2_outside']:8.4f} {r['relative_to_zero_inside']:8.3f}"
                  f" {r['achieved_share_inside']:9.3f} {strict:>13} {loose:>13} {r['frechet_plain']:9.2f}"
                  f" {r['frechet_walked_inside_mean']:10.2f}")


def figure(result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for col, (edit, rows) in enumerate(result["edits"].items()):
        lo, hi = TRAINING_RANGE[edit]
        for arm, colour in zip(ARMS, ("C0", "C1", "C2")):
            r = rows[arm]
            axes[0, col].plot(r["alphas"], r["walk_l2"], "o-", color=colour, label=f"{arm} walk", ms=3)
            axes[0, col].plot(r["alphas"], r["zero_walk_l2"], ":", color=colour, lw=1, label=f"{arm} zero walk")
            axes[1, col].plot(r["alphas"], r["walked_median"], "o-", color=colour, label=arm, ms=3)
        axes[1, col].plot(rows["pretrained"]["alphas"], rows["pretrained"]["target_median"], "k--", lw=1,
                          label="target (pretrained)")
        for ax in axes[:, col]:
            ax.axvspan(lo, hi, color="0.9", zorder=0)
            if edit == "zoom":
                ax.set_xscale("log", base=2)
            ax.set_xlabel(f"alpha ({edit}); grey: training range")
            ax.grid(alpha=0.3)
        axes[0, col].set_ylabel("masked L2 to the target edit")
        axes[1, col].set_ylabel("walked median " + ("object area" if edit == "zoom" else "object centre x"))
        axes[0, col].set_title(edit)
    axes[0, 0].legend(fontsize=6)
    axes[1, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "walk_error.png", dpi=110)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyse", action="store_true", help="only recompute results.json and the figure")
    parser.add_argument("--edits", default=",".join(EDITS),
                        help="run these edits only, without the analysis (e.g. one edit per process)")
    args = parser.parse_args()
    if not args.analyse:
        edits = args.edits.split(",")
        run_all(edits)
        if set(edits) != set(EDITS):
            raise SystemExit(0)
    analyse()
