"""A weight-space slider against the latent walk for the same edit, on error, reach and realism.

For each walk seed, the same command learns a linear walk in z (`steer walk --walk linear`)
and a rank-4 LoRA slider on the generator's layers (`steer walk --walk slider`), 800 steps
of batch 16, the edit's own learning rate. Seed 0 of the linear walk is the one shipped in
walks/MODEL/EDIT when it was made with this command. Each is then measured the same way:

  error    held-out masked L2 against the edit (what `steer walk` prints), and the zero walk's;
  slope    of the achieved attribute on the target's over the training range, and the reach
           against the real digits' spread (`steer quantify --data mnist`);
  realism  the Frechet distance to the real digits in the digit classifier's features at the
           identity, inside the training range (the worse of zoom 1/2 and 2) and at the
           sweep's ends (1/4 and 4), beside the same distance for the exact edit of the
           unwalked samples (`steer quantify --features mnist`: how far from MNIST the asked
           image itself is), and the share of walked samples still recognised as their digit.

Means over seeds with 95 % t intervals.

    python experiments/weight_slider/run.py --model dcgan-mnist --edit zoom --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RUNS = Path("runs") / "weight_slider"
QUANTIFY_ALPHAS = {"zoom": "0.25,0.354,0.5,0.707,1,1.41,2,2.83,4", "shift_x": "-16,-12,-8,-4,0,4,8,12,16",
                   "rotate": "-45,-30,-20,-10,0,10,20,30,45"}


def steer(*args):
    print("+ steer", " ".join(map(str, args)), flush=True)
    subprocess.run([sys.executable, "-m", "steer.cli", *map(str, args)], check=True,
                   env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))


def learn(model, edit, kind, seed):
    shipped = Path("walks") / model / edit / "walk.safetensors"
    if kind == "linear" and seed == 0 and shipped.is_file():
        meta = read(shipped)
        if meta.get("training", {}).get("steps") == 800 and meta.get("training", {}).get("batch") == 16:
            return shipped
    out = RUNS / model / f"{edit}-{kind}-s{seed}"
    if not (out / "walk.safetensors").is_file():
        steer("walk", "--model", model, "--edit", edit, "--walk", kind, "--steps", 800, "--batch", 16,
              "--schedule", "constant", "--seed", seed, "--out", out, "--device", "cpu")
        (out / "checkpoint.pt").unlink(missing_ok=True)
    return out / "walk.safetensors"


def read(path):
    from steer.walks import read_meta
    return read_meta(path)


def measure(path, edit, out):
    if not (out / "quantify.json").is_file():
        steer("quantify", "--walk", path, "--alphas", QUANTIFY_ALPHAS[edit], "--samples", 300, "--data", "mnist",
              "--features", "mnist", "--out", out, "--device", "cpu")
    q = json.loads((out / "quantify.json").read_text())
    meta = read(path)
    frechet = [row.get("frechet_walked_to_data") for row in q["per_alpha"]]
    target_fd = [row.get("frechet_target_to_data") for row in q["per_alpha"]]
    identity = q["alphas"].index(q["identity"])
    inner = [identity - 2, identity + 2]  # zoom 1/2 and 2 (shift 8 px, rotation 20 degrees)
    picks = [q["alphas"][0], q["alphas"][inner[0]], q["identity"], q["alphas"][inner[1]], q["alphas"][-1]]
    recognised, recognised_target = recognition(path, picks), recognition(path, picks, target=True)
    return {"held_out_l2": meta["held_out_l2"], "zero_walk_l2": meta["zero_walk_l2"],
            "slope": q["slope"]["value"] if q.get("slope") else None,
            "reach_low": q["reach"]["low"], "reach_high": q["reach"]["high"],
            "frechet_identity": frechet[identity],
            "frechet_inner": max(frechet[inner[0]], frechet[inner[1]]),
            "frechet_target_inner": max(target_fd[inner[0]], target_fd[inner[1]]),
            "frechet_ends": max(frechet[0], frechet[-1]),
            "frechet_target_ends": max(target_fd[0], target_fd[-1]),
            "recognised_identity": recognised[2], "recognised_inner": min(recognised[1], recognised[3]),
            "recognised_ends": min(recognised[0], recognised[4]),
            "recognised_target_inner": min(recognised_target[1], recognised_target[3]),
            "recognised_target_ends": min(recognised_target[0], recognised_target[4]),
            "file_bytes": Path(path).stat().st_size}


def recognition(path, alphas, n=500, target=False):
    """Share of walked samples (or of the exact edits of the unwalked ones, target=True, the
    undefined border filled with background) the digit classifier reads as their digit, per alpha."""
    import torch

    from steer import Steering
    from steer.classifier import MNIST_CLASSIFIER, load_classifier
    classifier = load_classifier(MNIST_CLASSIFIER)
    steering, _ = Steering.load(path, device="cpu")
    latent, classes = steering.sample(n, seed=31, classes=torch.arange(n) % 10)
    shares = []
    with torch.no_grad():
        source = steering.synthesize(latent, classes).clamp(-1, 1)
        for a in alphas:
            if target:
                from steer.steerability import background_fill
                edited, mask = steering.edit(source, steering.alpha(a, n))
                images = background_fill(edited, mask, source)
            else:
                images = steering.walked(latent, classes, steering.alpha(a, n)).clamp(-1, 1)
            shares.append(float((classifier(images).argmax(1) == classes).float().mean()))
    return shares


KEYS = ("held_out_l2", "zero_walk_l2", "slope", "reach_low", "reach_high", "frechet_identity", "frechet_inner",
        "frechet_target_inner", "frechet_ends", "frechet_target_ends", "recognised_identity", "recognised_inner",
        "recognised_ends", "recognised_target_inner", "recognised_target_ends", "file_bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dcgan-mnist")
    parser.add_argument("--edit", default="zoom", choices=sorted(QUANTIFY_ALPHAS))
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    from steer.stats import mean_with_t_interval

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    rows = {}
    for kind in ("linear", "slider"):
        for seed in seeds:
            path = learn(args.model, args.edit, kind, seed)
            rows.setdefault(kind, []).append(
                dict(seed=seed, walk=str(path),
                     **measure(path, args.edit, RUNS / args.model / f"{args.edit}-{kind}-s{seed}" / "quantify")))
    summary = {kind: {k: mean_with_t_interval([r[k] for r in rs if r[k] is not None])._asdict() for k in KEYS}
               for kind, rs in rows.items()}
    result = {"model": args.model, "edit": args.edit, "seeds": seeds, "rows": rows, "summary": summary,
              "intervals": "95 % Student t over walk seeds"}
    out = HERE / f"{args.model}-{args.edit}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.model}, {args.edit}: mean over walk seeds {','.join(map(str, seeds))} [95% t interval]")
    print(f"{'':24}{'linear walk in z':>30}{'weight slider (LoRA r4)':>30}")
    for k in KEYS:
        cells = []
        for kind in ("linear", "slider"):
            m = summary[kind][k]
            digits = 0 if k == "file_bytes" else 3
            cells.append(f"{m['mean']:.{digits}f} [{m['low']:.{digits}f}, {m['high']:.{digits}f}]"
                         if m["low"] == m["low"] else f"{m['mean']:.{digits}f}")
        print(f"{k:<24}{cells[0]:>30}{cells[1]:>30}")
    print(f"written: {out}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
