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


def dssgan_for_training(resolution: int, num_classes: int, channels=None, d_state: int = 16,
                        directions=("row_fwd", "col_fwd", "diag_left"), **_) -> DSSGANGenerator:
    """A fresh small DSS-GAN for `steer train --arch dssgan`, with the official initialisation.
    channels: widths from 8 px up to the resolution (default: configs.default_channels)."""
    from ...errors import SteerError
    from .configs import default_channels, small_config
    from .generator import DIRECTIONS, init_for_training
    if resolution < 16:
        raise SteerError(f"--resolution {resolution}: a DSS-GAN needs at least 16 px")
    sizes = [8 * 2 ** i for i in range(resolution.bit_length() - 3)]
    widths = list(channels) if channels is not None else default_channels(resolution)
    if len(widths) != len(sizes) or min(widths) < 1:
        raise SteerError(f"--channels needs {len(sizes)} positive widths, one per size {', '.join(map(str, sizes))}")
    directions = list(directions)
    if not directions or len(set(directions)) != len(directions) or set(directions) - set(DIRECTIONS):
        raise SteerError(f"--directions must list distinct scan directions from {', '.join(DIRECTIONS)}; "
                         f"got '{','.join(directions)}'")
    return init_for_training(DSSGANGenerator(small_config(resolution, num_classes, channels=widths, d_state=d_state,
                                                          directions=directions)))


def small_dssgan(seed: int = 0) -> DSSGANGenerator:
    import torch

    from .configs import small_config
    torch.manual_seed(seed)
    return DSSGANGenerator(small_config(16, 3, channels=[16, 8], d_state=4, z_base=8, z_per_direction=4)).eval()


FAMILY = Family(name="dssgan", build=build_dssgan, small=small_dssgan, read_checkpoint=read_official_checkpoint,
                discriminator=dssgan_discriminator, recipe=dssgan_recipe, for_training=dssgan_for_training,
                notes={"about": "A class-conditional DSS-GAN (Mamba generator, steer's `dssgan` family)"})
