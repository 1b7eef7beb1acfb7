"""Offline quality of a shapes or MNIST generator: Frechet distance in the matching steer
classifier's features (with a real-vs-real distance as its floor) and class recognition
rates. The data and classifier follow the model: a model folder whose config.json records
"training_data": "mnist" (or whose classes are the digits 0..9) is measured with
mnist-classifier32 against the held-out MNIST digits; any other with shapes-classifier32.

    python experiments/model_quality/run.py --model dcgan-shapes32 [--samples 5000] [--json out.json]
        [--grid samples.png]
"""
import argparse
import json

import torch

from steer import load_generator
from steer.metrics import generate, generator_quality


def save_labelled_grid(generator, path, rows: int = 8, seed: int = 0):
    """rows x classes samples, one column per class with its name above (8 unconditional
    samples a row when the model has no classes)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from steer.viz import grid

    columns = generator.num_classes or 8
    images, _ = generate(generator, rows * columns, seed=seed)  # classes cycle 0..k-1: one column each
    pad, size = 2, generator.resolution
    picture = grid(images, columns, pad=pad)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * columns), 0.6 * rows + 0.6), dpi=150)
    ax.imshow(picture, interpolation="nearest")
    names = generator.class_names or [str(c) for c in range(generator.num_classes)]
    ax.set_xticks([pad + c * (size + pad) + size / 2 for c in range(columns)] if generator.num_classes else [])
    ax.set_xticklabels(names[:columns] if generator.num_classes else [])
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_yticks([])
    ax.set_frame_on(False)
    ax.set_title(generator.name, fontsize=9, pad=14)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="dcgan-shapes32")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--json", default=None)
    parser.add_argument("--grid", default=None, help="also write a labelled sample grid to this PNG")
    args = parser.parse_args()
    G = load_generator(args.model)
    with torch.no_grad():
        result = dict(model=args.model, **generator_quality(G, n=args.samples))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    if args.grid:
        with torch.no_grad():
            save_labelled_grid(G, args.grid)


if __name__ == "__main__":
    main()
