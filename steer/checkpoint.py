"""Atomic checkpoint files: write to a temporary file, fsync, then rename over the target,
so an interruption at any moment leaves either the old file or the new one, never half."""
from __future__ import annotations

import os
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import torch


def atomic_write(path, write_fn) -> None:
    """Call write_fn(file_object) on a temporary file beside `path`, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(state: dict, path) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path) -> dict:
    # our checkpoints hold only tensors and plain containers: never unpickle anything else
    return torch.load(path, map_location="cpu", weights_only=True)


@contextmanager
def interrupt_between_steps():
    """Turn the first Ctrl-C into a request the training loop honours after the current
    step, so the checkpoint it then writes is exactly a whole number of steps. A second
    Ctrl-C stops at once (the last periodic checkpoint stays)."""
    request = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if request["stop"]:
            raise KeyboardInterrupt
        request["stop"] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)
