"""The main job, `steer walk --edit zoom` on the default model: which settings reach the
held-out loss of the old 800-step default in fewer steps, and how long the command takes.

    python experiments/bench/main_job.py levers      # fits in-process, held-out loss per setting
    python experiments/bench/main_job.py time        # wall time of the old and new default commands

`levers` fits the zoom walk on the default model under several learning rates, schedules
and step counts (one thread each, seed 0) and scores every walk on the same 32 held-out
batches of 16 (512 latents, seeds apart from training and validation), so the settings are
compared on one set and the differences are larger than the held-out noise; the losses do
not depend on the machine's load. Results go to main_job.json beside this file.

`time` runs the old default command (800 steps, lr 5e-3, constant) once and the new default
(`steer walk --edit zoom` as it is now) --rounds times around it, on a quiet machine, and
prints wall seconds, the CLI's own held-out loss of each walk, and the ratio.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

from steer.bench import steer_wall_seconds

HERE = Path(__file__).resolve().parent
MODEL = "dssgan-mnist"
HELD_OUT_BATCHES = 32
# (name, steps, lr, schedule, patience): the old default first
SETTINGS = [
    ("old default", 800, 5e-3, "constant", None),
    ("lr 5e-3 cosine 200", 200, 5e-3, "cosine", None),
    ("lr 2e-2 constant 200", 200, 2e-2, "constant", None),
    ("lr 2e-2 cosine 100", 100, 2e-2, "cosine", None),
    ("lr 2e-2 cosine 150", 150, 2e-2, "cosine", None),
    ("lr 2e-2 cosine 200", 200, 2e-2, "cosine", None),
    ("lr 5e-2 cosine 100", 100, 5e-2, "cosine", None),
    ("lr 5e-2 cosine 150", 150, 5e-2, "cosine", None),
    ("lr 5e-2 cosine 200", 200, 5e-2, "cosine", None),
    ("lr 2e-2 constant 800 patience 3", 800, 2e-2, "constant", 3),
    ("lr 5e-2 cosine 180", 180, 5e-2, "cosine", None),
    ("lr 1e-1 cosine 150", 150, 1e-1, "cosine", None),
    ("lr 1e-1 cosine 180", 180, 1e-1, "cosine", None),
    ("lr 1e-1 cosine 120", 120, 1e-1, "cosine", None),
    ("lr 2e-1 cosine 150", 150, 2e-1, "cosine", None),
]


def levers(names=None):
    import torch

    from steer import load_generator
    from steer.edits import get_edit
    from steer.fit import FitConfig, evaluate_walk, fit_walk
    from steer.walks import LinearWalk, make_walk

    torch.set_num_threads(1)
    out = HERE / "main_job.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    G = load_generator(MODEL, device="cpu")
    edit = get_edit("zoom")
    shape = G.latent_shape(G.default_space)

    def held_out(walk, config):
        return evaluate_walk(G, walk, edit, config, batches=HELD_OUT_BATCHES, seed_offset=3 * 10**6)

    base = FitConfig()
    if "zero walk" not in results:
        results["zero walk"] = {"held_out": held_out(LinearWalk(shape, sliders=edit.sliders, init_std=0.0), base)}
    for name, steps, lr, schedule, patience in SETTINGS:
        if name in results or (names and name not in names):
            continue
        walk = make_walk("linear", edit, shape, G.resolution, seed=0)
        config = FitConfig(steps=steps, lr=lr, schedule=schedule, patience=patience, seed=0)
        started = time.process_time()
        fitted = fit_walk(G, walk, edit, config, progress=False)
        results[name] = {"steps": steps, "lr": lr, "schedule": schedule, "patience": patience,
                         "steps_run": fitted.steps_done, "kept_step": fitted.best_step,
                         "cpu_seconds": time.process_time() - started,
                         "held_out": held_out(walk, config), "cli_held_out": evaluate_walk(G, walk, edit, config)}
        print(name, results[name], flush=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
    out.write_text(json.dumps(results, indent=1) + "\n")
    zero = results["zero walk"]["held_out"]
    old = results["old default"]["held_out"] if "old default" in results else math.nan
    print(f"\nheld-out masked L2 on {HELD_OUT_BATCHES * 16} latents ({MODEL}, zoom, seed 0); zero walk {zero:.4f}")
    print(f"{'setting':34} {'steps run':>9} {'held-out':>9} {'/ old':>7}")
    for name, r in results.items():
        if name != "zero walk":
            print(f"{name:34} {r['steps_run']:9d} {r['held_out']:9.4f} {r['held_out'] / old:7.3f}")


def wall(args):
    return steer_wall_seconds(args, env=dict(os.environ, STEER_THREADS=os.environ.get("STEER_THREADS", "2")))


def time_commands(rounds):
    """The old default once (it takes about 8 minutes), the new default `rounds` times, alternating."""
    old = ["walk", "--model", MODEL, "--edit", "zoom", "--steps", "800", "--lr", "5e-3", "--schedule", "constant"]
    new = ["walk", "--model", MODEL, "--edit", "zoom"]
    times, held = {"old": [], "new": []}, {"old": [], "new": []}
    order = ["new", "old"] + ["new"] * (rounds - 1)
    with tempfile.TemporaryDirectory() as tmp:
        for r, key in enumerate(order):
            out = f"{tmp}/{key}{r}"
            times[key].append(wall([*(old if key == "old" else new), "--out", out]))
            held[key].append(json.loads(Path(out, "loss.json").read_text())["held_out_l2"])
            print(f"run {r}: {key} default {times[key][-1]:.1f} s, held-out masked L2 {held[key][-1]:.4f}", flush=True)
    o, n = min(times["old"]), min(times["new"])
    threads = os.environ.get("STEER_THREADS", "2")
    print(f"steer walk --model {MODEL} --edit zoom, {threads} threads, wall seconds with start-up "
          f"(new: best of {len(times['new'])}):")
    print(f"  old default (800 steps, lr 5e-3 constant): {o:6.1f} s   held-out {held['old'][0]:.4f}")
    print(f"  new default (steer walk --edit zoom):      {n:6.1f} s   held-out {held['new'][0]:.4f}   "
          f"old / new {o / n:.2f}x  (target <= 120 s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["levers", "time"])
    parser.add_argument("--only", default="", help="levers: only these settings (comma-separated names)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.what == "levers":
        levers([s for s in args.only.split(",") if s])
    else:
        time_commands(args.rounds)


if __name__ == "__main__":
    main()
