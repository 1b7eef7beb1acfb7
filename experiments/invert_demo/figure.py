"""Draw an inversion and its edit as one figure: the crop the model saw, the reconstruction
after projection and after pivotal tuning (with their PSNR), and the pivot walked across alphas
in the tuned model.

    python experiments/invert_demo/figure.py INVERSION_DIR WALK OUT.png [--alphas 0.25,0.5,1,2,4]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image

import steer
from steer.edits import get_edit
from steer.invert import load_inversion
from steer.render import render_walk
from steer.viz import to_uint8

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inversion")
    parser.add_argument("walk")
    parser.add_argument("out")
    parser.add_argument("--alphas", default="0.25,0.5,1,2,4")
    args = parser.parse_args()
    folder = Path(args.inversion)
    info = json.loads((folder / "inversion.json").read_text())
    base = steer.load_generator(info["model"], device="cpu")
    tuned, latent, classes, info = load_inversion(folder, base)
    walk, meta = steer.walks.load(args.walk)
    alphas = [float(a) for a in args.alphas.split(",")]
    strip = render_walk(tuned, walk, get_edit(meta["edit"]), latent, classes, alphas, space=info["space"])[0]
    m = info["measurements"]
    top = [(np.asarray(Image.open(folder / "crop.png").convert("RGB")), f"photo, {base.resolution} px crop"),
           (np.asarray(Image.open(folder / "projected.png").convert("RGB")),
            f"after projection\n{m['projection']['psnr_db']:.1f} dB"),
           (np.asarray(Image.open(folder / "tuned.png").convert("RGB")),
            f"after tuning\n{m['tuning']['psnr_db']:.1f} dB")]
    fig, axes = plt.subplots(2, len(alphas), figsize=(1.6 * len(alphas), 3.9), dpi=100)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (picture, title) in zip(axes[0], top):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title(title, fontsize=8)
    for ax, image, a in zip(axes[1], to_uint8(strip), alphas):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(f"zoom α = {a:g}" if meta["edit"] == "zoom" else f"α = {a:g}", fontsize=8)
    fig.suptitle(f"{Path(info['crop']['source']).name} in {base.name}: inverted, tuned, then walked",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    with torch.no_grad():
        main()
