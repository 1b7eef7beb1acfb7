"""Small helpers family readers share: a strict state-dict load that fails in one line, and
reading a model folder's config.json. A leaf: it imports no family and not the registry."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import SteerError


def load_strict(module, state: dict, what: str):
    """module.load_state_dict(state, strict=True); a mismatch becomes one SteerError line,
    "{what}: " and the first specific complaint (a missing, unexpected or misshapen key)."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise SteerError(f"{what}: {lines[1] if len(lines) > 1 else lines[0]}") from None
    return module


def read_config(folder: Path) -> dict:
    """A model folder's config.json as a dict; one SteerError line for anything else."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SteerError(f"cannot read {path}: {e}") from None
    if not isinstance(config, dict):
        raise SteerError(f"{path} must hold a JSON object, not a {type(config).__name__}")
    return config
