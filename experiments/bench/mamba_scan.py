"""Forward + backward time of Mamba's selective scan on CPU, fp32: steer's chunked scan against
the direct reference loop and mambapy's parallel scan (`pip install mambapy`, the `bench` extra).

    python experiments/bench/mamba_scan.py            # batch 8, d_inner 128, d_state 16, L 256 and 1024

Every arm computes the same thing (softplus(delta + bias), exp(delta A) decay, delta B u drive,
y = <h, C> + D u, times silu(z)) from inputs in its own native layout, and gets gradients for all
eight inputs. The script checks that the outputs and gradients agree before timing.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from steer.generators.dssgan.scan import selective_scan, selective_scan_reference

try:
    from mambapy.pscan import pscan
except ImportError:
    pscan = None

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(batch, dim, dstate, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "u": torch.randn(batch, dim, length, generator=g),
        "delta": torch.randn(batch, dim, length, generator=g) - 2.0,
        "A": -torch.arange(1, dstate + 1, dtype=torch.float32).repeat(dim, 1) * (0.5 + torch.rand(dim, 1, generator=g)),
        "B": torch.randn(batch, dstate, length, generator=g),
        "C": torch.randn(batch, dstate, length, generator=g),
        "D": torch.randn(dim, generator=g),
        "z": torch.randn(batch, dim, length, generator=g),
        "delta_bias": torch.randn(dim, generator=g) * 0.5,
    }


def steer_arm(x):
    return selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], z=x["z"],
                          delta_bias=x["delta_bias"], backend="steer")


def reference_arm(x):
    return selective_scan_reference(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], z=x["z"],
                                    delta_bias=x["delta_bias"])


# mambapy works in (batch, L, d_inner[, d_state]); its inputs are prepared in that layout
MAMBAPY_LAYOUT = {"u": (0, 2, 1), "delta": (0, 2, 1), "B": (0, 2, 1), "C": (0, 2, 1), "z": (0, 2, 1)}


def mambapy_arm(x):
    delta = F.softplus(x["delta"] + x["delta_bias"])  # (B, L, D)
    deltaA = torch.exp(delta.unsqueeze(-1) * x["A"])  # (B, L, D, N)
    BX = (delta * x["u"]).unsqueeze(-1) * x["B"].unsqueeze(2)  # (B, L, D, N)
    hs = pscan(deltaA, BX)
    y = (hs @ x["C"].unsqueeze(-1)).squeeze(3) + x["D"] * x["u"]
    return y * F.silu(x["z"])  # (B, L, D)


def leaves(inputs, layout=None):
    layout = layout or {}
    return {k: (v.permute(*layout[k]) if k in layout else v).detach().clone(memory_format=torch.contiguous_format).requires_grad_()
            for k, v in inputs.items()}


def run_once(arm, x, weight):
    for v in x.values():
        v.grad = None
    t0 = time.perf_counter()
    out = arm(x)
    (out * weight).sum().backward()
    return time.perf_counter() - t0, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--d-inner", type=int, default=128)
    parser.add_argument("--d-state", type=int, default=16)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions of steer and mambapy")
    parser.add_argument("--ref-reps", type=int, default=3, help="timed repetitions of the reference at L <= 256 (1 above)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), fp32, CPU; "
          f"batch {args.batch}, d_inner {args.d_inner}, d_state {args.d_state}; forward + backward\n")
    if pscan is None:
        print("note: mambapy is not importable (pip install mambapy); its arm is skipped")
    rows = []
    for length in args.lengths:
        inputs = make_inputs(args.batch, args.d_inner, args.d_state, length)
        weight = torch.randn(args.batch, args.d_inner, length, generator=torch.Generator().manual_seed(1))
        arms = {"steer": (steer_arm, {}), "reference": (reference_arm, {})}
        if pscan is not None:
            arms["mambapy"] = (mambapy_arm, MAMBAPY_LAYOUT)
        times, outs, grads = {}, {}, {}
        for name, (arm, layout) in arms.items():
            x = leaves(inputs, layout)
            w = weight.permute(0, 2, 1).contiguous() if layout else weight
            reps = args.reps if name != "reference" else (args.ref_reps if length <= 256 else 1)
            if name != "reference":
                run_once(arm, x, w)  # warm-up
            samples = []
            for _ in range(reps):
                dt, out = run_once(arm, x, w)
                samples.append(dt)
            times[name] = statistics.median(samples) * 1e3
            outs[name] = out.detach().permute(0, 2, 1) if layout else out.detach()
            grads[name] = {k: (x[k].grad.permute(*layout[k]) if k in layout else x[k].grad) for k in NAMES}
        for name in arms:
            if name == "steer":
                continue
            out_diff = (outs[name] - outs["steer"]).abs().max().item()
            grad_diff = max(((grads[name][k] - grads["steer"][k]).abs().max() / grads["steer"][k].abs().max().clamp_min(1e-12)).item()
                            for k in NAMES)
            print(f"L={length}: max |out {name} - out steer| = {out_diff:.2e}, "
                  f"max relative grad diff = {grad_diff:.2e}")
            assert out_diff < 1e-3 and grad_diff < 1e-3, f"{name} disagrees with steer at L={length}"
        rows.append((length, times))
    header = f"{'L':>6} {'steer ms':>10} {'reference ms':>13} {'mambapy ms':>11} {'reference / steer':>18} {'mambapy / steer':>16}"
    print(header)
    for length, t in rows:
        mp = t.get("mambapy")
        mp_ms = f"{mp:.1f}" if mp else "skipped"
        mp_ratio = f"{mp / t['steer']:.2f}x" if mp else "-"
        print(f"{length:>6} {t['steer']:>10.1f} {t['reference']:>13.1f} {mp_ms:>11} "
              f"{t['reference'] / t['steer']:>17.1f}x {mp_ratio:>16}")


if __name__ == "__main__":
    main()
