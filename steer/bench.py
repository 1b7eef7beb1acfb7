"""`steer bench walk`: how close a walk step is to the work it cannot avoid, against a
plain reference loop, and the peak memory of `steer walk`, measured side by side."""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

import torch

from .edits import get_edit
from .fit import FitConfig, fit_walk
from .losses import masked_l2
from .walks import make_walk


def median_seconds(fn, repeats: int, warm_up=None) -> float:
    """Median seconds of `repeats` calls of fn, after one call of warm_up (default fn)."""
    (warm_up or fn)()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def counted_gflop(fn) -> float:
    """GFLOP of one call of fn as torch's FlopCounterMode counts them: matrix products and
    convolutions (2 per multiply-add); element-wise work such as a selective scan's is not counted."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a square fp32 matrix product on this machine's CPU, with torch's current
    threads: the practical ceiling that achieved GFLOP/s are read against."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / median_seconds(lambda: a @ b, repeats) / 1e9


def _time(fn, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def bench_walk(generator, edit_name: str = "zoom", batch: int = 16, steps: int = 30, rounds: int = 5,
               memory: bool = True, model_name: str | None = None) -> dict:
    edit = get_edit(edit_name)
    G = generator.eval().requires_grad_(False)
    z, classes = G.sample(batch, seed=0)
    shape = tuple(z.shape[1:])

    def floor_once():
        # the unavoidable work: the target's forward without gradient, and one forward and
        # backward through G to the latent
        with torch.no_grad():
            G.synthesize(z, classes)
        latent = z.clone().requires_grad_(True)
        G.synthesize(latent, classes).sum().backward()

    def ours(n):
        walk = make_walk("linear", edit, shape, G.resolution)
        fit_walk(G, walk, edit, FitConfig(steps=n, batch=batch, checkpoint_every=10**9), progress=False)

    def reference(n):
        # the straightforward loop: G's weights left requiring grad, target built with grad
        G.requires_grad_(True)
        walk = make_walk("linear", edit, shape, G.resolution).to(G.device)
        opt = torch.optim.Adam(walk.parameters(), lr=edit.lr)
        gen = torch.Generator().manual_seed(0)
        for step in range(n):
            zz, cc = G.sample(batch, seed=step)
            alpha = edit.sample_train(batch, gen, G.resolution)
            target, mask = edit(G.synthesize(zz, cc), alpha.to(G.device))
            loss = masked_l2(G.synthesize(walk.apply(zz, alpha, edit, G.resolution), cc), target, mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
        G.requires_grad_(False)

    floor_once(), ours(3), reference(3)  # warm up
    floors, steps_ours, steps_ref = [], [], []
    for _ in range(rounds):  # interleaved, so drift in machine load hits all three alike
        floors.append(_time(floor_once, steps))
        steps_ours.append(_time(lambda: ours(steps), 1) / steps)
        steps_ref.append(_time(lambda: reference(steps), 1) / steps)
    floor, step, ref = (statistics.median(v) for v in (floors, steps_ours, steps_ref))
    result = {
        "model": model_name or G.name, "edit": edit.name, "batch": batch, "device": str(G.device),
        "threads": torch.get_num_threads(),
        "floor_ms": floor * 1e3, "step_ms": step * 1e3, "reference_step_ms": ref * 1e3,
        "step_over_floor": step / floor, "speedup_over_reference": ref / step,
    }
    if memory:
        result["peak_rss_gb_steer_walk"] = peak_memory_of_walk(model_name or G.name, edit.name, batch)
    return result


# The child reads its own high-water mark at exit. The kernel's rusage for children is no use
# here: it keeps the forked image's peak (the parent's own size) across the exec.
_PEAK_WRAPPER = """
import atexit, sys
peak_file = sys.argv[1]
def record():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                with open(peak_file, "w") as out:
                    out.write(line.split()[1])
atexit.register(record)
sys.argv = ["steer", *sys.argv[2:]]
from steer.cli import main
main()
"""


def steer_wall_seconds(args, env=None) -> float:
    """Wall seconds of `steer ARGS` in a child python, start-up included, as a user sees it;
    its output is discarded and a failure raises."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "steer.cli", *map(str, args)], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_steer_with_peak(args, env=None, timeout=None, check=False, capture=True):
    """`steer ARGS` in a child python; returns (CompletedProcess, the child's peak resident
    memory in MiB: VmHWM of its own address space since exec, None if it did not report)."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = f"{tmp}/peak_kib"
        result = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, peak_file, *map(str, args)],
                                capture_output=capture, text=True, env=env, timeout=timeout, check=check)
        try:
            with open(peak_file) as f:
                peak = int(f.read()) / 1024
        except (OSError, ValueError):
            peak = None
    return result, peak


def peak_memory_of_walk(model: str, edit: str, batch: int, steps: int = 40) -> float:
    """Peak resident memory (GB) of a real `steer walk` process at this batch size."""
    with tempfile.TemporaryDirectory() as out:
        _, peak = run_steer_with_peak(["walk", "--model", model, "--edit", edit, "--batch", batch,
                                       "--steps", steps, "--out", out], check=True)
    return peak / 1024
