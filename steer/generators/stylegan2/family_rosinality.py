"""rosinality/stylegan2-pytorch checkpoints as the registry sees them: train.py's
checkpoints and convert_weight.py's {g_ema, latent_avg} files (the ones e4e, pSp, HyperStyle
and StyleCLIP use), and steer's own folders of them."""
from __future__ import annotations

from ..base import Family
from .generator import RosinalityGenerator


def build_rosinality(config: dict) -> RosinalityGenerator:
    return RosinalityGenerator({k: v for k, v in config.items() if k != "class_names"})


def small_rosinality(seed: int = 0) -> RosinalityGenerator:
    import torch
    torch.manual_seed(seed)
    config = {"family": "rosinality", "size": 16, "style_dim": 16, "n_mlp": 2,
              "channels": {"4": 16, "8": 16, "16": 8}, "lr_mlp": 0.01, "blur_kernel": [1, 3, 3, 1]}
    G = RosinalityGenerator(config, name="rosinality-small")
    with torch.no_grad():
        G.latent_avg.copy_(G.mean_latent(1024))
        for module in [G.to_rgb1, *G.to_rgbs]:
            module.conv.weight.mul_(0.1)
    return G


def read_checkpoint(obj, name: str):
    from .official import read_rosinality
    return read_rosinality(obj, name)


FAMILY = Family(name="rosinality", build=build_rosinality, small=small_rosinality, read_checkpoint=read_checkpoint,
                notes={"about": "rosinality/stylegan2-pytorch StyleGAN2"})
