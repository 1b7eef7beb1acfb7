"""NVlabs StyleGAN2 (stylegan2-ada-pytorch's training/networks.py and the stylegan3 repo's
training/networks_stylegan2.py), written for steer: the mapping network (also StyleGAN3's)
and the synthesis network with modulated, demodulated convolutions, fused up-FIR
upsampling, per-layer noise, ToRGB, conv_clamp and the `orig`, `skip` and `resnet`
architectures. Module, parameter and buffer names are the official ones, so an official
G_ema state_dict loads with strict=True.

Every setting that is not a tensor (channels per block, architecture, clamp, noise) comes
from a JSON config read off a checkpoint's recorded attributes. Everything runs in fp32:
the blocks official checkpoints flag `use_fp16` are computed in fp32 on CPU and CUDA alike
(the flag is kept in the config, for the record).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..stylegan_xl.network import FullyConnectedLayer, _rsqrt_mean_square
from ..stylegan_xl.ops import upfirdn2d

ARCHITECTURES = ("orig", "skip", "resnet")
NOISE_MODES = ("const", "random", "none")


def setup_filter(taps=(1, 3, 3, 1)) -> torch.Tensor:
    """The official FIR setup for a short 1-D filter: the outer product, normalised to sum 1."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f) if f.numel() < 8 else f
    return f / f.sum()


def bias_act(x, bias=None, act: str = "linear", gain: float | None = None, clamp: float | None = None):
    """Bias, activation (linear or leaky ReLU 0.2), gain (default 1 or sqrt 2), clamp."""
    if bias is not None:
        x = x + bias.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2)
    gain = (math.sqrt(2) if act == "lrelu" else 1.0) if gain is None else float(gain)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def upsample2d(x, f, up: int = 2):
    """The official upsample2d: zero insertion, FIR f with gain up**2, padding that keeps it centred."""
    fw = f.shape[-1]
    p = [(fw + up - 1) // 2, (fw - up) // 2]
    return upfirdn2d(x, f, up=up, padding=[p[0], p[1], p[0], p[1]], gain=up * up)


def conv2d_resample(x, w, f=None, up: int = 1, padding: int = 0, groups: int = 1):
    """conv2d with optional 2x upsampling in the official order: a transposed convolution with
    stride `up`, then the FIR filter f (gain up**2) over the padded result; 1x1 kernels
    upsample first. Weights are used as stored (no flips), as the official layers call it."""
    out_ch, in_per_group, kh, kw = w.shape
    if up == 1:
        return F.conv2d(x, w.to(x.dtype), padding=padding, groups=groups)
    fh, fw = f.shape[0], f.shape[-1]
    px0 = padding + (fw + up - 1) // 2
    px1 = padding + (fw - up) // 2
    py0 = padding + (fh + up - 1) // 2
    py1 = padding + (fh - up) // 2
    if kh == 1 and kw == 1:
        x = upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up * up)
        return F.conv2d(x, w.to(x.dtype), groups=groups)
    if groups == 1:
        w = w.transpose(0, 1)
    else:
        w = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_ch // groups, kh, kw)
    px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
    pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
    x = F.conv_transpose2d(x, w.to(x.dtype), stride=up, padding=[pyt, pxt], groups=groups)
    return upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up)


