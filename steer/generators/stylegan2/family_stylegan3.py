"""The StyleGAN3 (T and R) family as the registry sees it: NVlabs stylegan3 snapshots (read
by the restricted unpickler, nothing in them run), and steer's own folders of them."""
from __future__ import annotations

from ..base import Family
from .generator import StyleGAN3Generator


def build_stylegan3(config: dict) -> StyleGAN3Generator:
    return StyleGAN3Generator({k: v for k, v in config.items() if k != "class_names"})


def small_stylegan3(seed: int = 0) -> StyleGAN3Generator:
    import torch

    from ..stylegan_xl.network import design_config
    torch.manual_seed(seed)
    xl = design_config(z_dim=8, w_dim=16, c_dim=0, img_resolution=16, channel_base=256, channel_max=16,
                       num_layers=4, num_critical=1)
    config = {"family": "stylegan3", "z_dim": 8, "w_dim": 16, "c_dim": 2, "img_resolution": 16, "img_channels": 3,
              "input": xl["input"], "layers": xl["layers"], "output_scale": 0.25,
              "mapping": {"num_layers": 2, "lr_multiplier": 0.01}}
    return StyleGAN3Generator(config, name="stylegan3-small")


def read_checkpoint(obj, name: str):
    from .official import read_nvlabs
    return read_nvlabs(obj, name, "stylegan3")


FAMILY = Family(name="stylegan3", build=build_stylegan3, small=small_stylegan3, read_checkpoint=read_checkpoint,
                notes={"about": "NVlabs StyleGAN3-T and StyleGAN3-R"})
