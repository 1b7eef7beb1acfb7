"""InterFaceGAN: a linear boundary in the latent space separating samples by an attribute
(Shen, Gu, Tang & Zhou, CVPR 2020 / TPAMI 2020).

Latents are drawn one per seed and scored: by one of steer's attribute estimators on the
generated image (area, centre_x, colour, slant ...), by the shapes or digit classifier's
probability of a class ("class:NAME"), or from a CSV of seed,score rows a user made. As in
the paper only the top and bottom `share` of the scores are kept, labelled 1 and 0, and a
linear SVM (scikit-learn's LinearSVC) separates them; its unit normal, pointing toward the
high scores, is the direction. A held-out part of the kept samples gives the validation
accuracy.

Conditional manipulation: the normals of other attributes' boundaries (fitted on the same
latents) are projected out, n <- n - N (N'N)^-1 N' n, so moving along n leaves those
attributes' decision values unchanged.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import SteerError
from .common import Directions, direction_space, flat, seed_latents, truncation_kw

MAX_CSV_ROWS = 1_000_000


def read_score_csv(path) -> dict:
    """seed -> score from a CSV of `seed,score` rows (a header row is allowed)."""
    path = Path(path)
    if not path.is_file():
        raise SteerError(f"score file {path} does not exist")
    scores = {}
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(f)):
            if n >= MAX_CSV_ROWS:
                raise SteerError(f"{path} has more than {MAX_CSV_ROWS:,} rows")
            if not row or row[0].strip().startswith("#"):
                continue
            try:
                seed, score = int(row[0]), float(row[1])
            except (ValueError, IndexError):
                if n == 0:
                    continue  # a header
                raise SteerError(f"{path} line {n + 1}: expected seed,score, got {','.join(row)[:60]!r}") from None
            if not math.isfinite(score) or not 0 <= seed < 2 ** 63:
                raise SteerError(f"{path} line {n + 1}: a seed is a whole number >= 0 and a score a finite number")
            scores[seed] = score
    if len(scores) < 4:
        raise SteerError(f"{path} holds {len(scores)} scored seeds: give at least 4")
    return scores


def classifier_scorer(generator, name: str):
    """images -> the bundled shapes or digit classifier's probability of class `name`."""
    import torch.nn.functional as F

    from ..classifier import BUNDLED_CLASSIFIER, MNIST_CLASSIFIER, load_classifier
    from ..data.shapes import SHAPE_CLASSES
    from ..metrics import quality_data
    digits = quality_data(generator) == "mnist"
    names = [str(d) for d in range(10)] if digits else list(SHAPE_CLASSES)
    if name not in names:
        raise SteerError(f"class:{name}: the {'digit' if digits else 'shapes'} classifier knows "
                         f"{', '.join(names)}")
    net = load_classifier(MNIST_CLASSIFIER if digits else BUNDLED_CLASSIFIER, device=generator.device)
    index = names.index(name)

    def score(images, classes=None):
        if images.shape[-1] != 32:
            images = F.interpolate(images, size=(32, 32), mode="area")
        return net(images).softmax(1)[:, index]
    return score


def image_scorer(generator, attribute: str):
    """images, classes -> (N,) scores for an estimator name or class:NAME."""
    if attribute.startswith("class:"):
        return classifier_scorer(generator, attribute[len("class:"):])
    from ..attributes import ESTIMATORS
    if attribute not in ESTIMATORS:
        raise SteerError(f"unknown attribute '{attribute}': give an estimator ({', '.join(ESTIMATORS)}), "
                         "class:NAME or a CSV file of seed,score")
    return ESTIMATORS[attribute]


@torch.no_grad()
def score_seeds(generator, attribute: str, seeds, space: str, truncation=None, batch: int = 64):
    """(latents in `space`, scores) of the seeds' samples: scores measured on the images,
    or read from a CSV (then the seeds are the CSV's)."""
    if str(attribute).endswith(".csv"):
        table = read_score_csv(attribute)
        seeds = sorted(table)
        latents, _ = seed_latents(generator, seeds, space, truncation)
        return latents, torch.tensor([table[s] for s in seeds], dtype=torch.float64), seeds
    scorer = image_scorer(generator, attribute)
    latents, classes = seed_latents(generator, seeds, space, truncation)
    scores = []
    for i in range(0, len(seeds), batch):
        part = None if classes is None else classes[i:i + batch]
        images = generator.synthesize(latents[i:i + batch], part, space, **truncation_kw(truncation))
        scores.append(scorer(images.float(), part).double().cpu())
    return latents, torch.cat(scores), list(seeds)