def modulated_conv2d(x, weight, styles, noise=None, up: int = 1, padding: int = 0, resample_filter=None,
                     demodulate: bool = True):
    """StyleGAN2's modulated convolution, fused (one grouped convolution, one weight per
    sample) as the official code runs it in inference; noise is added after the conv."""
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    x = conv2d_resample(x, w.reshape(-1, in_ch, kh, kw), resample_filter, up=up, padding=padding, groups=n)
    x = x.reshape(n, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise
    return x


class MappingNetwork(nn.Module):
    """z (normalised) and, for conditional models, embed(c) (normalised, after z) -> FCs with
    lrelu and the lr multiplier -> w, broadcast to num_ws, truncated toward w_avg (all ws, or
    the first `cutoff`). The StyleGAN2-ADA and StyleGAN3 mapping networks are this one."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None,
                 lr_multiplier: float = 0.01):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim > 0 else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        self.embed = FullyConnectedLayer(c_dim, embed_features) if c_dim > 0 else None
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], "lrelu", lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def centre(self, classes=None):
        """The w every sample is truncated toward: the one w_avg, conditional or not."""
        return self.w_avg.unsqueeze(0)

    def forward(self, z, c=None, psi: float = 1.0, cutoff: int | None = None):
        """z [N, z_dim], c one-hot [N, c_dim] -> ws [N, num_ws, w_dim]."""
        x = _rsqrt_mean_square(z.to(torch.float32)) if self.z_dim > 0 else None
        if self.c_dim > 0:
            if c is None:
                raise ValueError("this generator is class-conditional: pass c")
            y = _rsqrt_mean_square(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if psi != 1:
            cutoff = self.num_ws if cutoff is None else int(cutoff)
            head = self.w_avg.lerp(ws[:, :cutoff], psi)
            ws = torch.cat([head, ws[:, cutoff:]], dim=1)
        return ws


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (2x upsampling in a block's conv0), noise, bias, lrelu, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, conv_clamp: float | None = None):
        super().__init__()
        self.resolution, self.up, self.use_noise = int(resolution), int(up), bool(use_noise)
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.padding = kernel_size // 2
        self.act_gain = math.sqrt(2)
        self.register_buffer("resample_filter", setup_filter())
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        if self.use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x, w, noise_mode: str = "const", gain: float = 1.0, generator=None):
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, generator=generator)
            noise = noise.to(x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias, "lrelu", gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """1x1 modulated conv without demodulation (styles times 1/sqrt(fan-in)), bias, clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x, w):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class Conv2dLayer(nn.Module):
    """A plain equalised-lr conv; here the 1x1, bias-free, 2x-upsampling skip of a resnet block."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True, up: int = 1):
        super().__init__()
        self.up, self.padding = int(up), kernel_size // 2
        self.register_buffer("resample_filter", setup_filter())
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x, gain: float = 1.0):
        x = conv2d_resample(x, self.weight * self.weight_gain, self.resample_filter, up=self.up, padding=self.padding)
        return bias_act(x, self.bias, gain=gain)


class SynthesisBlock(nn.Module):
    """One resolution: the learned constant (4x4) or an upsampling conv0, then conv1, and
    ToRGB (skip: every block; orig and resnet: the last only; resnet adds a 1x1 skip)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", conv_clamp: float | None = None,
                 use_noise: bool = True, use_fp16: bool = False):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unsupported architecture {architecture!r}")
        self.in_channels, self.resolution, self.is_last = int(in_channels), int(resolution), bool(is_last)
        self.architecture, self.use_fp16 = architecture, bool(use_fp16)
        self.num_conv = self.num_torgb = 0
        self.register_buffer("resample_filter", setup_filter())
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, use_noise=use_noise,
                                        conv_clamp=conv_clamp)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, use_noise=use_noise,
                                    conv_clamp=conv_clamp)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2)

    def forward(self, x, img, ws, noise_mode: str = "const", generator=None):
        w_iter = iter(ws.unbind(dim=1))
        kw = {"noise_mode": noise_mode, "generator": generator}
        if self.in_channels == 0:
            x = self.const.to(torch.float32).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, next(w_iter), **kw)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), **kw)
            x = self.conv1(x, next(w_iter), gain=np.sqrt(0.5), **kw)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), **kw)
            x = self.conv1(x, next(w_iter), **kw)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter)).to(torch.float32)
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(nn.Module):
    """Blocks b4 ... b{img_resolution}; block b{r} reads ws[w_idx : w_idx + num_conv + num_torgb]
    and the index then advances by num_conv only (a ToRGB shares the next block's first w)."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, blocks: list):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = []
        self.num_ws = 0
        for spec in blocks:
            spec = dict(spec)
            res = int(spec.pop("resolution"))
            block = SynthesisBlock(w_dim=w_dim, resolution=res, img_channels=img_channels, **spec)
            self.num_ws += block.num_conv + (block.num_torgb if block.is_last else 0)
            setattr(self, f"b{res}", block)
            self.block_resolutions.append(res)

    def style_affines(self) -> list:
        """Per w+ row, the effective weights [out, w_dim] of the affines that read it (SeFa),
        following forward's indexing (a ToRGB shares the next block's first w)."""
        rows = [[] for _ in range(self.num_ws)]
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            layers = [getattr(block, name) for name in ("conv0", "conv1") if hasattr(block, name)]
            if block.num_torgb:
                layers.append(block.torgb)
            for i, layer in enumerate(layers):
                rows[w_idx + i].append(layer.affine.weight * layer.affine.weight_gain)
            w_idx += block.num_conv
        return rows

    def forward(self, ws, noise_mode: str = "const", generator=None):
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}")
        ws = ws.to(torch.float32)
        w_idx = 0
        x = img = None
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            x, img = block(x, img, block_ws, noise_mode=noise_mode, generator=generator)
            w_idx += block.num_conv
        return img


def design_blocks(img_resolution: int, channel_base: int = 32768, channel_max: int = 512,
                  architecture: str = "skip", conv_clamp: float | None = 256, num_fp16_res: int = 0,
                  use_noise: bool = True) -> list:
    """The block list the official SynthesisNetwork builds for these settings."""
    log2 = int(math.log2(img_resolution))
    resolutions = [2 ** i for i in range(2, log2 + 1)]
    channels = {res: min(channel_base // res, channel_max) for res in resolutions}
    fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
    return [{"resolution": res, "in_channels": channels[res // 2] if res > 4 else 0, "out_channels": channels[res],
             "is_last": res == img_resolution, "architecture": architecture, "conv_clamp": conv_clamp,
             "use_noise": use_noise, "use_fp16": res >= fp16_resolution} for res in resolutions]
