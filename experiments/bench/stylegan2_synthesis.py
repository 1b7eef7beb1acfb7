"""StyleGAN2 synthesis throughput on CPU, steer's network vs a plain reference of the official
ops on the same weights, measured side by side in one run.

steer: steer.generators.stylegan2 (fused modulated convolution: one grouped conv per layer,
the weights modulated and demodulated per sample). Reference: written below from the
official formulas in their plain, unfused form, as stylegan2-ada-pytorch computes them with
fused_modconv=False and its reference (non-CUDA) upfirdn2d and bias_act: activations scaled
by the styles, one ordinary conv (a transposed conv then the FIR filter to upsample), the
outputs scaled by the demodulation coefficients, the FIR filter by zero insertion, padding
and a true 2-D convolution. It reads the tensors from steer's state_dict by their official
names, so both run the same weights.

A 256 px configuration by the official design rule (skip architecture, channel_base 32768,
channel_max 512, w_dim 512, conv_clamp 256), random seeded weights, constant noise; eval
mode, no grad, fp32, from w+ (mapping excluded).

    python experiments/bench/stylegan2_synthesis.py [--batch 4] [--resolution 256] [--repeats 1]
"""
from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

from steer.bench import median_seconds
from steer.generators.stylegan2 import StyleGAN2Generator
from steer.generators.stylegan2.network import design_blocks


# ---- the reference ops ------------------------------------------------------------------

def ref_upfirdn2d(x, f, up=1, pad=(0, 0, 0, 0), gain=1.0):
    """Zero insertion by `up`, padding [x0, x1, y0, y1], a true 2-D convolution with f * gain."""
    n, c, h, w = x.shape
    if up > 1:
        y = x.new_zeros(n, c, h * up, w * up)
        y[:, :, ::up, ::up] = x
        x = y
    x = F.pad(x, list(pad))
    kernel = (f * gain).flip([0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, kernel, groups=c)


def ref_conv2d_resample(x, w, f, up=1, padding=0):
    """conv2d, or for up=2 the official order: a transposed conv (stride 2) then the FIR."""
    if up == 1:
        return F.conv2d(x, w, padding=padding)
    kh, kw = w.shape[2:]
    fw = f.shape[-1]
    p0 = padding + (fw + up - 1) // 2 - (kw - 1)
    p1 = padding + (fw - up) // 2 - (kw - up)
    x = F.conv_transpose2d(x, w.transpose(0, 1), stride=up)
    return ref_upfirdn2d(x, f, pad=(p0, p1, p0, p1), gain=up * up)


def ref_bias_act(x, b, lrelu=False, gain=1.0, clamp=None):
    x = x + b.reshape(1, -1, 1, 1)
    if lrelu:
        x = torch.where(x >= 0, x, x * 0.2)
    x = x * gain
    return x if clamp is None else x.clamp(-clamp, clamp)


def ref_affine(sd, name, w):
    """A FullyConnectedLayer with lr multiplier 1: w W^T / sqrt(in) + b."""
    weight, bias = sd[f"{name}.weight"], sd[f"{name}.bias"]
    return w @ weight.t() / math.sqrt(weight.shape[1]) + bias


def ref_modulated_conv(x, weight, styles, demodulate=True, up=1, padding=0, f=None, noise=None):
    """The unfused modulated convolution: x * s, conv with the shared weight, * dcoefs, + noise."""
    n = x.shape[0]
    x = x * styles.reshape(n, -1, 1, 1)
    x = ref_conv2d_resample(x, weight, f, up=up, padding=padding)
    if demodulate:
        # dcoefs[n, o] = 1 / sqrt(sum_{i,k} (weight[o, i, k] s[n, i])^2 + 1e-8)
        dcoefs = ((weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)).square().sum([2, 3, 4]) + 1e-8).rsqrt()
        x = x * dcoefs.reshape(n, -1, 1, 1)
    return x if noise is None else x + noise


