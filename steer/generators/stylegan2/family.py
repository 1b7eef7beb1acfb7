"""The NVlabs StyleGAN2 family as the registry sees it: stylegan2-ada-pytorch snapshots and
the stylegan3 repo's `--cfg stylegan2` ones (read by the restricted unpickler, nothing in
them run), and steer's own folders of them."""
from __future__ import annotations

from ..base import Family
from .generator import StyleGAN2Generator


def build_stylegan2(config: dict) -> StyleGAN2Generator:
    return StyleGAN2Generator({k: v for k, v in config.items() if k != "class_names"})


def small_stylegan2(seed: int = 0) -> StyleGAN2Generator:
    import torch

    from .network import design_blocks
    torch.manual_seed(seed)
    blocks = design_blocks(16, channel_base=128, channel_max=16, architecture="skip", num_fp16_res=2)
    config = {"family": "stylegan2", "z_dim": 8, "w_dim": 16, "c_dim": 3, "img_resolution": 16, "img_channels": 3,
              "blocks": blocks, "mapping": {"num_layers": 2, "lr_multiplier": 0.01}}
    G = StyleGAN2Generator(config, name="stylegan2-small")
    with torch.no_grad():  # random weights give images in about +-3; keep the small one in range
        for res in G.synthesis.block_resolutions:
            getattr(G.synthesis, f"b{res}").torgb.weight.mul_(0.1)
    return G


def read_checkpoint(obj, name: str):
    from .official import read_nvlabs
    return read_nvlabs(obj, name, "stylegan2")


FAMILY = Family(name="stylegan2", build=build_stylegan2, small=small_stylegan2, read_checkpoint=read_checkpoint,
                notes={"about": "NVlabs StyleGAN2 (stylegan2-ada-pytorch, stylegan3 --cfg stylegan2)"})
