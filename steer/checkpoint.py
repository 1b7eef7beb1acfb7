"""Atomic checkpoint files: write to a temporary file, fsync, then rename over the target,
so an interruption at any moment leaves either the old file or the new one, never half.

Also what resuming needs: reading a run folder's checkpoint.pt as data only and checking
its shape (load_resumable), refusing to resume a run with different settings
(check_same_run), and what a Ctrl-C can truthfully say about the checkpoint
(interrupt_message)."""
from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from .errors import SteerError

# the checkpoint this process writes, so that a Ctrl-C can say whether one exists
_tracked = {"path": None, "step": None}


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
    if _tracked["path"] is not None and Path(path) == _tracked["path"]:
        _tracked["step"] = state.get("step")


def track(path, step=None) -> None:
    """Say which checkpoint this run writes and the step it holds now (None: none yet)."""
    _tracked["path"], _tracked["step"] = Path(path), step


def interrupt_message() -> str:
    """What a Ctrl-C leaves behind, truthfully: the step of this run's checkpoint, that none
    was written yet, or (outside a checkpointed job) nothing about checkpoints at all."""
    path, step = _tracked["path"], _tracked["step"]
    if path is None:
        return "interrupted"
    if step is None:
        return (f"interrupted before the first checkpoint: nothing was saved in {path.parent}; "
                "rerun the same command to start again")
    return f"interrupted; {path} holds step {step}: rerun the same command to resume"


class Timer:
    """True once every `seconds` of wall time: long steps still get checkpoints."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.last = time.monotonic()

    def due(self) -> bool:
        if self.seconds is None or time.monotonic() - self.last < self.seconds:
            return False
        self.last = time.monotonic()
        return True


def load_resumable(path, required: dict) -> dict:
    """A run folder's checkpoint as data only (torch.load weights_only=True), checked to be a
    dict holding `required` {key: type}; anything else is one line saying how to start over."""
    path = Path(path)
    fresh = f"choose a fresh --out, or pass --restart to start over (it replaces {path.name})"
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols: the one line below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, a pickle that asks for code: all data errors here
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        if "weights only" in reason.lower() or "weights_only" in reason:
            reason = "it holds more than tensors and plain data, so it is not read"  # torch's text is many lines
        raise SteerError(f"{path} is not a readable steer checkpoint ({reason}): {fresh}") from None
    if not isinstance(state, dict):
        raise SteerError(f"{path} holds a {type(state).__name__}, not a steer checkpoint: {fresh}")
    for key, kind in required.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise SteerError(f"{path} lacks a valid '{key}' entry, so it is not a checkpoint of this command: {fresh}")
    if "step" in required and state["step"] < 0:
        raise SteerError(f"{path} records step {state['step']}: {fresh}")
    return state


def restore(what: str, path, load) -> None:
    """Call load() (load_state_dict calls); a checkpoint whose tensors do not fit is one line."""
    try:
        load()
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__  # torch's message spans lines
        raise SteerError(f"{path}: its {what} does not fit this run ({reason}): choose a fresh --out, or pass "
                         "--restart to start over") from None


def _plain(value):
    """JSON-comparable form: tuples as lists, non-finite floats as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        return json.loads(json.dumps(value, sort_keys=True, default=str))
    except (TypeError, ValueError):
        return str(value)


def check_same_run(recorded: dict, wanted: dict, path, step: int, steps: int,
                   ignore=("steps", "checkpoint_every", "checkpoint_seconds")) -> None:
    """Refuse to resume when a setting that changes the result differs from what the
    checkpoint recorded (older checkpoints that did not record a setting are not judged on
    it). Only the step count may grow."""
    differ = []
    recorded, wanted = _flat(recorded), _flat(wanted)
    for key, value in wanted.items():
        if key in ignore or key not in recorded:
            continue
        if _plain(recorded[key]) != _plain(value):
            differ.append(f"{key} {_short(recorded[key])} -> {_short(value)}")
    if differ:
        raise SteerError(f"{path} is a run with other settings ({'; '.join(differ)}): rerun with its settings to "
                         "resume it, choose a fresh --out, or pass --restart to start over")
    if step > steps:
        raise SteerError(f"{path} is already at step {step}, past --steps {steps}: only --steps may grow on resume; "
                         "give --steps of at least that, a fresh --out, or --restart")


def _flat(settings: dict, prefix: str = "") -> dict:
    """Nested settings as 'outer.inner' keys, so a message names the one that differs."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value) -> str:
    text = json.dumps(_plain(value))
    return text if len(text) <= 60 else text[:57] + "..."


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
