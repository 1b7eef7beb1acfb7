"""Peak memory of one zoom-walk step at batch 16 on large generators with random weights,
with and without gradient checkpointing of the synthesis layers.

    python experiments/bench/memory_at_scale.py                 # both models, checkpointing off and on
    python experiments/bench/memory_at_scale.py --models biggan-deep-512 --batch 16

Models: BigGAN-deep-512 at the release's widths (channel width 128, steer.generators.biggan.
random_biggan), and a 256 px StyleGAN-XL synthesis (StyleGAN3-T by the design rule at
StyleGAN-XL's own widths, channel_base 65536, channel_max 1024, 1000 classes, the walk in W).
Each configuration runs in its own child process: it builds the model, resets the kernel's
peak-RSS mark (/proc/self/clear_refs), runs one fit_walk step (target without gradient, the
walked forward and its backward to the walk, Adam), and reports VmHWM, the peak resident
memory of that step, beside the resident size of the weights alone. 2 threads, fp32, CPU.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time

MODELS = ("biggan-deep-512", "stylegan-xl-256")


def status_kib(field, pid="self"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def run_child(command):
    """Run one configuration, watching its peak resident size from outside, so that a child the
    kernel kills for memory still tells how far it got. Returns (returncode, stdout, stderr, peak GiB seen)."""
    # files, not pipes: a child that writes much while we only poll would block on a full pipe
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child_process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        peak_kib = 0
        while child_process.poll() is None:
            try:
                peak_kib = max(peak_kib, status_kib("VmHWM", child_process.pid))
            except (OSError, RuntimeError):
                pass  # the child is between states or already gone
            time.sleep(0.5)
        out.seek(0)
        err.seek(0)
        return child_process.returncode, out.read(), err.read(), peak_kib / 2**20


def failure_reason(returncode, peak_seen_gib):
    if returncode < 0:
        name = signal.Signals(-returncode).name
        why = " (the kernel's out-of-memory killer, most likely: see dmesg)" if name == "SIGKILL" else ""
        return f"killed by {name}{why} after a peak of at least {peak_seen_gib:.2f} GiB"
    return f"exit status {returncode} after a peak of at least {peak_seen_gib:.2f} GiB"


def build(name):
    import torch

    if name == "biggan-deep-512":
        from steer.generators.biggan import random_biggan
        return random_biggan(512, channel_width=128, batch=2)
    from steer.generators.stylegan_xl import StyleGANXLGenerator, design_config
    torch.manual_seed(0)
    return StyleGANXLGenerator(design_config(z_dim=64, w_dim=512, c_dim=1000, img_resolution=256,
                                             channel_base=65536, channel_max=1024), name="stylegan-xl-256-random")


def child(name, checkpointed, batch, threads):
    import torch

    from steer.edits import get_edit
    from steer.fit import FitConfig, fit_walk
    from steer.walks import make_walk

    torch.set_num_threads(threads)
    G = build(name).eval().requires_grad_(False)
    G.set_gradient_checkpointing(checkpointed)
    edit = get_edit("zoom")
    params = sum(p.numel() for p in G.parameters())
    weights_gib = status_kib("VmRSS") / 2**20
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    walk = make_walk("linear", edit, G.latent_shape(G.default_space), G.resolution)
    started = time.perf_counter()
    fit_walk(G, walk, edit, FitConfig(steps=1, batch=batch, checkpoint_every=10**9), progress=False)
    seconds = time.perf_counter() - started
    print(json.dumps({"model": name, "checkpointing": checkpointed, "batch": batch, "params_m": params / 1e6,
                      "resident_before_gib": weights_gib, "peak_gib": status_kib("VmHWM") / 2**20,
                      "step_seconds": seconds}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "CHECKPOINTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "on", args.batch, args.threads)
        return
    rows, failures = [], []
    for name in args.models.split(","):
        if name not in MODELS:
            parser.error(f"--models: choose from {', '.join(MODELS)}")
        for mode in ("off", "on"):
            returncode, stdout, stderr, peak_seen = run_child(
                [sys.executable, __file__, "--child", name, mode, "--batch", str(args.batch),
                 "--threads", str(args.threads)])
            if returncode != 0:
                reason = failure_reason(returncode, peak_seen)
                print(f"{name} checkpointing {mode}: failed, {reason}\n{stderr[-2000:]}", file=sys.stderr)
                failures.append((name, mode, reason))
                continue
            rows.append(json.loads(stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    print(f"\none zoom-walk step, batch {args.batch}, {args.threads} threads, fp32, CPU, random weights")
    print(f"{'model':18} {'params':>8} {'checkpointing':>13} {'resident before':>16} {'peak':>9} "
          f"{'peak - before':>14} {'step s':>8}")
    for r in rows:
        print(f"{r['model']:18} {r['params_m']:7.1f}M {('on' if r['checkpointing'] else 'off'):>13} "
              f"{r['resident_before_gib']:14.2f} G {r['peak_gib']:7.2f} G "
              f"{r['peak_gib'] - r['resident_before_gib']:12.2f} G {r['step_seconds']:8.1f}")
    for name, mode, reason in failures:
        print(f"{name:18} {'':>8} {mode:>13}   failed: {reason}")


if __name__ == "__main__":
    main()
