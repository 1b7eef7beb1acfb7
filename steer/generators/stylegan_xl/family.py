"""The StyleGAN-XL family as the registry sees it: steer's own folders and official
.pkl snapshots (read by the restricted unpickler, nothing in them run)."""
from __future__ import annotations

from .. import schema as S
from ..base import Family
from .generator import StyleGANXLGenerator
from .official import official_parts, read_official_checkpoint

_WIDTH = S.Int(1, S.MAX_CHANNELS)
_FACTOR = S.Int(1, 16)
_TAPS = S.Int(1, 256)
LAYER_SCHEMA = S.Table({
    "name": S.Text(pattern=r"L\d{1,3}_\d{1,5}_\d{1,5}"),  # the official L{index}_{size}_{channels}
    "in_channels": _WIDTH, "out_channels": _WIDTH, "conv_kernel": S.Int(1, 15), "is_torgb": S.Bool(),
    "up_factor": _FACTOR, "down_factor": _FACTOR, "up_taps": _TAPS, "down_taps": _TAPS, "down_radial": S.Bool(),
    "padding": S.Fixed(*[S.Int(-4 * S.MAX_RESOLUTION, 4 * S.MAX_RESOLUTION)] * 4),
    "conv_clamp": S.Maybe(S.Num(0, 1e9)),
    "_filter": S.Mapping(r"[a-z_]{1,32}", S.Num(-1e6, 1e6), max_len=8),  # design_config's (random weights)
}, required=("name", "in_channels", "out_channels", "conv_kernel", "is_torgb", "up_factor", "down_factor",
             "up_taps", "down_taps", "padding"))
# the synthesis input (a Fourier feature grid); StyleGAN3-T/R records the same one
INPUT_SCHEMA = S.Table({"channels": _WIDTH, "size": S.Fixed(*[S.Int(1, 2 * S.MAX_RESOLUTION)] * 2),
                        "sampling_rate": S.Num(1e-3, 4 * S.MAX_RESOLUTION),
                        "bandwidth": S.Num(1e-6, 4 * S.MAX_RESOLUTION)},
                       required=("channels", "size", "sampling_rate", "bandwidth"))
CONFIG_SCHEMA = S.Table({
    "family": S.Text(choices=("stylegan_xl",)),
    "z_dim": S.Int(1, S.MAX_LATENT_DIM), "w_dim": S.Int(1, S.MAX_LATENT_DIM), "c_dim": S.Int(0, S.MAX_CLASSES),
    "img_resolution": S.Int(4, S.MAX_RESOLUTION), "img_channels": S.Int(1, 4),
    "mapping": S.Table({"num_layers": S.Int(1, 64), "lr_multiplier": S.Num(1e-6, 1e3),
                        "embed_num": S.Int(1, S.MAX_CLASSES), "embed_dim": S.Int(1, S.MAX_LATENT_DIM)},
                       required=("num_layers", "lr_multiplier", "embed_num", "embed_dim")),
    "input": INPUT_SCHEMA,
    "layers": S.Items(LAYER_SCHEMA, 1, S.MAX_LAYERS),
    "output_scale": S.Num(-1e6, 1e6),
}, required=("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels", "mapping", "input", "layers"))


def check_stylegan_xl_config(config: dict, where: str) -> dict:
    """A StyleGAN-XL config (steer's folder config.json, or the one read off an official
    snapshot) checked against CONFIG_SCHEMA, then the sizes that must fit together: each
    layer reads what the one before it writes, the last is the ToRGB layer."""
    config = S.check(CONFIG_SCHEMA, config, where)
    check_layer_chain(config, where)
    return config


def check_layer_chain(config: dict, where: str):
    """The cross-entry rules StyleGAN-XL and StyleGAN3-T/R share, on a config whose entries
    are already checked: layer names are distinct, each layer reads what the one before it
    writes, and the last is the ToRGB layer."""
    layers = config["layers"]
    S.rule(len({layer["name"] for layer in layers}) == len(layers), where, "two layers share a name")
    width = config["input"]["channels"]
    for layer in layers:
        S.rule(layer["in_channels"] == width, where, f"layer {layer['name']} reads {layer['in_channels']} "
               f"channels but the layer before it writes {width}")
        width = layer["out_channels"]
    S.rule(layers[-1]["is_torgb"] and width == config["img_channels"], where,
           f"the last layer must be the ToRGB layer writing img_channels ({config['img_channels']}) channels")


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
                check_config=check_stylegan_xl_config, checkpoint_parts=official_parts,
                read_checkpoint=read_official_checkpoint)
