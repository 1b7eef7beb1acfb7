"""Apply a walk across a row of alphas: the pictures `steer render` and `steer walk` write.
Thin wrappers over steer.steering.Steering, for callers that hold the parts separately."""
from __future__ import annotations

import json
from pathlib import Path

from .edits import Edit
from .errors import SteerError
from .steering import CHANNELS, Steering, expand_alpha  # noqa: F401  (re-exported)


def sample_rows(generator, seeds, row_classes=None, space=None, truncation=None):
    """One latent per seed, each drawn alone, mapped into `space` (see Steering.rows)."""
    return Steering(generator, None, None, space, truncation=truncation).rows(seeds, row_classes)


def render_walk(generator, walk, edit: Edit, latent, classes, alphas, space=None, channel="all",
                targets: bool = False, truncation=None):
    """(rows, len(alphas), 3, H, W) walked images, with target rows interleaved when
    targets=True (see Steering.strips)."""
    return Steering(generator, walk, edit, space, truncation=truncation).strips(latent, classes, alphas,
                                                                               channel=channel, targets=targets)


# ---- the settings file: render.json, and what steer explore's Save writes ---------------
# keys: walk (path), model (label), source (ModelSource record), space, seeds (list of ints),
# class / classes (index or name, or null), channel (r, g, b or all), alphas (numbers, or
# [r, g, b] lists for colour), truncation (number or null); anything else is a note.

def read_render_settings(path) -> dict:
    """A render.json or an explore Save's JSON, checked enough to name its walk."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SteerError(f"--settings {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise SteerError(f"--settings {path} is not a readable JSON file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("walk"), str):
        raise SteerError(f"--settings {path} must be a JSON object naming a \"walk\" file, as render.json "
                         "or steer explore's Save write it")
    walk = Path(data["walk"])
    beside = Path(path).parent / walk
    if not walk.is_absolute() and not walk.exists() and beside.exists():
        data["walk"] = str(beside)  # a relative walk path is also looked up next to the settings file
    return data


def settings_alphas(values, sliders: int) -> list:
    """Alphas from a settings file: numbers, or for a colour walk also [r, g, b] triples."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    ok = isinstance(values, list) and values and all(
        number(v) or (sliders > 1 and isinstance(v, list) and len(v) == sliders and all(map(number, v)))
        for v in values)
    if not ok:
        shape = " (or lists of one value per slider)" if sliders > 1 else ""
        raise SteerError(f"--settings: \"alphas\" must be a list of numbers{shape}, got {json.dumps(values)}")
    return values
