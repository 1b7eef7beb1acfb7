"""The StyleGAN3 (T and R) family as the registry sees it: NVlabs stylegan3 snapshots (read
by the restricted unpickler, nothing in them run), and steer's own folders of them."""
from __future__ import annotations

import re

from .. import schema as S
from ..base import Family
from ..stylegan_xl.family import INPUT_SCHEMA, LAYER_SCHEMA, check_layer_chain
from .family import MAPPING_SCHEMA, check_mapping, only_keys
from .generator import StyleGAN3Generator

# StyleGAN3-T/R's synthesis network is StyleGAN-XL's (the same layer and input specs); its
# mapping network is the NVlabs one StyleGAN2 has. The official design has 14 layers plus
# ToRGB by default; MAX_LAYERS bounds any other.
CONFIG_SCHEMA = S.Table({
    "family": S.Text(choices=("stylegan3",)),
    "z_dim": S.Int(1, S.MAX_LATENT_DIM), "w_dim": S.Int(1, S.MAX_LATENT_DIM), "c_dim": S.Int(0, S.MAX_CLASSES),
    "img_resolution": S.Int(4, S.MAX_RESOLUTION, power_of_two=True), "img_channels": S.Int(1, 4),
    "input": INPUT_SCHEMA,
    "layers": S.Items(LAYER_SCHEMA, 1, S.MAX_LAYERS),
    "output_scale": S.Num(-1e6, 1e6),
    "mapping": MAPPING_SCHEMA,
}, required=("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels", "input", "layers", "mapping"))


def _layer_size(size: int, layer: dict, axis: int) -> int:
    """The side a StyleGAN3 layer writes along one axis (0: x, 1: y), from the official
    padding rule: (out - 1) * down + 1 = (in + kernel - 1) * up + pad_lo + pad_hi - up_taps - down_taps + 2."""
    pad = layer["padding"][2 * axis] + layer["padding"][2 * axis + 1]
    span = (size + layer["conv_kernel"] - 1) * layer["up_factor"] + pad - layer["up_taps"] - layer["down_taps"] + 1
    return span // layer["down_factor"] + 1


def check_stylegan3_config(config: dict, where: str) -> dict:
    """A StyleGAN3-T/R config (steer's folder config.json, or the one read off an NVlabs
    snapshot) checked against CONFIG_SCHEMA, then the layer chain StyleGAN-XL's has (names
    distinct, channels chaining, ToRGB last) and what the official design makes: ToRGB is the
    last layer alone, each layer's side follows from its padding, factors and taps, agrees
    with the side its official name L{index}_{side}_{channels} records, and the last one is
    img_resolution."""
    config = S.check(CONFIG_SCHEMA, config, where)
    check_mapping(config, where)
    check_layer_chain(config, where)
    layers = config["layers"]
    S.rule(not any(layer["is_torgb"] for layer in layers[:-1]), where, "ToRGB must be the last layer alone")
    size = list(config["input"]["size"])
    for layer in layers:
        only_keys(layer, LAYER_SCHEMA, where, f"layer {layer['name']}")
        size = [_layer_size(size[axis], layer, axis) for axis in (0, 1)]
        S.rule(all(1 <= side <= 4 * S.MAX_RESOLUTION for side in size), where,
               f"layer {layer['name']} would write a {size[0]} x {size[1]} grid")
        _, named, channels = re.fullmatch(r"L(\d+)_(\d+)_(\d+)", layer["name"]).groups()
        S.rule(size == [int(named)] * 2 and int(channels) == layer["out_channels"], where,
               f"layer {layer['name']} writes {size[0]} x {size[1]} x {layer['out_channels']}, not what its name says")
    res = config["img_resolution"]
    S.rule(size == [res, res], where, f"the layers end at {size[0]} x {size[1]}, not img_resolution {res}")
    return config


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


def checkpoint_parts(obj):
    from .official import nvlabs_parts
    return nvlabs_parts(obj, "stylegan3")


FAMILY = Family(name="stylegan3", build=build_stylegan3, small=small_stylegan3, check_config=check_stylegan3_config,
                checkpoint_parts=checkpoint_parts, read_checkpoint=read_checkpoint,
                notes={"about": "NVlabs StyleGAN3-T and StyleGAN3-R"})
