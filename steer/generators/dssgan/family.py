"""The DSS-GAN family as the registry sees it: steer's own folders, official whole-module
checkpoints, and the official training recipe with its discriminator."""
from __future__ import annotations

from ..base import Family
from .generator import DSSGANGenerator
from .official import read_official_checkpoint


def build_dssgan(config: dict) -> DSSGANGenerator:
    from ...errors import SteerError
    if not isinstance(config.get("generator"), dict):
        raise SteerError("a DSS-GAN config.json needs a \"generator\" object (the official config)")
    return DSSGANGenerator(config["generator"])


def dssgan_discriminator(G):
    from .discriminator import DSSGANDiscriminator
    return DSSGANDiscriminator(resolution=G.resolution, num_classes=G.num_classes, base_channels=32,
                               max_channels=256)


def dssgan_recipe(**overrides):
    from ...train import TrainConfig
    return TrainConfig.dssgan_official(**overrides)


def small_dssgan(seed: int = 0) -> DSSGANGenerator:
    import torch

    from .configs import small_config
    torch.manual_seed(seed)
    return DSSGANGenerator(small_config(16, 3, channels=[16, 8], d_state=4, z_base=8, z_per_direction=4)).eval()


FAMILY = Family(name="dssgan", build=build_dssgan, small=small_dssgan, read_checkpoint=read_official_checkpoint,
                discriminator=dssgan_discriminator, recipe=dssgan_recipe)
