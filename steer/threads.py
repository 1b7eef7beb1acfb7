"""How many CPU threads steer's torch work uses.

torch's CPU kernels split each operation over a team of OpenMP threads that meet at a
barrier at its end, so one thread that has to share its core with another process holds the
whole team up: on 2 cores, one competing single-thread process turns a 2-thread walk step of
0.6 s into 2.3 s (measured before this policy). A team no larger than the cores nobody else is using does not have that
straggler. So steer's default ("auto") is

  * the number of cores this process may run on, less the other processes that are running
    (read from /proc: runnable threads system-wide, less this process's own), at least 1;
  * looked at again between training steps (every ADAPT_EVERY steps), so a job started on a
    quiet machine gives a core back when something else starts, and takes it again after;
  * OpenMP threads that sleep rather than spin while waiting (OMP_WAIT_POLICY=PASSIVE), so
    waiting threads do not take cycles from the other process either.

`--threads N` (or STEER_THREADS=N) fixes the team at N instead, and an OMP_NUM_THREADS set
by the user is respected as such a fixed choice. Everything here is read before torch is
imported, so OpenMP and MKL start with the chosen settings.
"""
from __future__ import annotations

import os
import statistics
import time

ADAPT_EVERY = 20  # training steps between looks at the machine's load
_auto = False  # True once configure() chose auto: adapt() then resizes the team between steps


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _own_running_threads() -> int:
    running = 0
    try:
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat") as f:
                    # the state follows the parenthesised command name
                    if f.read().rsplit(")", 1)[1].split()[0] == "R":
                        running += 1
            except (OSError, IndexError):
                continue
    except OSError:
        return 1
    return running


def other_running(samples: int = 5, interval: float = 0.01) -> int:
    """Threads of other processes running or ready to run now (median of a few looks at
    /proc/loadavg's runnable count, less this process's own running threads); 0 where /proc
    is not there."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                total = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        counts.append(max(0, total - _own_running_threads()))
        if i + 1 < samples:
            time.sleep(interval)
    return int(statistics.median(counts))


def auto_threads(cores: int | None = None, others: int | None = None) -> int:
    """The auto team size: the cores nobody else is using, at least 1."""
    cores = available_cores() if cores is None else cores
    others = other_running() if others is None else others
    return max(1, cores - others)


def configure(threads: int | None = None) -> int:
    """Set the policy before torch is imported (the CLI calls this first): a fixed team
    (threads, else STEER_THREADS, else a user's OMP_NUM_THREADS) or auto. Returns the size."""
    global _auto
    if threads is None and os.environ.get("STEER_THREADS", "").strip():
        threads = int(os.environ["STEER_THREADS"])
    if threads is None and os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        threads = int(os.environ["OMP_NUM_THREADS"])
    _auto = threads is None
    size = threads if threads is not None else auto_threads()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(size)
    import sys
    if "torch" in sys.modules:  # imported already (the library used from Python): set it directly
        sys.modules["torch"].set_num_threads(size)
    return size


def adapt(step: int) -> None:
    """Between training steps: under auto, resize the team to the cores free now."""
    if not _auto or step % ADAPT_EVERY:
        return
    import torch
    size = auto_threads()
    if size != torch.get_num_threads():
        torch.set_num_threads(size)