def fit_boundary(latents, scores, share: float = 0.2, validation: float = 0.3, seed: int = 0, c: float = 1.0):
    """The unit normal (d,) of a LinearSVC between the top and bottom `share` of the scores,
    pointing toward high scores, and a report with its validation accuracy."""
    from sklearn.svm import LinearSVC
    if not 0 < share <= 0.5:
        raise SteerError(f"--share is the fraction kept at each end, in (0, 0.5], got {share:g}")
    x = np.asarray(latents, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    keep = np.isfinite(s)
    x, s = x[keep], s[keep]
    per_side = int(len(s) * share)
    if per_side < 2:
        raise SteerError(f"{len(s)} scored samples keep {per_side} at each end at --share {share:g}: "
                         "give more --samples or a larger --share")
    order = np.argsort(s, kind="stable")
    low, high = order[:per_side], order[-per_side:]
    if s[high].min() <= s[low].max():
        raise SteerError("the top and bottom scores overlap (the attribute barely varies): nothing to separate")
    xs = np.concatenate([x[low], x[high]])
    ys = np.concatenate([np.zeros(per_side), np.ones(per_side)])
    pick = np.random.default_rng(seed).permutation(len(ys))
    n_val = int(round(len(ys) * validation)) if validation > 0 else 0
    val, train = pick[:n_val], pick[n_val:]
    svm = LinearSVC(C=c, max_iter=20000, dual="auto")
    svm.fit(xs[train], ys[train])
    normal = svm.coef_.reshape(-1)
    report = {"kept_per_side": per_side, "scored": int(len(s)), "train_accuracy": float(svm.score(xs[train], ys[train])),
              "validation_accuracy": float(svm.score(xs[val], ys[val])) if n_val else None,
              "validation_samples": int(n_val), "low_scores_below": float(s[low].max()),
              "high_scores_above": float(s[high].min()),
              # how well the boundary ranks every scored sample, not only the kept ends
              "all_samples_correlation": float(np.corrcoef(x @ normal, s)[0, 1])}
    return torch.from_numpy(normal / np.linalg.norm(normal)).float(), report


def project_out(normal: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
    """normal minus its part in the span of the condition normals (rows), renormalised."""
    n, basis = normal.double(), conditions.double().T  # (d,), (d, m)
    moved = n - basis @ torch.linalg.lstsq(basis, n[:, None]).solution[:, 0]
    if not moved.norm() > 1e-6 * n.norm():
        raise SteerError("the boundary lies in the span of the conditions: nothing is left after projecting them out")
    return (moved / moved.norm()).float()


def interfacegan(generator, attribute: str, samples: int = 1000, share: float = 0.2, conditions=(),
                 space: str | None = None, layers=None, seed: int = 0, truncation=None, validation: float = 0.3,
                 condition_vectors=()) -> Directions:
    """The InterFaceGAN direction for `attribute` (see the module's docstring). conditions:
    other attributes (same kinds of source) whose boundaries are projected out;
    condition_vectors: directions (dim,) given directly (e.g. other walks)."""
    where = direction_space(generator, space, layers)
    seeds = range(seed, seed + int(samples))
    latents, scores, used = score_seeds(generator, attribute, seeds, where.sampled_space, truncation)
    x = flat(latents, where).float().cpu()
    normal, report = fit_boundary(x, scores, share, validation, seed)
    report["attribute"] = str(attribute)
    found = []
    for other in conditions:
        if str(other).endswith(".csv") or str(attribute).endswith(".csv"):
            other_latents, other_scores, _ = score_seeds(generator, other, seeds, where.sampled_space, truncation)
            other_x = flat(other_latents, where).float().cpu()
        else:  # the same latents, scored by the other attribute
            other_x, other_scores = x, score_seeds(generator, other, seeds, where.sampled_space, truncation)[1]
        other_normal, other_report = fit_boundary(other_x, other_scores, share, validation, seed)
        found.append((str(other), other_normal, other_report))
    given = [torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in condition_vectors]
    if any(v.numel() != where.dim for v in given):
        raise SteerError(f"a condition direction must have {where.dim} entries, as this direction space")
    condition_rows = [n for _, n, _ in found] + [v / v.norm().clamp_min(1e-12) for v in given]
    if condition_rows:
        report["conditions"] = [{"attribute": name, "cosine_before": float(normal @ n),
                                 "validation_accuracy": r["validation_accuracy"]} for name, n, r in found]
        report["condition_directions"] = len(given)
        normal = project_out(normal, torch.stack(condition_rows))
        report["validation_accuracy_after_projection"] = _accuracy(normal, x, scores, share, validation, seed)
    settings = {"attribute": str(attribute), "samples": len(used), "share": share, "validation": validation,
                "seed": seed, "conditions": [str(c) for c in conditions]}
    return Directions("svm", normal[None], [report["validation_accuracy"]], "validation accuracy", where,
                      settings=settings, report=report)


def _accuracy(normal, x, scores, share, validation, seed) -> float:
    """How well a fixed direction (through the kept samples' midpoint) separates the kept
    ends, on the same validation split fit_boundary uses."""
    s = np.asarray(scores, dtype=np.float64)
    keep = np.isfinite(s)
    xs, s = np.asarray(x, dtype=np.float64)[keep], s[keep]
    per_side = int(len(s) * share)
    order = np.argsort(s, kind="stable")
    idx = np.concatenate([order[:per_side], order[-per_side:]])
    ys = np.concatenate([np.zeros(per_side), np.ones(per_side)])
    pick = np.random.default_rng(seed).permutation(len(ys))
    n_val = int(round(len(ys) * validation))
    val, train = pick[:n_val], pick[n_val:]
    proj = xs[idx] @ normal.double().numpy()
    threshold = 0.5 * (proj[train][ys[train] == 0].mean() + proj[train][ys[train] == 1].mean())
    pick = val if n_val else train
    return float(((proj[pick] > threshold) == (ys[pick] == 1)).mean())
