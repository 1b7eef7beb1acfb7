"""How much the main job slows down when one other single-thread process runs beside it.

    python experiments/bench/contention.py                  # --steps 60 --rounds 2
    python experiments/bench/contention.py --policies auto,2,1

Runs `steer walk --model dssgan-mnist --edit zoom --steps N` under each thread policy
(`auto`, steer's default, or `--threads K`), alone and with one competing process that this
script starts first and stops after: a single-thread busy loop in a child Python, the kind of
job (a second experiment, a compile, a notebook) a shared 2-core machine has. Rounds
alternate alone / contended so slow drift of the machine hits both alike. Prints wall
seconds (best of the rounds, start-up included, as a user sees it) and the slowdown
contended / alone per policy; the target is at most 1.5x for the default policy. Run it on
an otherwise quiet machine.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

from steer.bench import steer_wall_seconds

MODEL = "dssgan-mnist"
BUSY_LOOP = "x = 0\nwhile True:\n    x += 1\n"


def walk_seconds(policy: str, steps: int, out: str) -> float:
    threads = [] if policy == "auto" else ["--threads", policy]
    return steer_wall_seconds([*threads, "walk", "--model", MODEL, "--edit", "zoom", "--steps", steps,
                               "--out", out])


def contended_seconds(policy: str, steps: int, out: str) -> float:
    competitor = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        time.sleep(1.0)  # running before the walk starts, as a job already on the machine is
        return walk_seconds(policy, steps, out)
    finally:
        competitor.kill()
        competitor.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--policies", default="auto,2", help="auto and/or fixed thread counts, comma-separated")
    args = parser.parse_args()
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    times = {p: {"alone": [], "contended": []} for p in policies}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for policy in policies:
                times[policy]["alone"].append(walk_seconds(policy, args.steps, f"{tmp}/{policy}-a{r}"))
                times[policy]["contended"].append(contended_seconds(policy, args.steps, f"{tmp}/{policy}-c{r}"))
                print(f"round {r} {policy:>4}: alone {times[policy]['alone'][-1]:.1f} s, "
                      f"contended {times[policy]['contended'][-1]:.1f} s", flush=True)
    print(f"\nsteer walk --model {MODEL} --edit zoom --steps {args.steps}, best of {args.rounds}, "
          "wall seconds with start-up; one competing single-thread busy loop")
    print(f"{'threads':>8} {'alone s':>8} {'contended s':>12} {'slowdown':>9}")
    for policy in policies:
        alone, contended = min(times[policy]["alone"]), min(times[policy]["contended"])
        print(f"{policy:>8} {alone:8.1f} {contended:12.1f} {contended / alone:8.2f}x")


if __name__ == "__main__":
    main()