def ref_synthesis(sd, blocks, ws, conv_clamp):
    """The official SynthesisNetwork forward (skip architecture, noise 'const')."""
    x = img = None
    w_idx = 0
    for spec in blocks:
        res = spec["resolution"]
        p = f"b{res}"
        f = sd[f"{p}.resample_filter"]
        layers = ["conv1"] if spec["in_channels"] == 0 else ["conv0", "conv1"]
        block_ws = ws[:, w_idx:w_idx + len(layers) + 1]
        if spec["in_channels"] == 0:
            x = sd[f"{p}.const"].unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        for i, layer in enumerate(layers):
            q = f"{p}.{layer}"
            styles = ref_affine(sd, f"{q}.affine", block_ws[:, i])
            noise = sd[f"{q}.noise_const"] * sd[f"{q}.noise_strength"]
            x = ref_modulated_conv(x, sd[f"{q}.weight"], styles, up=2 if layer == "conv0" else 1, padding=1,
                                   f=sd[f"{q}.resample_filter"], noise=noise)
            x = ref_bias_act(x, sd[f"{q}.bias"], lrelu=True, gain=math.sqrt(2), clamp=conv_clamp)
        if img is not None:
            img = ref_upfirdn2d(img, f, up=2, pad=(2, 1, 2, 1), gain=4)
        weight = sd[f"{p}.torgb.weight"]
        styles = ref_affine(sd, f"{p}.torgb.affine", block_ws[:, len(layers)]) / math.sqrt(weight.shape[1])
        y = ref_bias_act(ref_modulated_conv(x, weight, styles, demodulate=False), sd[f"{p}.torgb.bias"],
                         clamp=conv_clamp)
        img = y if img is None else img + y
        w_idx += len(layers)
    return img


# ---- the benchmark ----------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    conv_clamp = 256
    blocks = design_blocks(args.resolution, channel_base=32768, channel_max=512, architecture="skip",
                           conv_clamp=conv_clamp, num_fp16_res=4)
    config = {"family": "stylegan2", "z_dim": 512, "w_dim": 512, "c_dim": 0, "img_resolution": args.resolution,
              "img_channels": 3, "blocks": blocks, "mapping": {"num_layers": 8, "lr_multiplier": 0.01}}
    G = StyleGAN2Generator(config).eval().requires_grad_(False)
    with torch.no_grad():  # noise strengths start at 0 officially: make the noise inputs count
        for name, p in G.synthesis.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    z, _ = G.sample(args.batch, seed=0)
    ws = G.to_space(z, None, "w+")
    sd = {k: v.detach() for k, v in G.synthesis.state_dict().items()}
    outputs = {}

    def steer_run(rows=None):
        def call():
            with torch.no_grad():
                outputs["steer"] = G.synthesize(ws[:rows], None, "w+")
        return call

    def reference_run(rows=None):
        def call():
            with torch.no_grad():
                outputs["reference"] = ref_synthesis(sd, blocks, ws[:rows], conv_clamp)
        return call

    # warm up on a batch of one (allocator, kernels) at a fraction of the cost
    steer_s = median_seconds(steer_run(), args.repeats, steer_run(1))
    reference_s = median_seconds(reference_run(), args.repeats, reference_run(1))
    diff = (outputs["steer"] - outputs["reference"]).abs().max().item()
    params = sum(p.numel() for p in G.synthesis.parameters()) / 1e6
    print(f"StyleGAN2 synthesis {args.resolution} px (skip, {G.num_ws} ws, {params:.1f} M params), batch "
          f"{args.batch}, CPU {torch.get_num_threads()} threads, fp32, no grad, noise const")
    print(f"    steer (fused modconv)        {args.batch / steer_s:8.3f} images/s  ({steer_s:.2f} s per batch)")
    print(f"    reference (official, unfused) {args.batch / reference_s:8.3f} images/s  ({reference_s:.2f} s per batch)")
    print(f"    ratio steer / reference: {reference_s / steer_s:.2f}x   max |difference| {diff:.1e} "
          f"(image range {outputs['reference'].abs().max().item():.2f})")


if __name__ == "__main__":
    main()
