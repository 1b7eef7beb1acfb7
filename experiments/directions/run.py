"""Every direction method on every bundled model, measured the same way.

For each model and method (SeFa, GANSpace PCA, InterFaceGAN SVM on the area attribute,
Jacobian global), `steer walk --method M` finds the directions in a child process (its wall
time, the method's own seconds and the child's peak resident memory are recorded), then each
component walk is swept over alpha = -2..2 (alpha = 1: one standard deviation of the sampled
latents along the direction) on the same latents, and on the walked images we measure

  every attribute the model's data has (shapes: area, centre x/y, luminance; digits: ink
  area, ink centre x/y, slant), as its change per unit alpha in units of the real data's
  interquartile range, with a 95 % bootstrap interval over latents;
  class recognition by the bundled classifier (shapes or digits), at alpha 0 and +-2;
  the Frechet distance to real data in the classifier's features at alpha 0 and +-2.

Unsupervised directions do not know the attribute, so each attribute is matched to the
component whose alpha explains its change best (|correlation| of alpha with the per-latent
change, the match score), and "explained" is the cross-validated R^2 of the attribute over
fresh latents regressed on their coordinates along the top k components. Leakage of a
matched direction: the largest change of another attribute, in data IQRs per unit alpha,
and the change in recognition from alpha 0 to +-2.

    python experiments/directions/run.py                      # every bundled model, 4 methods
    python experiments/directions/run.py --models dcgan-mnist --methods sefa,pca
    python experiments/directions/run.py --table              # only the table from results.json

Runs go to runs/directions/; results.json, table.md and matches.png here.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
RUNS = Path("runs") / "directions"
MODELS = ("dcgan-shapes32", "dssgan-shapes32", "dcgan-mnist", "dssgan-mnist")
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
# the official checkpoints of the test fixtures: tiny random-weight networks, for time and
# memory per family; their attributes are image statistics measured against their own samples
FIXTURE_MODELS = ("stylegan_xl_official/network-snapshot.pkl", "dssgan_official/generator_full_ema.pt",
                  "stylegan2_ada_official/uncond/network-snapshot-000200.pkl",
                  "stylegan3_official/t/network-snapshot-000160.pkl",
                  "rosinality_stylegan2/040000.pt")
METHODS = ("sefa", "pca", "svm", "jacobian")
ALPHAS = (-2.0, -1.0, 0.0, 1.0, 2.0)
ATTRIBUTES = {"shapes": ("area", "centre_x", "centre_y", "luminance"),
              "mnist": ("ink_area", "ink_centre_x", "ink_centre_y", "slant"),
              None: ("luminance", "colour_r", "colour_g", "colour_b")}
SVM_ATTRIBUTE = {"shapes": "area", "mnist": "ink_area", None: "luminance"}
COMPONENTS = 5
SAMPLES = 200  # latents per sweep
EXPLAIN_SAMPLES = 1000
BOOT = 300

def label(model):
    """A model's name in the table: the bundled name, or the fixture's folder."""
    path = Path(model)
    return str(path.relative_to(FIXTURES).parent) if path.is_absolute() and FIXTURES in path.parents else model


def find(model, method, data):
    """Run `steer walk --method` in a child; (out folder, wall seconds, peak MiB)."""
    import time

    from steer.bench import run_steer_with_peak
    out = RUNS / f"{label(model).replace('/', '-')}-{method}"
    if (out / "directions.json").is_file() and (out / "find.json").is_file():
        return out, json.loads((out / "find.json").read_text())
    args = ["walk", "--method", method, "--model", model, "--out", str(out), "--device", "cpu", "--seed", "0"]
    if method != "svm":
        args += ["--components", str(COMPONENTS)]
    else:
        args += ["--attribute", SVM_ATTRIBUTE[data]]
    started = time.perf_counter()
    print("+ steer", " ".join(args), flush=True)
    _, peak = run_steer_with_peak(args, env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")),
                                  check=True, capture=False)
    record = {"wall_seconds": time.perf_counter() - started, "peak_mib": peak}
    (out / "find.json").write_text(json.dumps(record) + "\n")
    return out, record


def data_spreads(data, estimators, own=None):
    """Each attribute's interquartile range over 1,000 real images of the model's data (for a
    model without known data: over its own samples `own`)."""
    if data is None:
        images, classes = own
    elif data == "mnist":
        from steer.data.mnist import load_mnist
        images, classes, _ = load_mnist("train")
        images, classes = images[:1000], classes[:1000]
    else:
        from steer.data import sample_shapes
        images, attrs = sample_shapes(1000, seed=0)
        classes = attrs["class"]
    spreads = {}
    for name, est in estimators.items():
        v = est(images, classes).double().numpy()
        v = v[np.isfinite(v)]
        spreads[name] = float(np.subtract(*np.percentile(v, [75, 25])))
    return spreads, images


def measure(model, method, out, data):
    from steer import Steering
    from steer.attributes import get_estimator
    from steer.classifier import MNIST_CLASSIFIER, load_classifier
    from steer.metrics import feature_network, frechet_distance
    from steer.stats import slope_with_interval

    estimators = {a: get_estimator(a) for a in ATTRIBUTES[data]}
    component_files = sorted((out / "components").glob("*.safetensors")) or [out / "walk.safetensors"]
    spreads = classifier = None
    if data is not None:
        spreads, real = data_spreads(data, estimators)
        classifier = load_classifier(MNIST_CLASSIFIER if data == "mnist" else "shapes-classifier32")
        features, _ = feature_network(data)
        real_feats = features(real).double().numpy()
    from steer import load_generator
    G = load_generator(model, device="cpu")  # once: every component walk names the same model
    rows = []
    for path in component_files:
        steering, _ = Steering.load(path, model=G)
        classes = torch.arange(SAMPLES) % G.num_classes if G.num_classes else None
        latent, c = steering.sample(SAMPLES, seed=4321, classes=classes)
        if spreads is None:
            with torch.no_grad():
                own = steering.synthesize(latent, c).clamp(-1, 1)
            spreads, _ = data_spreads(None, estimators, (own, c))
        values = {a: [] for a in estimators}
        recognised, fd = [], []
        with torch.no_grad():
            for alpha in ALPHAS:
                images = torch.cat([steering.walked(latent[i:i + 100], None if c is None else c[i:i + 100],
                                                    steering.alpha(alpha, len(latent[i:i + 100])))
                                    for i in range(0, SAMPLES, 100)]).clamp(-1, 1)
                for a, est in estimators.items():
                    values[a].append(est(images, c).double().numpy())
                if c is not None and classifier is not None:
                    recognised.append(float((classifier(images).argmax(1) == c).float().mean()))
                if alpha in (-2.0, 0.0, 2.0) and classifier is not None:
                    fd.append(frechet_distance(features(images).double().numpy(), real_feats))
        row = {"component": int(path.stem) if path.stem.isdigit() else 0, "attributes": {},
               "recognised": recognised, "frechet": dict(zip(("-2", "0", "+2"), fd)) if fd else None}
        x = np.repeat(np.array(ALPHAS), SAMPLES)
        groups = np.tile(np.arange(SAMPLES), len(ALPHAS))
        for a, per_alpha in values.items():
            v = np.stack(per_alpha)  # (alphas, samples)
            change = (v - v[ALPHAS.index(0.0)]) / spreads[a]
            ok = np.isfinite(change.reshape(-1))
            fit = slope_with_interval(x[ok], change.reshape(-1)[ok], groups=groups[ok], n_boot=BOOT, within=False)
            corr = np.corrcoef(x[ok], change.reshape(-1)[ok])[0, 1] if change.reshape(-1)[ok].std() > 0 else 0.0
            row["attributes"][a] = {"per_unit_alpha_iqr": fit.slope, "ci95": [fit.low, fit.high],
                                    "match": float(abs(corr))}
        rows.append(row)
    explained = explained_variance(out, estimators, G)
    return {"spreads": spreads, "components": rows, "explained_r2": explained}


def explained_variance(out, estimators, G):
    """Cross-validated R^2 of each attribute over fresh latents regressed on the latents'
    coordinates along the top components (how much of it the directions span)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import cross_val_score

    from steer import Steering
    files = sorted((out / "components").glob("*.safetensors")) or [out / "walk.safetensors"]
    steerings = [Steering.load(f, model=G)[0] for f in files]
    s0 = steerings[0]
    classes = torch.arange(EXPLAIN_SAMPLES) % G.num_classes if G.num_classes else None
    latent, c = s0.sample(EXPLAIN_SAMPLES, seed=999, classes=classes)
    flat = latent.reshape(len(latent), -1)
    coords = np.stack([(flat @ s.walk.directions[0].detach().reshape(-1)).numpy() for s in steerings], 1)
    with torch.no_grad():
        images = torch.cat([s0.synthesize(latent[i:i + 100], None if c is None else c[i:i + 100])
                            for i in range(0, len(latent), 100)]).clamp(-1, 1)
    result = {}
    for a, est in estimators.items():
        y = est(images, c).double().numpy()
        ok = np.isfinite(y)
        result[a] = float(np.mean(cross_val_score(LinearRegression(), coords[ok], y[ok], cv=5, scoring="r2")))
    return result


