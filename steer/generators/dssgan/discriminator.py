"""The DSS-GAN discriminator: a StyleGAN2-ADA-style residual network with a projection
class term, rebuilt with the official module and parameter names so official state_dicts
load with strict=True.

Layout (official, for resolution R):

    from_rgb (1x1 conv) -> leaky ReLU
    block_R, block_R/2, ..., block_8   residual blocks, each halving the size:
        conv1 (3x3, in->out), conv2 (3x3, out->out), 2x2 average pool,
        skip = avgpool(1x1 conv without bias), output (main + skip) / sqrt(2)
    minibatch standard deviation (group of 8, one feature) -> +1 channel at 4x4
    block_4 (3x3 conv) -> conv_out (4x4 conv, no padding, to 1x1) -> h (C4 features)
    logit = fc(h) + <embed(y), h> / sqrt(C4)

Channels: the block input at size r has min(base * 2^s, max) channels with
s = min(log2(R / r), 3), so they double over the first three halvings and then stay.
The official code fixes R to 128, 256 or 512; here any power of two >= 8 works, so small
CPU-trainable versions can be built. The official training initialises every Conv2d and
Linear with Xavier-uniform weights and zero biases (the class embedding keeps PyTorch's
N(0, 1)); this module does the same at construction.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _xavier_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class MiniBatchStdDev(nn.Module):
    """Append the standard deviation across a group of samples as extra channels.

    Samples i and i + B/G, i + 2B/G, ... form one group (the StyleGAN2 layout). Where the
    batch is not a multiple of the group size (the official code would fail), the group
    shrinks to the largest common divisor of the two.
    """

    def __init__(self, group_size: int | None = 4, num_features: int = 1):
        super().__init__()
        self.group_size, self.num_features = group_size, num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = n if self.group_size is None else math.gcd(min(self.group_size, n), n)
        f = self.num_features
        stats = x.reshape(group, n // group, f, c // f, h, w)
        stats = (stats - stats.mean(0, keepdim=True)).square().mean(0)
        stats = (stats + 1e-8).sqrt().mean((2, 3, 4))  # (n / group, f)
        stats = stats[:, :, None, None].repeat(group, 1, h, w)
        return torch.cat([x, stats], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convs with a 1x1 skip, both halved by average pooling."""

    def __init__(self, in_ch: int, out_ch: int, downsample: bool = True):
        super().__init__()
        self.downsample = downsample
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, bias=False) if (downsample or in_ch != out_ch) else None
        self.resample = nn.AvgPool2d(2) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = F.leaky_relu(self.conv2(F.leaky_relu(self.conv1(x), 0.2)), 0.2)
        if self.skip is not None:
            x = self.skip(x)
        if self.resample is not None:
            main, x = self.resample(main), self.resample(x)
        return (main + x) / math.sqrt(2)


class DSSGANDiscriminator(nn.Module):
    """D(images in [-1, 1] NCHW, classes int64) -> logits (B,).

    Defaults are the official 256 px recipe (base 64, max 384, group 8, 3 classes); the
    official 128 px config uses base 96 / max 512, the 512 px one base 26 / max 192.
    """

    def __init__(self, resolution: int = 256, num_classes: int = 3, base_channels: int = 64,
                 max_channels: int = 384, mbstd_group_size: int | None = 8, mbstd_num_features: int = 1,
                 official_init: bool = True):
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two, at least 8 (got {resolution})")
        self.resolution, self.num_classes = resolution, num_classes
        self.base_channels, self.max_channels = base_channels, max_channels
        self.mbstd_group_size, self.mbstd_num_features = mbstd_group_size, mbstd_num_features

        def channels(size: int) -> int:
            stage = min(int(math.log2(resolution // size)), 3)
            return min(base_channels * 2 ** stage, max_channels)

        self.from_rgb = nn.Conv2d(3, channels(resolution), 1)
        self._block_sizes = []
        size = resolution
        while size > 4:
            setattr(self, f"block_{size}", DiscriminatorBlock(channels(size), channels(size // 2)))
            self._block_sizes.append(size)
            size //= 2
        c4 = channels(4)
        self.mbstd = MiniBatchStdDev(mbstd_group_size, mbstd_num_features)
        self.block_4 = nn.Conv2d(c4 + mbstd_num_features, c4, 3, padding=1)
        self.conv_out = nn.Conv2d(c4, c4, 4)
        self.fc = nn.Linear(c4, 1)
        self.embed = nn.Embedding(num_classes, c4) if num_classes else None
        if official_init:
            self.apply(_xavier_init)

    def forward(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        h = F.leaky_relu(self.from_rgb(images), 0.2)
        for size in self._block_sizes:
            h = getattr(self, f"block_{size}")(h)
        h = self.mbstd(h)
        h = F.leaky_relu(self.block_4(h), 0.2)
        h = F.leaky_relu(self.conv_out(h), 0.2).flatten(1)
        logits = self.fc(h).squeeze(1)
        if self.embed is not None:
            if classes is None:
                raise ValueError("this discriminator is class-conditional: pass classes")
            logits = logits + (self.embed(classes) * h).sum(1) / math.sqrt(h.shape[1])
        return logits

    def config(self) -> dict:
        return {"resolution": self.resolution, "num_classes": self.num_classes,
                "base_channels": self.base_channels, "max_channels": self.max_channels,
                "mbstd_group_size": self.mbstd_group_size, "mbstd_num_features": self.mbstd_num_features}
