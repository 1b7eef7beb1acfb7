"""Small helpers family readers share: a strict state-dict load that fails in one line, and
reading a model folder's config.json. A leaf: it imports no family and not the registry."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import SteerError

MAX_CONFIG_BYTES = 4 << 20  # a config.json (BigGAN's, with no class names, is under 2 kB)


def load_strict(module, state: dict, what: str):
    """module.load_state_dict(state, strict=True); a mismatch becomes one SteerError line,
    "{what}: " and the first specific complaint (a missing, unexpected or misshapen key)."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise SteerError(f"{what}: {lines[1] if len(lines) > 1 else lines[0]}") from None
    return module


def check_finite(state: dict, what: str):
    """Refuse weights holding NaN or inf (they make black or garbage images without any
    error): one SteerError line naming the first such tensor."""
    import torch
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and (tensor.is_floating_point() or tensor.is_complex()):
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                raise SteerError(f"{what}: tensor '{name}' holds {bad:,} NaN or infinite value"
                                 f"{'s' if bad > 1 else ''} (of {tensor.numel():,}): the weights are corrupt")
    return state


def read_config(folder: Path) -> dict:
    """A model folder's config.json as a dict; one SteerError line for anything else."""
    path = Path(folder) / "config.json"
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise SteerError(f"{path} is {path.stat().st_size:,} bytes; a config.json is at most "
                             f"{MAX_CONFIG_BYTES:,}")
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as e:
        raise SteerError(f"cannot read {path}: {e}") from None
    if not isinstance(config, dict):
        raise SteerError(f"{path} must hold a JSON object, not a {type(config).__name__}")
    return config
