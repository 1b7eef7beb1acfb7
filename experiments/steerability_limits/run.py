"""Does a walk's reach follow the attribute's spread in the training data?

Generators are trained on shapes data whose object-scale spread we set (four levels from
one fixed size to a 3.2x range of radii, everything else identical), plus one generator
whose scale spread depends on the class (the same four ranges, one per shape). A zoom walk is learned on each, `steer quantify` sweeps it over
a fine alpha grid, and the reach (the furthest zoom, contiguous from 1, at which the walked
median area stays within 25 % of the target's) is compared with the training spread.

    python experiments/steerability_limits/run.py            # train, walk, quantify, analyse
    python experiments/steerability_limits/run.py --analyse  # only redo the analysis

Runs live under runs/limits/ (checkpoints resume); the numbers go to
experiments/steerability_limits/results.json and the figure to reach_vs_spread.png.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RUNS = Path("runs/limits")
CENTRE = 0.2  # geometric centre of every scale range (object radius / image width)
RATIOS = {"fixed": 1.0, "narrow": 1.4, "wide": 2.0, "widest": 3.2}
CLASS_RATIOS = {"circle": 1.0, "square": 1.4, "triangle": 2.0, "cross": 3.2}
ALPHAS = [2 ** (k / 8) for k in range(-16, 17)]  # zoom 1/4 .. 4 in eighth-octaves
# 16 px keeps five generators within a CPU afternoon; the EMA ramp keeps 3000 steps from
# averaging in the untrained start
TRAIN = ["--resolution", "16", "--base-channels", "32", "--steps", "3000", "--batch", "32", "--ema-rampup", "0.05",
         "--seed", "0", "--device", "cpu"]
SAMPLES = 200
BOOT = 1000


def scale_range(ratio):
    half = math.sqrt(ratio)
    return [round(CENTRE / half, 4), round(CENTRE * half, 4)]


def shapes_configs():
    configs = {name: {"scale": scale_range(r)} for name, r in RATIOS.items()}
    configs["per_class"] = {"class_scale": {c: scale_range(r) for c, r in CLASS_RATIOS.items()}}
    return configs


def sh(*args):
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def run_all():
    RUNS.mkdir(parents=True, exist_ok=True)
    grid = ",".join(f"{a:.6g}" for a in ALPHAS)
    for name, config in shapes_configs().items():
        run = RUNS / name
        run.mkdir(exist_ok=True)
        (run / "shapes.json").write_text(json.dumps(config) + "\n")
        if not (run / "model" / "weights.safetensors").exists():
            sh("steer", "train", "--data", "shapes", "--shapes-config", str(run / "shapes.json"), "--out", str(run),
               *TRAIN)
        walk = run / "zoom" / "walk.safetensors"
        if not walk.exists():
            sh("steer", "walk", "--model", str(run / "model"), "--edit", "zoom", "--seed", "0", "--out", str(run / "zoom"))
        targets = [(None, run / "quantify")]
        if name == "per_class":
            targets = [(k, run / f"quantify_{c}") for k, c in enumerate(CLASS_RATIOS)]
        for k, out in targets:
            if not (out / "quantify.json").exists():
                sh("steer", "quantify", "--walk", str(walk), "--model", str(run / "model"), "--alphas", grid,
                   "--samples", str(SAMPLES), "--out", str(out),
                   *([] if k is None else ["--class", str(k)]))


def reach_from_values(alphas, walked, target, tolerance):
    """Reach (low, high) from per-sample values, the quantify rule (relative tolerance)."""
    from steer.steerability import reach
    wm = [float(np.nanmedian(w)) for w in walked]
    tm = [float(np.nanmedian(t)) for t in target]
    return reach(alphas, wm, tm, 1.0, tolerance, True)


def summarise_run(q, data_spread):
    """Reach, its bootstrap interval over the sampled latents, and the area range achieved."""
    alphas = q["alphas"]
    walked = np.array([[np.nan if v is None else v for v in row] for row in q["values"]["walked"]])
    target = np.array([[np.nan if v is None else v for v in row] for row in q["values"]["target"]])
    tol = q["tolerance"]["value"]
    r = q.get("follows_target", q["reach"])  # quantify's older rule (files from before kept it as "reach")
    span = math.log2(r["high"] / r["low"])
    rng = np.random.default_rng(0)
    spans = []
    for _ in range(BOOT):
        pick = rng.integers(0, walked.shape[1], walked.shape[1])
        b = reach_from_values(alphas, walked[:, pick], target[:, pick], tol)
        spans.append(math.log2(b["high"] / b["low"]))
    medians = np.nanmedian(walked, axis=1)
    identity = alphas.index(1.0)
    plain = walked[identity][np.isfinite(walked[identity])]
    # the spread the generator itself makes, and the data's, as octaves of scale (sqrt of area)
    generated_spread = 0.5 * math.log2(np.quantile(plain, 0.9) / np.quantile(plain, 0.1))
    data_area_spread = 0.5 * math.log2(q["data"]["q90"] / q["data"]["q10"]) if q.get("data") else None
    return {
        "training_scale_ratio": data_spread,
        "training_spread_octaves": math.log2(data_spread),
        "reach_low": r["low"], "reach_high": r["high"],
        "reach_at_grid_end": [r["low_at_grid_end"], r["high_at_grid_end"]],
        "reach_span_octaves": span,
        "reach_span_ci95": [float(np.quantile(spans, 0.025)), float(np.quantile(spans, 0.975))],
        # how far the walk moves the object's size at all, in octaves of scale (sqrt of area)
        "achieved_scale_range_octaves": 0.5 * math.log2(np.nanmax(medians) / np.nanmin(medians)),
        "median_area_at_identity": float(medians[identity]),
        "median_area_at_alpha_4": float(medians[-1]), "median_area_at_alpha_quarter": float(medians[0]),
        "generated_area_spread_octaves_q10_q90": generated_spread,
        "data_area_spread_octaves_q10_q90": data_area_spread,
        "tolerance_rule": q["tolerance"]["rule"],
    }


def correlation(x, y):
    """Pearson and Spearman coefficients with two-sided permutation p-values, exact (every
    ordering of y) at these few points: the asymptotic tests are wrong at n = 4 (scipy gives
    Spearman p = 0 for a perfect rank order of 4, where 2 of the 24 orderings reach it). Fisher-z
    intervals only from n = 10, where they begin to mean something."""
    from steer.stats import exact_permutation_pvalue
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    out = {"n": n}
    for name, var in (("pearson", 1.0), ("spearman", 1.06)):
        test = exact_permutation_pvalue(x, y, name)
        r = float(test.statistic)
        interval = None
        if n >= 10:
            z, se = math.atanh(max(min(r, 0.999999), -0.999999)), math.sqrt(var / (n - 3))
            interval = [math.tanh(z - 1.96 * se), math.tanh(z + 1.96 * se)]
        out[name] = {"r": r, "p": test.pvalue, "p_method": "exact permutation" if test.exact else
                     f"Monte Carlo permutation ({test.permutations})", "ci95": interval}
    return out


def reanalyse():
    """The correlations again from the per-run rows in results.json (no quantify files needed)."""
    result = json.loads((HERE / "results.json").read_text())
    levels, classes = list(result["levels"].values()), list(result["per_class"].values())

    def xs_ys(rows, key):
        return [r["training_spread_octaves"] for r in rows], [r[key] for r in rows]
    keys = ("reach_span_octaves", "achieved_scale_range_octaves")
    result["correlation_levels"] = {k: correlation(*xs_ys(levels, k)) for k in keys}
    result["correlation_levels_and_classes"] = {k: correlation(*xs_ys(levels + classes, k)) for k in keys}
    result["correlation_with_generated_spread"] = {
        k: correlation([r["generated_area_spread_octaves_q10_q90"] for r in levels + classes],
                       [r[k] for r in levels + classes]) for k in keys}
    (HERE / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    figure(result)
    report(result)


def analyse():
    runs = {}
    for name, ratio in RATIOS.items():
        q = json.loads((RUNS / name / "quantify" / "quantify.json").read_text())
        runs[name] = summarise_run(q, ratio)
    per_class = {}
    for k, (cname, ratio) in enumerate(CLASS_RATIOS.items()):
        q = json.loads((RUNS / "per_class" / f"quantify_{cname}" / "quantify.json").read_text())
        per_class[cname] = summarise_run(q, ratio)

    def xs_ys(rows, key):
        return [r["training_spread_octaves"] for r in rows], [r[key] for r in rows]

    levels, classes = list(runs.values()), list(per_class.values())
    result = {
        "question": "does a zoom walk's reach grow with the object-scale spread of the training data?",
        "setup": {"train": "steer train --data shapes --shapes-config <level> " + " ".join(TRAIN),
                  "walk": "steer walk --edit zoom --seed 0 (800 steps, linear, masked L2)",
                  "quantify": f"steer quantify --alphas 2^(k/8), k=-16..16 --samples {SAMPLES}",
                  "scale_ranges": {n: c for n, c in shapes_configs().items()},
                  "bootstrap": f"{BOOT} resamples of the {SAMPLES} walked latents"},
        "levels": runs, "per_class": per_class,
        "correlation_levels": {k: correlation(*xs_ys(levels, k))
                               for k in ("reach_span_octaves", "achieved_scale_range_octaves")},
        "correlation_levels_and_classes": {k: correlation(*xs_ys(levels + classes, k))
                                           for k in ("reach_span_octaves", "achieved_scale_range_octaves")},
        # the same against the spread each generator actually makes (x: generated area spread)
        "correlation_with_generated_spread": {
            k: correlation([r["generated_area_spread_octaves_q10_q90"] for r in levels + classes],
                           [r[k] for r in levels + classes])
            for k in ("reach_span_octaves", "achieved_scale_range_octaves")},
    }
    (HERE / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    figure(result)
    report(result)


def report(result):
    for group in ("levels", "per_class"):
        print(f"{group}:")
        print(f"  {'':10} {'spread':>7} {'reach':>13} {'span':>6} {'[95% CI]':>14} {'moved':>6} {'G makes':>8}")
        for name, r in result[group].items():
            ci = r["reach_span_ci95"]
            print(f"  {name:10} {r['training_spread_octaves']:7.3f} {r['reach_low']:6.3f}..{r['reach_high']:<6.3f}"
                  f" {r['reach_span_octaves']:6.3f} [{ci[0]:5.3f}, {ci[1]:5.3f}] {r['achieved_scale_range_octaves']:6.3f}"
                  f" {r['generated_area_spread_octaves_q10_q90']:8.3f}")
    for label in ("correlation_levels", "correlation_levels_and_classes", "correlation_with_generated_spread"):
        for key, c in result[label].items():
            p, s = c["pearson"], c["spearman"]
            print(f"{label} {key} (n={c['n']}): Pearson {p['r']:+.3f} p={p['p']:.3g}; "
                  f"Spearman {s['r']:+.3f} p={s['p']:.3g} ({p['p_method']})")


def figure(result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "reach_span_octaves", "reach span log2(high / low)"),
                           (axes[1], "achieved_scale_range_octaves", "scale range the walk moves (octaves)")):
        for group, marker, colour in (("levels", "o", "C0"), ("per_class", "s", "C1")):
            rows = result[group]
            x = [r["training_spread_octaves"] for r in rows.values()]
            y = [r[key] for r in rows.values()]
            if key == "reach_span_octaves":
                err = np.array([[r[key] - r["reach_span_ci95"][0], r["reach_span_ci95"][1] - r[key]]
                                for r in rows.values()]).T
                ax.errorbar(x, y, yerr=np.clip(err, 0, None), fmt=marker, color=colour, capsize=3,
                            label="one generator per spread" if group == "levels" else "one generator, per class")
            else:
                ax.plot(x, y, marker, color=colour)
            for name, xi, yi in zip(rows, x, y):
                ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
        c = result["correlation_levels"][key]
        ax.set_title(f"Pearson {c['pearson']['r']:+.2f}, Spearman {c['spearman']['r']:+.2f} (n={c['n']} levels)",
                     fontsize=9)
        ax.set_xlabel("training scale spread log2(max / min)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].plot([0, 1.7], [0, 1.7], "k:", lw=1, label="moves as far as the data spreads")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "reach_vs_spread.png", dpi=120)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analyse", action="store_true", help="only recompute results.json and the figure")
    parser.add_argument("--reanalyse", action="store_true",
                        help="only recompute the correlations from the rows in results.json")
    args = parser.parse_args()
    if args.reanalyse:
        reanalyse()
        sys.exit(0)
    if not args.analyse:
        run_all()
    analyse()
    sys.exit(0)
