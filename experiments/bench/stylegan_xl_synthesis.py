"""StyleGAN-XL synthesis throughput on CPU, steer's fast path vs the reference op order,
measured side by side in one run.

A 256 px StyleGAN3-T configuration by the official design rule (14 layers + ToRGB,
channel_base 32768, channel_max 512, w_dim 512, ImageNet class conditioning), random
weights and Kaiser filters; eval mode, no grad, fp32, from w+ (mapping excluded).

    python experiments/bench/stylegan_xl_synthesis.py [--batch 8] [--resolution 256] [--repeats 1]
"""
from __future__ import annotations

import argparse

import torch

from steer.bench import median_seconds

from steer.generators.stylegan_xl import StyleGANXLGenerator, design_config


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    G = StyleGANXLGenerator(design_config(z_dim=64, w_dim=512, c_dim=1000, img_resolution=args.resolution)).eval()
    G.requires_grad_(False)
    z, classes = G.sample(args.batch, seed=0)
    ws = G.to_space(z, classes, "w+")
    outputs = {}

    def run(impl, rows=None):
        def call():
            G.set_impl(impl)
            with torch.no_grad():
                outputs[impl] = G.synthesize(ws[:rows], classes[:rows], "w+")
        return call

    # warm up on a batch of one: it builds the same per-size caches at an eighth of the cost
    fast_s = median_seconds(run("fast"), args.repeats, run("fast", 1))
    reference_s = median_seconds(run("reference"), args.repeats, run("reference", 1))
    diff = (outputs["fast"] - outputs["reference"]).abs().max().item()
    params = sum(p.numel() for p in G.synthesis.parameters()) / 1e6
    print(f"StyleGAN-XL synthesis {args.resolution} px (StyleGAN3-T, {len(G.synthesis.layer_names)} layers, "
          f"{params:.1f} M params), batch {args.batch}, CPU {torch.get_num_threads()} threads, fp32, no grad")
    print(f"    fast path        {args.batch / fast_s:8.3f} images/s  ({fast_s:.2f} s per batch)")
    print(f"    reference order  {args.batch / reference_s:8.3f} images/s  ({reference_s:.2f} s per batch)")
    print(f"    ratio fast / reference: {reference_s / fast_s:.2f}x   max |difference| {diff:.1e} "
          f"(image range {outputs['reference'].abs().max().item():.2f})")


if __name__ == "__main__":
    main()
