"""Does a walk's reach follow the attribute's spread in the training data?

Generators are trained on shapes data whose object-scale spread we set (four levels from
one fixed size to a 3.2x range of radii, everything else identical), plus one generator
whose scale spread depends on the class (the same four ranges, one per shape). A zoom walk is learned on each, `steer quantify` sweeps it over
a fine alpha grid, and the reach (the furthest zoom, contiguous from 1, at which the walked
median area stays within 25 % of the target's) is compared with the training spread.

    python experiments/steerability_limits/run.py --seeds 0,1,2   # train, walk, quantify, analyse
    python experiments/steerability_limits/run.py --analyse       # only redo the analysis

Each level is trained once per seed (--seeds; the walk uses the generator's seed); the
class-dependent generator once per --class-seeds. Runs live under runs/limits/NAME-sSEED
(checkpoints resume). Each run's summary row is kept in per_seed/ (committed), so seeds
trained in different sessions enter one analysis; the numbers go to results.json and the
figure to reach_vs_spread.png.
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
         "--device", "cpu"]
PER_SEED = HERE / "per_seed"
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


def run_all(seeds, class_seeds):
    RUNS.mkdir(parents=True, exist_ok=True)
    grid = ",".join(f"{a:.6g}" for a in ALPHAS)
    PER_SEED.mkdir(exist_ok=True)
    jobs = [(name, seed) for seed in seeds for name in RATIOS] + [("per_class", seed) for seed in class_seeds]
    for name, seed in jobs:
        run = RUNS / f"{name}-s{seed}"
        run.mkdir(exist_ok=True)
        (run / "shapes.json").write_text(json.dumps(shapes_configs()[name]) + "\n")
        if not (run / "model" / "weights.safetensors").exists():
            sh("steer", "train", "--data", "shapes", "--shapes-config", str(run / "shapes.json"), "--out", str(run),
               *TRAIN, "--seed", str(seed))
        walk = run / "zoom" / "walk.safetensors"
        if not walk.exists():
            sh("steer", "walk", "--model", str(run / "model"), "--edit", "zoom", "--steps", "800",
               "--schedule", "constant", "--seed", str(seed), "--out", str(run / "zoom"))
        targets = [(None, name, RATIOS.get(name), run / "quantify")]
        if name == "per_class":
            targets = [(k, c, r, run / f"quantify_{c}") for k, (c, r) in enumerate(CLASS_RATIOS.items())]
        for k, row_name, ratio, out in targets:
            if not (out / "quantify.json").exists():
                sh("steer", "quantify", "--walk", str(walk), "--model", str(run / "model"), "--alphas", grid,
                   "--samples", str(SAMPLES), "--out", str(out),
                   *([] if k is None else ["--class", str(k)]))
            group = "levels" if k is None else "per_class"
            row = summarise_run(json.loads((out / "quantify.json").read_text()), ratio)
            row.update(group=group, name=row_name, seed=seed)
            (PER_SEED / f"{group}-{row_name}-s{seed}.json").write_text(json.dumps(row, indent=1) + "\n")


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
        # log achieved area on log target area, from quantify (files from before it had none)
        "zoom_slope": (q.get("slope") or {}).get("value"),
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


def load_rows():
    """Every run's summary row in per_seed/ (one per generator seed, and per class)."""
    return [json.loads(f.read_text()) for f in sorted(PER_SEED.glob("*.json"))]


KEYS = ("reach_span_octaves", "achieved_scale_range_octaves", "generated_area_spread_octaves_q10_q90", "zoom_slope")


