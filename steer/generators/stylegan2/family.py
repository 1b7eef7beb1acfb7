"""The NVlabs StyleGAN2 family as the registry sees it: stylegan2-ada-pytorch snapshots and
the stylegan3 repo's `--cfg stylegan2` ones (read by the restricted unpickler, nothing in
them run), and steer's own folders of them."""
from __future__ import annotations

from .. import schema as S
from ..base import Family
from .generator import StyleGAN2Generator
from .network import ARCHITECTURES

# The NVlabs mapping network (StyleGAN2-ADA's and StyleGAN3's): the official default is 8
# layers, lr multiplier 0.01; widths are latent widths.
MAPPING_SCHEMA = S.Table({
    "num_layers": S.Int(1, 64), "lr_multiplier": S.Num(1e-6, 1e3),
    "embed_features": S.Int(1, S.MAX_LATENT_DIM), "layer_features": S.Int(1, S.MAX_LATENT_DIM),
}, required=("num_layers", "lr_multiplier"))
BLOCK_SCHEMA = S.Table({
    "resolution": S.Int(4, S.MAX_RESOLUTION, power_of_two=True),
    "in_channels": S.Int(0, S.MAX_CHANNELS),  # 0: the first block, which starts from a learned constant
    "out_channels": S.Int(1, S.MAX_CHANNELS),
    "is_last": S.Bool(), "architecture": S.Text(choices=ARCHITECTURES),
    "conv_clamp": S.Maybe(S.Num(0, 1e9)),  # the official clamp is None or >= 0 (256 in the configs)
    "use_noise": S.Bool(), "use_fp16": S.Bool(),
}, required=("resolution", "in_channels", "out_channels", "is_last", "architecture"))
CONFIG_SCHEMA = S.Table({
    "family": S.Text(choices=("stylegan2",)),
    "z_dim": S.Int(1, S.MAX_LATENT_DIM), "w_dim": S.Int(1, S.MAX_LATENT_DIM), "c_dim": S.Int(0, S.MAX_CLASSES),
    "img_resolution": S.Int(4, S.MAX_RESOLUTION, power_of_two=True), "img_channels": S.Int(1, 4),
    "blocks": S.Items(BLOCK_SCHEMA, 1, 10),  # 4 px ... 2048 px is at most 10 blocks
    "mapping": MAPPING_SCHEMA,
}, required=("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels", "blocks", "mapping"))


def only_keys(table: dict, spec: S.Table, where: str, what: str):
    """A cross-entry rule for tables whose entries become constructor arguments: an entry the
    schema does not declare would be a TypeError deep in the build, so it is refused here."""
    extra = sorted(set(table) - set(spec.fields))
    S.rule(not extra, where, f"{what} has an entry {extra[0]!r:.40} that it does not take" if extra else "")


def check_mapping(config: dict, where: str):
    only_keys(config["mapping"], MAPPING_SCHEMA, where, "'mapping'")


def check_stylegan2_config(config: dict, where: str) -> dict:
    """A StyleGAN2 config (steer's folder config.json, or the one read off an NVlabs snapshot)
    checked against CONFIG_SCHEMA, then what the official SynthesisNetwork builds: one block
    per resolution 4, 8, ... img_resolution, each reading what the one before it writes, the
    last flagged is_last, and one architecture (orig, skip or resnet) for all of them."""
    config = S.check(CONFIG_SCHEMA, config, where)
    check_mapping(config, where)
    blocks, res = config["blocks"], config["img_resolution"]
    wanted = [2 ** i for i in range(2, res.bit_length())]
    S.rule([b["resolution"] for b in blocks] == wanted, where,
           f"blocks must be at resolutions {', '.join(map(str, wanted))} for img_resolution {res}")
    width = 0
    for i, block in enumerate(blocks):
        only_keys(block, BLOCK_SCHEMA, where, f"blocks[{i}]")
        S.rule(block["in_channels"] == width, where, f"blocks[{i}] (b{block['resolution']}) reads "
               f"{block['in_channels']} channels but the block before it writes {width}")
        S.rule(block["is_last"] == (i == len(blocks) - 1), where, "only the last block is flagged is_last")
        width = block["out_channels"]
    S.rule(len({b["architecture"] for b in blocks}) == 1, where,
           "the blocks mix architectures; the official network uses one for all")
    return config


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


def checkpoint_parts(obj):
    from .official import nvlabs_parts
    return nvlabs_parts(obj, "stylegan2")


FAMILY = Family(name="stylegan2", build=build_stylegan2, small=small_stylegan2, check_config=check_stylegan2_config,
                checkpoint_parts=checkpoint_parts, read_checkpoint=read_checkpoint,
                notes={"about": "NVlabs StyleGAN2 (stylegan2-ada-pytorch, stylegan3 --cfg stylegan2)"})
