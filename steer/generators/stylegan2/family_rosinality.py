"""rosinality/stylegan2-pytorch checkpoints as the registry sees them: train.py's
checkpoints and convert_weight.py's {g_ema, latent_avg} files (the ones e4e, pSp, HyperStyle
and StyleCLIP use), and steer's own folders of them."""
from __future__ import annotations

from .. import schema as S
from ..base import Family
from .generator import RosinalityGenerator

# rosinality's Generator(size, style_dim, n_mlp, channel_multiplier, blur_kernel, lr_mlp);
# steer records the width per resolution (`channels`) instead of the multiplier, so reduced
# and custom tables load too. Official defaults: style_dim 512, n_mlp 8, lr_mlp 0.01, [1, 3, 3, 1].
CONFIG_SCHEMA = S.Table({
    "family": S.Text(choices=("rosinality",)),
    "size": S.Int(4, S.MAX_RESOLUTION, power_of_two=True),
    "style_dim": S.Int(1, S.MAX_LATENT_DIM),
    "n_mlp": S.Int(1, 64),
    "channels": S.Mapping(r"[1-9][0-9]{0,3}", S.Int(1, S.MAX_CHANNELS), max_len=10),  # "4" ... "2048"
    "lr_mlp": S.Num(1e-6, 1e3),
    "blur_kernel": S.Items(S.Num(0, 1e3), 1, 8),
    "official_channel_table": S.Bool(),
}, required=("size", "style_dim", "n_mlp", "channels"))


def check_rosinality_config(config: dict, where: str) -> dict:
    """A rosinality config (steer's folder config.json, or the one read off a checkpoint's
    g_ema) checked against CONFIG_SCHEMA, then what the network needs: a width for each
    resolution 4, 8, ... size and no other, and a blur kernel that can be normalised."""
    config = S.check(CONFIG_SCHEMA, config, where)
    size = config["size"]
    wanted = [str(2 ** i) for i in range(2, size.bit_length())]
    S.rule(sorted(config["channels"], key=int) == wanted, where,
           f"'channels' must give a width for each of {', '.join(wanted)} (size {size}), "
           f"not {', '.join(sorted(config['channels'], key=int)) or 'none'}")
    if "blur_kernel" in config:  # make_kernel divides by the sum
        S.rule(sum(config["blur_kernel"]) > 0, where, "'blur_kernel' must have a positive sum")
    return config


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


FAMILY = Family(name="rosinality", build=build_rosinality, small=small_rosinality,
                check_config=check_rosinality_config, read_checkpoint=read_checkpoint,
                notes={"about": "rosinality/stylegan2-pytorch StyleGAN2"})