def aggregate(rows, group, names):
    """Per level (or class): each measure's mean over generator seeds with a t interval."""
    from steer.stats import mean_with_t_interval
    out = {}
    for name in names:
        mine = sorted((r for r in rows if r["group"] == group and r["name"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        entry = {"seeds": [r["seed"] for r in mine], "training_spread_octaves": mine[0]["training_spread_octaves"]}
        for key in KEYS:
            values = [r.get(key) for r in mine if r.get(key) is not None]
            m = mean_with_t_interval(values)
            entry[key] = {"mean": m.mean, "ci95": [m.low, m.high], "per_seed": values}
        out[name] = entry
    return out


def analyse():
    rows = load_rows()
    levels = [r for r in rows if r["group"] == "levels"]
    classes = [r for r in rows if r["group"] == "per_class"]
    seeds = sorted({r["seed"] for r in levels})
    result = {
        "question": "does a zoom walk's reach grow with the object-scale spread of the training data?",
        "setup": {"train": "steer train --data shapes --shapes-config <level> " + " ".join(TRAIN) + " --seed S",
                  "walk": "steer walk --edit zoom --seed S (800 steps, linear, masked L2; S the generator's seed)",
                  "quantify": f"steer quantify --alphas 2^(k/8), k=-16..16 --samples {SAMPLES}",
                  "scale_ranges": {n: c for n, c in shapes_configs().items()},
                  "seeds": seeds,
                  "intervals": "per level: Student t over generator seeds; per run: bootstrap over the "
                               f"{SAMPLES} walked latents ({BOOT} resamples)"},
        "levels": aggregate(rows, "levels", RATIOS), "per_class": aggregate(rows, "per_class", CLASS_RATIOS),
        "rows": rows,
    }

    def spread(rs):
        return [r["training_spread_octaves"] for r in rs]

    keys = ("reach_span_octaves", "achieved_scale_range_octaves")
    means = list(result["levels"].values())
    # n = 4 level means (exact), and every generator seed as its own point (n = 4 x seeds)
    result["correlation_level_means"] = {k: correlation(spread(means), [m[k]["mean"] for m in means]) for k in keys}
    result["correlation_all_seeds"] = {k: correlation(spread(levels), [r[k] for r in levels]) for k in keys}
    result["correlation_levels_and_classes"] = {k: correlation(spread(levels + classes),
                                                               [r[k] for r in levels + classes]) for k in keys}
    result["correlation_with_generated_spread"] = {
        k: correlation([r["generated_area_spread_octaves_q10_q90"] for r in levels + classes],
                       [r[k] for r in levels + classes]) for k in keys}
    (HERE / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    figure(result)
    report(result)


def report(result):
    def cell(m):
        lo, hi = m["ci95"]
        return f"{m['mean']:6.3f} [{lo:6.3f}, {hi:6.3f}]" if lo == lo else f"{m['mean']:6.3f} {'(one seed)':>16}"

    for group in ("levels", "per_class"):
        print(f"{group}: mean over generator seeds [95% t interval]")
        print(f"  {'':9} {'spread':>6} {'seeds':>6}  {'reach span (octaves)':<25} {'moved (octaves)':<25} "
              f"{'G makes (octaves)':<25} zoom slope")
        for name, r in result[group].items():
            slope = r["zoom_slope"]
            print(f"  {name:9} {r['training_spread_octaves']:6.3f} {len(r['seeds']):6d}  {cell(r['reach_span_octaves'])} "
                  f"{cell(r['achieved_scale_range_octaves'])} {cell(r['generated_area_spread_octaves_q10_q90'])} "
                  + (cell(slope) if slope["per_seed"] else "-"))
    for label in ("correlation_level_means", "correlation_all_seeds", "correlation_levels_and_classes",
                  "correlation_with_generated_spread"):
        for key, c in result[label].items():
            p, s = c["pearson"], c["spearman"]
            print(f"{label} {key} (n={c['n']}): Pearson {p['r']:+.3f} p={p['p']:.3g}; "
                  f"Spearman {s['r']:+.3f} p={s['p']:.3g} ({p['p_method']})")


def figure(result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "reach_span_octaves", "reach span log2(high / low), octaves"),
                           (axes[1], "achieved_scale_range_octaves", "scale range the walk moves, octaves")):
        for group, marker, colour, shift in (("levels", "o", "C0", 0.0), ("per_class", "s", "C1", 0.04)):
            rows = [r for r in result["rows"] if r["group"] == group]
            # each generator seed faintly, the mean over seeds with its t interval boldly
            ax.plot([r["training_spread_octaves"] + shift for r in rows], [r[key] for r in rows], marker,
                    color=colour, alpha=0.3, ms=4)
            agg = result[group]
            x = np.array([m["training_spread_octaves"] + shift for m in agg.values()])
            y = np.array([m[key]["mean"] for m in agg.values()])
            ci = np.array([m[key]["ci95"] for m in agg.values()], dtype=float)
            err = np.nan_to_num(np.abs(np.stack([y - ci[:, 0], ci[:, 1] - y])))
            seeds = {len(m["seeds"]) for m in agg.values()}
            n = f"{min(seeds)}" if len(seeds) == 1 else f"{min(seeds)}-{max(seeds)}"
            ax.errorbar(x, y, yerr=err, fmt=marker, color=colour, capsize=3,
                        label=(f"one generator per spread, mean of {n} seeds (95% t interval)" if group == "levels"
                               else f"one generator, per class ({n} seed{'s' if n != '1' else ''})"))
            for name, xi, yi in zip(agg, x, y):
                ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(5, -10 if group == "per_class" else 4),
                            fontsize=7, color=colour)
        c = result["correlation_all_seeds"][key]
        ax.set_title(f"every seed (n={c['n']}): Pearson {c['pearson']['r']:+.2f} p={c['pearson']['p']:.2g}, "
                     f"Spearman {c['spearman']['r']:+.2f} p={c['spearman']['p']:.2g}", fontsize=8)
        ax.set_xlabel("training scale spread log2(max / min radius), octaves")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].plot([0, 1.7], [0, 1.7], "k:", lw=1, label="moves as far as the data spreads")
    axes[0].legend(fontsize=7, loc="upper left")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(HERE / "reach_vs_spread.png", dpi=120)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="generator seeds for the four levels, comma-separated")
    parser.add_argument("--class-seeds", default="0", help="seeds for the class-dependent generator")
    parser.add_argument("--analyse", "--reanalyse", action="store_true",
                        help="only recompute results.json and the figure from the rows in per_seed/")
    args = parser.parse_args()
    if not args.analyse:
        run_all([int(v) for v in args.seeds.split(",") if v.strip()],
                [int(v) for v in args.class_seeds.split(",") if v.strip()])
    analyse()
    sys.exit(0)
