"""DSS-GAN generator throughput on CPU, measured side by side in one run.

(b) the official 128 px configuration (6.46 M parameters, random official init), eval mode,
    no grad: steer's selective scan vs the same generator with its scan swapped for the
    direct transcription of mamba-ssm's selective_scan_ref; images per second and ratio.
(c) sampling throughput of the bundled dssgan-shapes32 at batch 64 (and dcgan-shapes32 for
    scale), images per second.

    python experiments/bench/dssgan_generator.py [--batch 1 4] [--repeats 3]
"""
from __future__ import annotations

import argparse

import torch

import steer
from steer.bench import counted_gflop, matmul_peak_gflops, median_seconds
from steer.generators.dssgan import scan
from steer.generators.dssgan.configs import official_config
from steer.generators.dssgan.generator import DSSGANGenerator, init_for_training
from steer.generators.registry import bundled_models


def official_128(batch: int, repeats: int, peak: float) -> None:
    torch.manual_seed(0)
    G = init_for_training(DSSGANGenerator(official_config(128))).eval().requires_grad_(False)
    z, classes = G.sample(batch, seed=0)
    outputs = {}

    def run(backend):
        def call():
            scan.BACKEND = backend
            try:
                with torch.no_grad():
                    outputs[backend] = G.synthesize(z, classes)
            finally:
                scan.BACKEND = "auto"
        return call

    steer_s = median_seconds(run("steer"), repeats)
    reference_s = median_seconds(run("reference"), 1)  # slow: one timed call
    diff = (outputs["steer"] - outputs["reference"]).abs().max().item()
    gflop = counted_gflop(run("steer"))
    print(f"(b) official 128 px DSS-GAN, {sum(p.numel() for p in G.parameters()) / 1e6:.2f} M params, "
          f"batch {batch}, CPU {torch.get_num_threads()} threads, eval, no grad")
    print(f"    steer scan        {batch / steer_s:8.3f} images/s  ({steer_s:.2f} s per batch)")
    print(f"    reference scan    {batch / reference_s:8.3f} images/s  ({reference_s:.2f} s per batch)")
    print(f"    ratio steer / reference: {reference_s / steer_s:.1f}x   max |difference| {diff:.1e}")
    print(f"    {gflop:.2f} GFLOP per batch in matrix products and convolutions: steer {gflop / steer_s:.1f} GFLOP/s, "
          f"reference {gflop / reference_s:.1f} GFLOP/s; fp32 matmul peak of this CPU {peak:.1f} GFLOP/s "
          f"(steer at {gflop / steer_s / peak:.0%} of it)")


def sampling(batch: int, repeats: int, dssgan_model: str) -> None:
    print(f"(c) sampling throughput, batch {batch}, CPU {torch.get_num_threads()} threads, no grad")
    for name in (dssgan_model, "dcgan-shapes32"):
        if "/" not in name and name not in bundled_models():
            print(f"    {name:<18} not bundled; skipped")
            continue
        G = steer.load_generator(name, device="cpu")
        z, classes = G.sample(batch, seed=0)

        def call():
            with torch.no_grad():
                G.synthesize(z, classes)

        seconds = median_seconds(call, repeats)
        print(f"    {name:<18} {batch / seconds:8.1f} images/s  ({seconds * 1000:.0f} ms per batch)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="batches for the 128 px comparison")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dssgan-model", default="dssgan-shapes32",
                        help="the 32 px DSS-GAN for (c): bundled name or model folder")
    args = parser.parse_args()
    peak = matmul_peak_gflops()
    for batch in args.batch:
        official_128(batch, args.repeats, peak)
    sampling(64, args.repeats, args.dssgan_model)


if __name__ == "__main__":
    main()
