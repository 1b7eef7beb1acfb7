"""rosinality/stylegan2-pytorch's generator (the layout e4e, pSp, HyperStyle and StyleCLIP
load), written for steer with the official module names: `style` (PixelNorm + EqualLinear
with lr_mul), `input.input`, `conv1`/`to_rgb1` at 4x4, `convs.{i}`, `to_rgbs.{k}` and the
`noises.noise_{i}` buffers, so a checkpoint's g_ema loads with strict=True.

Channel widths come from the tensor shapes (a config's `channels`), not from the official
fixed table, so reduced or custom tables load too.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..stylegan_xl.ops import upfirdn2d

OFFICIAL_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def official_channels(size: int, channel_multiplier: int = 2) -> dict:
    """The official resolution -> width table (widths from 64 px on scale with the multiplier)."""
    return {r: c * (channel_multiplier if r >= 64 else 1) for r, c in OFFICIAL_CHANNELS.items() if r <= size}


def make_kernel(taps) -> torch.Tensor:
    k = torch.as_tensor(taps, dtype=torch.float32)
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def _upfirdn(x, kernel, up: int = 1, pad=(0, 0)):
    return upfirdn2d(x, kernel, up=up, padding=[pad[0], pad[1], pad[0], pad[1]])


def fused_leaky_relu(x, bias, slope: float = 0.2, scale: float = math.sqrt(2)):
    return F.leaky_relu(x + bias.reshape(1, -1, *([1] * (x.ndim - 2))), slope) * scale


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: str | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_dim], float(bias_init)))
        self.activation, self.lr_mul = activation, lr_mul
        self.scale = lr_mul / math.sqrt(in_dim)

    def forward(self, x):
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class Blur(nn.Module):
    def __init__(self, kernel, pad, upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor ** 2)
        self.pad = tuple(pad)

    def forward(self, x):
        return _upfirdn(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    def __init__(self, kernel, factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor ** 2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return _upfirdn(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """Per-sample modulated (optionally demodulated) conv as one grouped convolution;
    upsampling: a stride-2 transposed conv, then Blur."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1.0)

    def forward(self, x, style):
        n, _, h, w = x.shape
        k, cin, cout = self.kernel_size, self.in_channel, self.out_channel
        style = self.modulation(style).view(n, 1, cin, 1, 1)
        weight = self.scale * self.weight * style
        if self.demodulate:
            demod = torch.rsqrt(weight.square().sum([2, 3, 4]) + 1e-8)
            weight = weight * demod.view(n, cout, 1, 1, 1)
        x = x.reshape(1, n * cin, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * cin, cout, k, k)
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=n)
            return self.blur(out.view(n, cout, *out.shape[2:]))
        out = F.conv2d(x, weight.reshape(n * cout, cin, k, k), padding=self.padding, groups=n)
        return out.view(n, cout, *out.shape[2:])


class NoiseInjection(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image, noise=None, generator=None):
        if noise is None:
            n, _, h, w = image.shape
            noise = torch.randn(n, 1, h, w, generator=generator).to(image)
        return image + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, n: int):
        return self.input.repeat(n, 1, 1, 1)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))

    def forward(self, x):
        return fused_leaky_relu(x, self.bias)


class StyledConv(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 upsample: bool = False, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample,
                                    blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x, style, noise=None, generator=None):
        return self.activate(self.noise(self.conv(x, style), noise=noise, generator=generator))


class ToRGB(nn.Module):
    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True, blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class RosinalityNetwork(nn.Module):
    """The modules of rosinality's Generator. `map(z)` is `style(z)`; `synthesis(latent)` takes
    the broadcast latents [N, n_latent, style_dim]: index 0 -> conv1, 1 -> to_rgb1, then per
    block k convs[2k] <- 2k+1, convs[2k+1] <- 2k+2, to_rgbs[k] <- 2k+3."""

    def __init__(self, size: int, style_dim: int, n_mlp: int, channels: dict, lr_mlp: float = 0.01,
                 blur_kernel=(1, 3, 3, 1)):
        super().__init__()
        self.size, self.style_dim = int(size), int(style_dim)
        channels = {int(k): int(v) for k, v in channels.items()}
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp,
                                                              activation="fused_lrelu") for _ in range(n_mlp)])
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(channels[4], style_dim, upsample=False)
        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        for idx in range(self.num_layers):
            r = 2 ** ((idx + 5) // 2)
            self.noises.register_buffer(f"noise_{idx}", torch.randn(1, 1, r, r))
        in_channel = channels[4]
        for i in range(3, self.log_size + 1):
            out_channel = channels[2 ** i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim))
            in_channel = out_channel
        self.n_latent = self.log_size * 2 - 2

    def noise_inputs(self, noise_mode: str, n: int):
        if noise_mode == "const":
            return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        if noise_mode == "none":
            return [torch.zeros_like(getattr(self.noises, f"noise_{i}")) for i in range(self.num_layers)]
        return [None] * self.num_layers

    def style_affines(self) -> list:
        """Per latent row, the effective modulation weights [out, style_dim] that read it (SeFa)."""
        rows = [[] for _ in range(self.n_latent)]

        def add(i, module):
            rows[i].append(module.conv.modulation.weight * module.conv.modulation.scale)

        add(0, self.conv1)
        add(1, self.to_rgb1)
        for k, to_rgb in enumerate(self.to_rgbs):
            add(2 * k + 1, self.convs[2 * k])
            add(2 * k + 2, self.convs[2 * k + 1])
            add(2 * k + 3, to_rgb)
        return rows

    def synthesis(self, latent, noise_mode: str = "const", generator=None):
        noise = self.noise_inputs(noise_mode, latent.shape[0])
        out = self.input(latent.shape[0])
        out = self.conv1(out, latent[:, 0], noise=noise[0], generator=generator)
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for conv1, conv2, noise1, noise2, to_rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2],
                                                        noise[2::2], self.to_rgbs):
            out = conv1(out, latent[:, i], noise=noise1, generator=generator)
            out = conv2(out, latent[:, i + 1], noise=noise2, generator=generator)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip
