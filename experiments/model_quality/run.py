"""Offline quality of a shapes generator: Frechet distance in the shapes classifier's
features (with the real-vs-real distance as its floor) and class recognition rates.

    python experiments/model_quality/run.py --model dcgan-shapes32 [--samples 5000] [--json out.json]
"""
import argparse
import json

from steer import load_generator
from steer.classifier import load_classifier
from steer.metrics import shapes_generator_quality


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="dcgan-shapes32")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    G = load_generator(args.model)
    result = dict(model=args.model, **shapes_generator_quality(G, load_classifier(device=G.device), n=args.samples))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
