"""The main job, `steer walk --edit zoom` on the default model: which settings reach the
held-out loss of the old 800-step default in fewer steps, and how long the command takes.

    python experiments/bench/main_job.py levers      # fits in-process, held-out loss per setting
    python experiments/bench/main_job.py others      # the same candidates on the other bundled models
    python experiments/bench/main_job.py time        # wall time of the old and new default commands

`levers` fits the zoom walk on the default model under several learning rates, schedules
and step counts (one thread each, seed 0) and scores every walk on the same 32 held-out
batches of 16 (512 latents, seeds apart from training and validation), so the settings are
compared on one set and the differences are larger than the held-out noise; the losses do
not depend on the machine's load. Results go to main_job.json beside this file.

`time` runs the new default (`steer walk --edit zoom` as it is now) --rounds times under each
of --threads (STEER_THREADS, alternating) and the old default command (800 steps, lr 5e-3,
constant) once unless --no-old, on a quiet machine, and prints wall seconds and the CLI's
own held-out loss of each walk.
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
    ("lr 1e-1 cosine 100", 100, 1e-1, "cosine", None),
    ("lr 2e-1 cosine 100", 100, 2e-1, "cosine", None),
]


def held_out_loss(G, walk, edit):
    """The masked L2 of a walk on the same 512 held-out latents for every setting."""
    from steer.fit import FitConfig, evaluate_walk
    return evaluate_walk(G, walk, edit, FitConfig(), batches=HELD_OUT_BATCHES, seed_offset=3 * 10**6)


def load_results():
    out = HERE / "main_job.json"
    return json.loads(out.read_text()) if out.is_file() else {}


def save_results(results):
    (HERE / "main_job.json").write_text(json.dumps(results, indent=1) + "\n")


def levers(names=None):
    import torch

    from steer import load_generator
    from steer.edits import get_edit
    from steer.fit import FitConfig, evaluate_walk, fit_walk
    from steer.walks import LinearWalk, make_walk

    torch.set_num_threads(1)
    results = load_results()
    G = load_generator(MODEL, device="cpu")
    edit = get_edit("zoom")
    shape = G.latent_shape(G.default_space)
    if "zero walk" not in results:
        results["zero walk"] = {"held_out": held_out_loss(G, LinearWalk(shape, sliders=edit.sliders, init_std=0.0), edit)}
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
                         "held_out": held_out_loss(G, walk, edit), "cli_held_out": evaluate_walk(G, walk, edit, config)}
        print(name, results[name], flush=True)
        save_results(results)
    save_results(results)
    zero = results["zero walk"]["held_out"]
    old = results["old default"]["held_out"] if "old default" in results else math.nan
    print(f"\nheld-out masked L2 on {HELD_OUT_BATCHES * 16} latents ({MODEL}, zoom, seed 0); zero walk {zero:.4f}")
    print(f"{'setting':34} {'steps run':>9} {'held-out':>9} {'/ old':>7}")
    for name, r in results.items():
        if "steps_run" in r:  # the settings, not the zero walk or the other models
            print(f"{name:34} {r['steps_run']:9d} {r['held_out']:9.4f} {r['held_out'] / old:7.3f}")


# the default candidates on the other bundled models and edits: a default lr is one value for
# every model and edit, so it must not only suit the main job
OTHER_JOBS = [("dcgan-mnist", "zoom"), ("dcgan-mnist", "shift_x"), ("dcgan-mnist", "rotate"),
              ("dcgan-shapes32", "zoom"), ("dcgan-shapes32", "shift_x"), ("dcgan-shapes32", "colour")]
OTHER_SETTINGS = [("edit's lr constant 800", 800, None, "constant"), ("lr 1e-1 cosine 150", 150, 1e-1, "cosine"),
                  ("lr 2e-1 cosine 100", 100, 2e-1, "cosine")]


def other_models():
    """Held-out loss of the old default and the cosine candidates on every other bundled model
    (one thread, seed 0, the same 512 held-out latents per job); kept in main_job.json."""
    import torch

    from steer import load_generator
    from steer.edits import get_edit
    from steer.fit import FitConfig, fit_walk
    from steer.walks import LinearWalk, make_walk

    torch.set_num_threads(1)
    results = load_results()
    others = results.setdefault("other models", {})
    for model, edit_name in OTHER_JOBS:
        G = load_generator(model, device="cpu")
        edit = get_edit(edit_name)
        shape = G.latent_shape(G.default_space)
        job = others.setdefault(f"{model} {edit_name}", {})
        if "zero walk" not in job:
            job["zero walk"] = held_out_loss(G, LinearWalk(shape, sliders=edit.sliders, init_std=0.0), edit)
        for name, steps, lr, schedule in OTHER_SETTINGS:
            if name in job:
                continue
            walk = make_walk("linear", edit, shape, G.resolution, seed=0)
            fit_walk(G, walk, edit, FitConfig(steps=steps, lr=lr or edit.lr, schedule=schedule, seed=0), progress=False)
            job[name] = held_out_loss(G, walk, edit)
            print(model, edit_name, name, f"{job[name]:.4f}", flush=True)
            save_results(results)
    print(f"\nheld-out masked L2 on {HELD_OUT_BATCHES * 16} latents, seed 0, 1 thread; / old = against the edit's lr "
          "constant 800")
    print(f"{'model and edit':24} {'zero walk':>9}" + "".join(f"{name:>26}" for name, *_ in OTHER_SETTINGS))
    for key, job in others.items():
        old = job.get(OTHER_SETTINGS[0][0], math.nan)
        cells = "".join(f"{job.get(name, math.nan):12.4f} ({job.get(name, math.nan) / old:5.3f})".rjust(26)
                        for name, *_ in OTHER_SETTINGS)
        print(f"{key:24} {job['zero walk']:9.4f}{cells}")


def wall(args, threads):
    """Wall seconds of `steer ARGS` with STEER_THREADS=threads ("auto": steer's own policy)."""
    env = {k: v for k, v in os.environ.items() if k not in ("STEER_THREADS", "OMP_NUM_THREADS")}
    if threads != "auto":
        env["STEER_THREADS"] = threads
    return steer_wall_seconds(args, env=env)


def time_commands(rounds, threads_list, with_old):
    """The new default `rounds` times under each thread count, alternating, and the old default
    once (about 8 minutes) at the first thread count when `with_old`."""
    old = ["walk", "--model", MODEL, "--edit", "zoom", "--steps", "800", "--lr", "5e-3", "--schedule", "constant"]
    new = ["walk", "--model", MODEL, "--edit", "zoom"]
    runs = [("new", threads) for _ in range(rounds) for threads in threads_list]
    if with_old:
        runs.insert(len(threads_list), ("old", threads_list[0]))
    times, held = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for r, (key, threads) in enumerate(runs):
            out = f"{tmp}/{key}{r}"
            times.setdefault((key, threads), []).append(wall([*(old if key == "old" else new), "--out", out], threads))
            held.setdefault((key, threads), []).append(json.loads(Path(out, "loss.json").read_text())["held_out_l2"])
            print(f"run {r}: {key} default, {threads} threads, {times[key, threads][-1]:.1f} s, held-out masked L2 "
                  f"{held[key, threads][-1]:.4f}", flush=True)
    print(f"steer walk --model {MODEL} --edit zoom, wall seconds with start-up, best of the rounds:")
    for (key, threads), seconds in times.items():
        label = "old default (800 steps, lr 5e-3 constant)" if key == "old" else "new default (steer walk --edit zoom)"
        print(f"  {label:43} STEER_THREADS={threads}: {min(seconds):6.1f} s over {len(seconds)}   held-out "
              f"{held[key, threads][0]:.4f}" + ("   (target <= 120 s)" if key == "new" else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["levers", "others", "time"])
    parser.add_argument("--only", default="", help="levers: only these settings (comma-separated names)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", default="2", help="time: thread counts to compare (or auto, steer's default policy), comma-separated")
    parser.add_argument("--no-old", action="store_true", help="time: leave out the old default (8 minutes)")
    args = parser.parse_args()
    if args.what == "levers":
        levers([s for s in args.only.split(",") if s])
    elif args.what == "others":
        other_models()
    else:
        time_commands(args.rounds, [t.strip() for t in args.threads.split(",")], not args.no_old)


if __name__ == "__main__":
    main()
