"""Train the shapes classifier that steer ships in models/shapes-classifier32/.

    python experiments/shapes_classifier/train.py [--steps 1500] [--out models/shapes-classifier32]
"""
import argparse
import time

import torch

from steer.classifier import save_classifier, train_classifier
from steer.data.shapes import SHAPE_CLASSES, sample_shapes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", default="models/shapes-classifier32")
    args = parser.parse_args()
    start = time.time()
    model = train_classifier(steps=args.steps)
    minutes = (time.time() - start) / 60
    images, attrs = sample_shapes(4000, seed=999)  # held out: training seeds never reach 999
    with torch.no_grad():
        accuracy = (model(images).argmax(1) == attrs["class"]).float().mean().item()
    card = ("# shapes-classifier32\n\nA small CNN that recognises the four shapes classes "
            f"({', '.join(SHAPE_CLASSES)}) at 32x32. steer uses its 128-d penultimate features for "
            "the offline Frechet distance of shapes generators and its predictions for class "
            "recognition.\n\n"
            f"- training command: `python experiments/shapes_classifier/train.py --steps {args.steps}`\n"
            f"- wall time: {minutes:.1f} min on CPU\n"
            f"- accuracy on 4000 held-out real shapes: {accuracy:.4f}\n")
    save_classifier(model, args.out, card)
    print(f"accuracy {accuracy:.4f} in {minutes:.1f} min -> {args.out}")


if __name__ == "__main__":
    main()
