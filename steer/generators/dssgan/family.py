"""The DSS-GAN family as the registry sees it: steer's own folders, official whole-module
checkpoints, and the official training recipe with its discriminator."""
from __future__ import annotations

from .. import schema as S
from ..base import Family
from .generator import DIRECTIONS, ROTATION_K, DSSGANGenerator, mamba_stage_sizes
from .official import official_parts, read_official_checkpoint

_WIDTH = S.Int(1, S.MAX_CHANNELS)
_MAMBA = {"depth": S.Int(0, 64), "d_state": S.Int(1, 1024), "d_conv": S.Int(1, 64), "expand": S.Num(0.01, 16)}
_STAGE = S.Table(dict(_MAMBA, depth=S.Int(1, 64),
                      scan_directions=S.Items(S.Text(choices=DIRECTIONS), 1, len(DIRECTIONS), distinct=True),
                      routing_clip=S.Maybe(S.Num(0, 100)), residual_routing=S.Bool(), use_z_routing=S.Bool(),
                      random_corner=S.Bool(), noise=S.Bool(), use_dense=S.Bool()),
                 required=("depth", "d_state", "d_conv", "expand", "scan_directions"))
_SIZE_KEY = r"(8|16|32|64|128|256|512|1024)x\1"
GENERATOR_SCHEMA = S.Table({
    "resolution": S.Int(16, 1024, power_of_two=True),
    "num_classes": S.Int(1, S.MAX_CLASSES),
    "z_dim": S.Int(2, S.MAX_LATENT_DIM), "z_tok_dim": S.Int(1, S.MAX_LATENT_DIM),
    "z_dir_dim": S.Int(0, S.MAX_LATENT_DIM),
    "temperature": S.Num(1e-3, 1e3), "noise_strength": S.Num(0, 1e3),
    "use_vit_residual": S.Bool(), "token_residual_weight": S.Num(-100, 100),
    "spatial_residual_weight": S.Num(-100, 100),
    "rotation_modes": S.Items(S.Text(choices=tuple(ROTATION_K)), 1, len(ROTATION_K)),
    "film_enabled": S.Mapping(_SIZE_KEY, S.Bool()),
    "z_mlp_hidden": S.Mapping(_SIZE_KEY, _WIDTH),
    "mamba_tokens": S.Table(_MAMBA, required=tuple(_MAMBA)),
    "output": S.Table({"final_ch": _WIDTH, "refine_channels": S.Items(_WIDTH, 0, 16)}, required=("final_ch",)),
}, required=("num_classes", "z_dim", "mamba_tokens", "output"))


def check_dssgan_config(config: dict, where: str) -> dict:
    """A DSS-GAN config ({"family": "dssgan", "generator": the official config}) checked against
    GENERATOR_SCHEMA, then the entries whose names follow the resolution (ch_8x8 ...,
    mamba_8x8 ...) and the sizes that must fit together."""
    config = S.check(S.Table({"generator": S.Table({})}, required=("generator",)), config, where)
    g = S.check(GENERATOR_SCHEMA, config["generator"], f"{where}: generator")
    resolution = g.get("resolution", 512)
    sizes = mamba_stage_sizes(resolution)
    top_default = {256: 196, 512: 48}.get(resolution)
    for size in sizes + [resolution]:
        key = f"ch_{size}x{size}"
        if key in g or size != resolution or top_default is None:
            g[key] = S.check(S.Table({key: _WIDTH}, required=(key,)), g, f"{where}: generator")[key]
    for size in sizes:
        key = f"mamba_{size}x{size}"
        g[key] = S.check(S.Table({key: _STAGE}, required=(key,)), g, f"{where}: generator")[key]
    directions = g[f"mamba_{sizes[0]}x{sizes[0]}"]["scan_directions"]
    z_tok = g.get("z_tok_dim", g["z_dim"] // 2)
    z_dir = g["z_dim"] - z_tok
    S.rule(z_dir >= 0 and g.get("z_dir_dim", z_dir) == z_dir, where,
           f"z_dim {g['z_dim']} is not z_tok_dim {z_tok} + z_dir_dim {g.get('z_dir_dim')}")
    S.rule(z_dir % len(directions) == 0, where,
           f"z_dir_dim {z_dir} does not split into {len(directions)} equal direction chunks")
    for size in sizes:
        stage = g[f"mamba_{size}x{size}"]
        S.rule(int(stage["expand"] * g[f"ch_{size}x{size}"]) >= 1, where,
               f"mamba_{size}x{size}: expand {stage['expand']} leaves no inner channels")
    return dict(config, generator=g)


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


FAMILY = Family(name="dssgan", build=build_dssgan, small=small_dssgan, check_config=check_dssgan_config,
                checkpoint_parts=official_parts, read_checkpoint=read_official_checkpoint,
                discriminator=dssgan_discriminator, recipe=dssgan_recipe, for_training=dssgan_for_training,
                notes={"about": "A class-conditional DSS-GAN (Mamba generator, steer's `dssgan` family)"})
