"""A small class-conditional convolutional GAN (the bundled baseline), trainable on CPU.

Generator: [z, class embedding] -> linear -> 4x4 grid -> (upsample, conv, conv) blocks
-> RGB. The first layer is a plain linear map of z onto a 4x4 grid, the form that
closed-form directions need. Discriminator: residual-free conv stack with average-pool
downsampling, minibatch standard deviation, and a projection class term.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import schema as S
from .base import Family, FirstLayer, Generator


def _channels(resolution: int, base: int, cap: int = 256) -> dict:
    """Channels per resolution: `base` at full size, doubling per halving, up to `cap`."""
    out, res, ch = {}, resolution, base
    while res >= 4:
        out[res] = min(ch, cap)
        res, ch = res // 2, ch * 2
    return out


class DCGANGenerator(Generator):
    family = "dcgan"

    def __init__(self, resolution: int = 32, latent_dim: int = 64, num_classes: int = 4,
                 embed_dim: int = 16, base_channels: int = 32, name: str = "dcgan"):
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError("resolution must be a power of two, at least 8")
        self.name = name
        self.resolution, self.latent_dim, self.num_classes = resolution, latent_dim, num_classes
        self.embed_dim, self.base_channels = embed_dim, base_channels
        ch = _channels(resolution, base_channels)
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        in_dim = latent_dim + (embed_dim if num_classes else 0)
        self.fc = nn.Linear(in_dim, ch[4] * 16)
        blocks, res = [], 4
        while res < resolution:
            blocks.append(nn.ModuleDict({
                "conv1": nn.Conv2d(ch[res], ch[res * 2], 3, padding=1),
                "conv2": nn.Conv2d(ch[res * 2], ch[res * 2], 3, padding=1),
            }))
            res *= 2
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.Conv2d(ch[resolution], 3, 1)

    def synthesize(self, latent, classes=None, space=None, truncation=None):
        self.check_space(space or "z")
        h = latent
        if self.embed is not None:
            if classes is None:
                raise ValueError("this generator is class-conditional: pass classes")
            h = torch.cat([h, self.embed(classes)], dim=1)
        h = F.leaky_relu(self.fc(h), 0.2).view(h.shape[0], -1, 4, 4)
        for block in self.blocks:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = F.leaky_relu(block["conv1"](h), 0.2)
            h = F.leaky_relu(block["conv2"](h), 0.2)
        return torch.tanh(self.to_rgb(h))

    def first_layer(self) -> FirstLayer:
        """The linear map z -> 4x4 grid, for closed-form directions. The class embedding's
        part is constant for a class; averaged over the classes it joins the bias."""
        c = self.fc.out_features // 16
        weight = self.fc.weight[:, : self.latent_dim].reshape(c, 4, 4, self.latent_dim)
        bias = self.fc.bias
        if self.embed is not None:
            bias = bias + self.fc.weight[:, self.latent_dim:] @ self.embed.weight.mean(0)
        return FirstLayer(weight, bias.reshape(c, 4, 4), slice(0, self.latent_dim))

    def config(self) -> dict:
        return {"family": self.family, "resolution": self.resolution, "latent_dim": self.latent_dim,
                "num_classes": self.num_classes, "embed_dim": self.embed_dim,
                "base_channels": self.base_channels}


class DCGANDiscriminator(nn.Module):
    def __init__(self, resolution: int = 32, num_classes: int = 4, base_channels: int = 32):
        super().__init__()
        self.resolution, self.num_classes, self.base_channels = resolution, num_classes, base_channels
        ch = _channels(resolution, base_channels)
        self.from_rgb = nn.Conv2d(3, ch[resolution], 1)
        blocks, res = [], resolution
        while res > 4:
            blocks.append(nn.ModuleDict({
                "conv1": nn.Conv2d(ch[res], ch[res], 3, padding=1),
                "conv2": nn.Conv2d(ch[res], ch[res // 2], 3, padding=1),
            }))
            res //= 2
        self.blocks = nn.ModuleList(blocks)
        self.final_conv = nn.Conv2d(ch[4] + 1, ch[4], 3, padding=1)
        self.fc = nn.Linear(ch[4] * 16, ch[4])
        self.out = nn.Linear(ch[4], 1)
        self.embed = nn.Embedding(num_classes, ch[4]) if num_classes else None

    def forward(self, images, classes=None):
        h = F.leaky_relu(self.from_rgb(images), 0.2)
        for block in self.blocks:
            h = F.leaky_relu(block["conv1"](h), 0.2)
            h = F.leaky_relu(block["conv2"](h), 0.2)
            h = F.avg_pool2d(h, 2)
        # minibatch standard deviation: one extra channel telling D how varied the batch is
        n, c, hh, ww = h.shape
        group = 4 if n % 4 == 0 else 1
        if group > 1:
            std = h.view(group, n // group, c, hh, ww).std(0, unbiased=False).mean((1, 2, 3))
            std = std.view(-1, 1, 1, 1).repeat(group, 1, hh, ww)
        else:
            std = h.new_zeros(n, 1, hh, ww)
        h = torch.cat([h, std], dim=1)
        h = F.leaky_relu(self.final_conv(h), 0.2)
        h = F.leaky_relu(self.fc(h.flatten(1)), 0.2)
        logits = self.out(h).squeeze(1)
        if self.embed is not None:
            logits = logits + (self.embed(classes) * h).sum(1) / math.sqrt(h.shape[1])
        return logits

    def config(self) -> dict:
        return {"resolution": self.resolution, "num_classes": self.num_classes,
                "base_channels": self.base_channels}


CONFIG_SCHEMA = S.Table({
    "family": S.Text(choices=("dcgan",)),
    "resolution": S.Int(8, S.MAX_RESOLUTION, power_of_two=True),
    "latent_dim": S.Int(1, S.MAX_LATENT_DIM),
    "num_classes": S.Int(0, S.MAX_CLASSES),
    "embed_dim": S.Int(1, S.MAX_LATENT_DIM),
    "base_channels": S.Int(1, S.MAX_CHANNELS),
})


def check_dcgan_config(config: dict, where: str) -> dict:
    """config.json of a dcgan folder, checked against CONFIG_SCHEMA (absent sizes take the
    constructor's defaults)."""
    return S.check(CONFIG_SCHEMA, config, where)


def build_dcgan(config: dict) -> DCGANGenerator:
    keys = ("resolution", "latent_dim", "num_classes", "embed_dim", "base_channels")
    return DCGANGenerator(**{k: config[k] for k in keys if k in config})


def dcgan_discriminator(G) -> DCGANDiscriminator:
    """The D `steer train` pairs with a DCGAN generator: three quarters of G's width."""
    return DCGANDiscriminator(resolution=G.resolution, num_classes=max(G.num_classes, 1),
                              base_channels=max(8, G.base_channels * 3 // 4))


def dcgan_recipe(**overrides):
    """Adam 2e-4, betas (0.5, 0.99), lazy R1 gamma 1 every 16 steps, EMA 0.999."""
    from ..train import TrainConfig
    return TrainConfig(**overrides)


def dcgan_for_training(resolution: int, num_classes: int, base_channels: int = 32, **_) -> DCGANGenerator:
    """A fresh generator for `steer train --arch dcgan` (options of other families ignored)."""
    return DCGANGenerator(resolution=resolution, num_classes=num_classes, base_channels=base_channels)


def small_dcgan(seed: int = 0) -> DCGANGenerator:
    torch.manual_seed(seed)
    return DCGANGenerator(resolution=16, latent_dim=8, num_classes=3, embed_dim=4, base_channels=8)


FAMILY = Family(name="dcgan", build=build_dcgan, small=small_dcgan, check_config=check_dcgan_config,
                discriminator=dcgan_discriminator,
                recipe=dcgan_recipe, for_training=dcgan_for_training,
                notes={"about": "A class-conditional conv generator (steer's `dcgan` family)"})
