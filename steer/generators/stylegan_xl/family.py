"""The StyleGAN-XL family as the registry sees it: steer's own folders and official
.pkl snapshots (read by the restricted unpickler, nothing in them run)."""
from __future__ import annotations

from ..base import Family
from .generator import StyleGANXLGenerator
from .official import read_official_checkpoint


def build_stylegan_xl(config: dict) -> StyleGANXLGenerator:
    return StyleGANXLGenerator({k: v for k, v in config.items() if k != "class_names"})


def small_stylegan_xl(seed: int = 0) -> StyleGANXLGenerator:
    import torch

    from .network import design_config
    torch.manual_seed(seed)
    config = design_config(z_dim=8, w_dim=16, c_dim=3, img_resolution=16, channel_base=256, channel_max=16,
                           num_layers=4, num_critical=1)
    return StyleGANXLGenerator(config, name="stylegan_xl-small")


FAMILY = Family(name="stylegan_xl", build=build_stylegan_xl, small=small_stylegan_xl,
                read_checkpoint=read_official_checkpoint)
