"""Atomic checkpoint files: write to a temporary file, fsync, then rename over the target,
so an interruption at any moment leaves either the old file or the new one, never half."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def atomic_write(path, write_fn) -> None:
    """Call write_fn(file_object) on a temporary file beside `path`, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(state: dict, path) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path) -> dict:
    # our checkpoints hold only tensors and plain containers: never unpickle anything else
    return torch.load(path, map_location="cpu", weights_only=True)