def summarise(entry):
    """Per attribute: the best-matched component, its effect, leakage, recognition and FD."""
    out = {}
    comps = entry["components"]
    for a in entry["spreads"]:
        best = max(comps, key=lambda r: r["attributes"][a]["match"])
        others = {b: abs(v["per_unit_alpha_iqr"]) for b, v in best["attributes"].items() if b != a}
        rec = best["recognised"]
        out[a] = {"component": best["component"], "match": best["attributes"][a]["match"],
                  "per_unit_alpha_iqr": best["attributes"][a]["per_unit_alpha_iqr"],
                  "ci95": best["attributes"][a]["ci95"],
                  "leak_max_iqr": max(others.values()), "leak_to": max(others, key=others.get),
                  "recognised_0": rec[ALPHAS.index(0.0)] if rec else None,
                  "recognised_pm2": min(rec[0], rec[-1]) if rec else None,
                  "frechet_0": best["frechet"]["0"] if best["frechet"] else None,
                  "frechet_pm2": max(best["frechet"]["-2"], best["frechet"]["+2"]) if best["frechet"] else None,
                  "explained_r2": entry["explained_r2"][a]}
    return out


def table(results):
    lines = ["| model | method | find s (method s) | peak MiB | attribute | comp | match | per unit alpha, data IQRs "
             "[95% CI] | leak max (to) | recognised 0 / +-2 | FD 0 / +-2 | R2 top-k |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, per_method in results.items():
        for method, entry in per_method.items():
            f = entry["find"]
            first = True
            for a, s in summarise(entry).items():
                head = (f"| {model} | {method} | {f['wall_seconds']:.1f} ({entry['method_seconds']:.3f}) | "
                        f"{f['peak_mib']:.0f} |") if first else "| | | | |"
                first = False
                rec = "-" if s["recognised_0"] is None else f"{s['recognised_0']:.2f} / {s['recognised_pm2']:.2f}"
                fd = "-" if s["frechet_0"] is None else f"{s['frechet_0']:.1f} / {s['frechet_pm2']:.1f}"
                lines.append(f"{head} {a} | {s['component']} | {s['match']:.2f} | {s['per_unit_alpha_iqr']:+.3f} "
                             f"[{s['ci95'][0]:+.3f}, {s['ci95'][1]:+.3f}] | {s['leak_max_iqr']:.3f} ({s['leak_to']}) | "
                             f"{rec} | {fd} | {s['explained_r2']:.2f} |")
    return "\n".join(lines)


def figure(results):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(3.0 * len(results) + 1.5, 3.4), squeeze=False)
    first = list(next(iter(results.values())))
    for k, (ax, (model, per_method)) in enumerate(zip(axes[0], results.items())):
        methods = list(per_method)
        attrs = list(next(iter(per_method.values()))["spreads"])
        grid = np.array([[summarise(per_method[m])[a]["match"] for a in attrs] for m in methods])
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        for i in range(len(methods)):
            for j in range(len(attrs)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="w" if grid[i, j] < 0.6 else "k")
        ax.set_xticks(range(len(attrs)), attrs, rotation=40, ha="right", fontsize=7)
        # the methods run in the same order on every model: named once, on the left
        ax.set_yticks(range(len(methods)), methods if k == 0 or methods != first else [""] * len(methods),
                      fontsize=8)
        ax.set_title(model, fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="match: |corr(alpha, change)|\nof the best component")
    fig.suptitle("each attribute's best-matched direction per method (svm: its one direction, fitted on area, "
                 "ink area or, for the random-weight fixtures, luminance)",
                 fontsize=9)
    fig.savefig(HERE / "matches.png", dpi=120, bbox_inches="tight")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help="bundled names or checkpoint paths, comma-separated; 'fixtures' adds the test fixtures")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--table", action="store_true", help="only print the table from results.json")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    path = HERE / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    if not args.table:
        from steer import load_generator
        from steer.data import training_data
        models = [m for m in args.models.split(",") if m and m != "fixtures"]
        if "fixtures" in args.models.split(","):
            models += [str(FIXTURES / f) for f in FIXTURE_MODELS if (FIXTURES / f).is_file()]
        for model in models:
            data = training_data(load_generator(model, device="cpu"))
            for method in [m for m in args.methods.split(",") if m]:
                out, found = find(model, method, data)
                report = json.loads((out / "directions.json").read_text())["report"]
                entry = measure(model, method, out, data)
                entry.update(find=found, method_seconds=report.get("seconds", float("nan")), data=data)
                results.setdefault(label(model), {})[method] = entry
                path.write_text(json.dumps(results, indent=1) + "\n")
    text = table(results)
    (HERE / "table.md").write_text(text + "\n")
    print(text)
    figure(results)


if __name__ == "__main__":
    main()
