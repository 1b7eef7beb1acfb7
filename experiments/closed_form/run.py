"""Closed-form directions against the zero walk and a short learned linear walk.

For each model and edit: the masked L2 between G(walk(z, alpha)) and edit(G(z), alpha) on
held-out latents, alpha drawn over the training range as in training (steer.fit's
evaluate_walk), and the time it took to get each walk. Models: the bundled dcgan-shapes32
and dssgan-shapes32 (its closed form acts on z_base through the token projection), and a
random-weight BigGAN-deep in the 128 px layout (thinner layers, channel width 32, so
that the learned walk trains in minutes on one CPU thread).

    OMP_NUM_THREADS=1 python experiments/closed_form/run.py [--models dcgan-shapes32,dssgan-shapes32,biggan]
"""
import argparse
import time

import torch

import steer
from steer.directions import closed_form_walk
from steer.edits import get_edit
from steer.fit import FitConfig, evaluate_walk, fit_walk
from steer.generators.biggan import random_biggan
from steer.walks import LinearWalk

torch.set_num_threads(1)
EDITS = ("zoom", "shift_x", "shift_y")


def models(names):
    for name in ("dcgan-shapes32", "dssgan-shapes32"):
        if name in names:
            yield name, steer.load_generator(name, device="cpu"), dict(steps=200, batch=8, eval_batches=4)
    if "biggan" not in names:
        return
    started = time.perf_counter()
    G = random_biggan(128, channel_width=32, seed=0).requires_grad_(False)
    print(f"(random BigGAN-deep-128 layout, channel width 32, built in {time.perf_counter() - started:.1f} s)")
    yield "biggan-deep-128 (random, width 32)", G, dict(steps=200, batch=4, eval_batches=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="dcgan-shapes32,dssgan-shapes32,biggan",
                        help="comma-separated: dcgan-shapes32, dssgan-shapes32, biggan (random weights)")
    names = parser.parse_args().models.split(",")
    print(f"{'model':<36}{'edit':<9}{'zero L2':>9}{'closed L2':>11}{'learned L2':>12}"
          f"{'closed s':>10}{'learned s':>11}")
    for name, G, settings in models(names):
        for edit_name in EDITS:
            edit = get_edit(edit_name)
            config = FitConfig(steps=settings["steps"], batch=settings["batch"], lr=edit.lr, seed=0)

            def held_out(walk):
                return evaluate_walk(G, walk, edit, config, batches=settings["eval_batches"])

            zero = LinearWalk((G.latent_dim,), init_std=0.0)
            started = time.perf_counter()
            closed = closed_form_walk(G, edit)
            closed_seconds = time.perf_counter() - started
            learned = LinearWalk((G.latent_dim,), sliders=1, seed=0)
            started = time.perf_counter()
            fit_walk(G, learned, edit, config, progress=False)
            learned_seconds = time.perf_counter() - started
            print(f"{name:<36}{edit_name:<9}{held_out(zero):9.4f}{held_out(closed):11.4f}{held_out(learned):12.4f}"
                  f"{closed_seconds:10.3f}{learned_seconds:11.1f}", flush=True)


if __name__ == "__main__":
    main()
