"""The direction methods by name, and their result written as ordinary walk files.

    found = find_directions(G, "sefa", components=5)
    save_directions(G, found, "runs/walks/dcgan-mnist-sefa", component=0)

writes walk.safetensors (the chosen component), components/NN.safetensors (each component
as its own one-slider walk), strip.png (samples along the chosen component), components.png
(one sample along each component) and directions.json (the method, its settings, values and
report). Every walk file carries the model's source, so render, explore, quantify, edit and
finetune take it like a learned walk.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..errors import SteerError
from .common import DIRECTION_EDIT, Directions, direction_walks

METHODS = ("sefa", "pca", "svm", "jacobian")
STRIP_ALPHAS = (-2.0, -1.0, 0.0, 1.0, 2.0)


def find_directions(generator, method: str, **options) -> Directions:
    """Run one method; options are that method's keyword arguments."""
    if method == "sefa":
        from .sefa import sefa as run
    elif method == "pca":
        from .ganspace import ganspace as run
    elif method == "svm":
        from .interfacegan import interfacegan as run
    elif method == "jacobian":
        from .jacobian import jacobian as run
    else:
        raise SteerError(f"unknown direction method {method!r}: choose one of {', '.join(METHODS)}")
    started = time.perf_counter()
    found = run(generator, **{k: v for k, v in options.items() if v is not None})
    found.report.setdefault("seconds", time.perf_counter() - started)
    found.report["total_seconds"] = time.perf_counter() - started
    return found


def _clean(value):
    """JSON-safe: tuples to lists, slices to [start, stop], numbers to floats."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, range)):
        return [_clean(v) for v in value]
    if isinstance(value, slice):
        return [value.start, value.stop]
    if isinstance(value, Path):
        return str(value)
    if torch.is_tensor(value):
        return _clean(value.tolist())
    return value


def save_directions(generator, found: Directions, out, component: int = 0, step: float = 1.0, truncation=None,
                    seed: int = 0, extra: dict | None = None, classes=None) -> dict:
    """Write the walk files and pictures for `found` under `out`; returns what was written."""
    from ..steering import Steering
    from ..viz import save_strip_grid
    out = Path(out)
    k = found.vectors.shape[0]
    if not 0 <= component < k:
        raise SteerError(f"--component {component} is out of range: {found.method} found {k} direction(s)")
    walks = direction_walks(generator, found, step=step, truncation=truncation, seed=seed)
    (out / "components").mkdir(parents=True, exist_ok=True)
    common = {"method": found.method, "settings": _clean(found.settings), "where": found.where.record(),
              "value_name": found.value_name, "step": step,
              "alpha_unit": f"alpha = 1 moves the latent by {step:g} standard deviation(s) of the sampled "
                            f"latents along the direction"}
    paths = []
    for i, (walk, spread) in enumerate(walks):
        steering = Steering(generator, walk, DIRECTION_EDIT, found.where.space, truncation=truncation)
        info = dict(common, component=i, value=found.values[i], spread=spread)
        meta_extra = dict(extra or {}, method=found.method, direction=_clean(info), report=_clean(found.report))
        steering.save(out / "components" / f"{i:02d}.safetensors", **meta_extra)
        if i == component:
            steering.save(out / "walk.safetensors", **meta_extra)
            chosen = steering
        paths.append(str(out / "components" / f"{i:02d}.safetensors"))
    upscale = max(1, 64 // generator.resolution)
    latent, c = chosen.sample(4, seed=seed + 12345, classes=classes)
    save_strip_grid(chosen.strips(latent, c, STRIP_ALPHAS), STRIP_ALPHAS, out / "strip.png", upscale=upscale,
                    title=f"{found.method} direction {component} on {generator.name}: columns are alpha")
    # one sample along every component: what each direction does
    rows = []
    for walk, _ in walks:
        s = Steering(generator, walk, DIRECTION_EDIT, found.where.space, truncation=truncation)
        rows.append(s.strips(latent[:1], None if c is None else c[:1], STRIP_ALPHAS))
    save_strip_grid(torch.cat(rows), STRIP_ALPHAS, out / "components.png", upscale=upscale,
                    title=f"{found.method} components on {generator.name} (rows), alpha (columns)",
                    row_labels=[f"{i}" for i in range(k)])
    record = {"model": chosen.metadata()["model"], "source": chosen.metadata()["source"], **common,
              "values": found.values, "report": _clean(found.report), "component": component,
              "spreads": [s for _, s in walks], "walk": str(out / "walk.safetensors"), "components": paths,
              **_clean(extra or {})}
    (out / "directions.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
