"""StyleGAN-XL synthesis throughput on CPU, steer's fast path vs the reference op order,
measured side by side in one run.

A StyleGAN3-T synthesis network by the design rule (14 layers + ToRGB, w_dim 512, ImageNet
class conditioning), random weights and Kaiser filters; eval mode, no grad, fp32, from w+
(mapping excluded). --widths official (the default) is StyleGAN-XL's own: its train.py
doubles StyleGAN3's channel_base and channel_max for stylegan3-t (65536 and 1024); --widths
stylegan3 is StyleGAN3's defaults (32768, 512), a network half as wide.

    python experiments/bench/stylegan_xl_synthesis.py [--batch 8] [--resolution 256] [--widths official]
"""
from __future__ import annotations

import argparse

import torch

from steer.bench import counted_gflop, matmul_peak_gflops, median_seconds

from steer.generators.stylegan_xl import StyleGANXLGenerator, design_config

# (channel_base, channel_max): StyleGAN-XL's train.py doubles StyleGAN3's for stylegan3-t
WIDTHS = {"official": (65536, 1024), "stylegan3": (32768, 512)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--widths", choices=sorted(WIDTHS), default="official")
    args = parser.parse_args()
    torch.manual_seed(0)
    base, top = WIDTHS[args.widths]
    G = StyleGANXLGenerator(design_config(z_dim=64, w_dim=512, c_dim=1000, img_resolution=args.resolution,
                                          channel_base=base, channel_max=top)).eval()
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
    gflop = counted_gflop(run("fast"))
    peak = matmul_peak_gflops()
    print(f"StyleGAN-XL synthesis {args.resolution} px (StyleGAN3-T, {len(G.synthesis.layer_names)} layers, "
          f"{params:.1f} M params, widths {args.widths}: channel_base {base}, channel_max {top}), batch {args.batch}, CPU {torch.get_num_threads()} threads, fp32, no grad")
    print(f"    fast path        {args.batch / fast_s:8.3f} images/s  ({fast_s:.2f} s per batch)")
    print(f"    reference order  {args.batch / reference_s:8.3f} images/s  ({reference_s:.2f} s per batch)")
    print(f"    ratio fast / reference: {reference_s / fast_s:.2f}x   max |difference| {diff:.1e} "
          f"(image range {outputs['reference'].abs().max().item():.2f})")
    print(f"    {gflop:.1f} GFLOP per batch in matrix products and convolutions: fast {gflop / fast_s:.1f} GFLOP/s, "
          f"reference {gflop / reference_s:.1f} GFLOP/s; fp32 matmul peak of this CPU {peak:.1f} GFLOP/s "
          f"(fast at {gflop / fast_s / peak:.0%} of it)")


if __name__ == "__main__":
    main()
