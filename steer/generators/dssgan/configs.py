"""DSS-GAN configurations: the official AFHQ ones (128, 256, 512 px; values from the official
config files at commit 6f5f993) and small ones that train on a CPU.

Each stage is (depth, d_state, d_conv, expand, routing_clip); all official configs switch FiLM,
noise, dense connections and the other optional extras off and use residual routing with
z routing on.
"""
from __future__ import annotations


def _stage(depth, d_state, d_conv, expand, clip, directions):
    return {"depth": depth, "d_state": d_state, "d_conv": d_conv, "expand": expand,
            "scan_directions": list(directions), "use_z_routing": True, "random_corner": False,
            "noise": False, "routing_clip": clip, "residual_routing": True}


def _config(resolution, num_classes, z_base, z_per_direction, directions, channels, mlp_hidden,
            tokens, stages, output):
    config = {
        "resolution": resolution, "num_classes": num_classes,
        "z_dim": z_base + z_per_direction * len(directions), "z_tok_dim": z_base,
        "z_dir_dim": z_per_direction * len(directions),
        "temperature": 1.0, "use_vit_residual": True, "token_residual_weight": 0.3,
        "spatial_residual_weight": 0.3, "rotation_modes": ["none", "rot180"],
        "film_enabled": {f"{s}x{s}": False for s in stages},
        "z_mlp_hidden": {f"{s}x{s}": h for s, h in mlp_hidden.items()},
        "mamba_tokens": dict(zip(("depth", "d_state", "d_conv", "expand"), tokens)),
        "output": {"final_ch": output[0], "refine_channels": list(output[1])},
    }
    config.update({f"ch_{s}x{s}": c for s, c in channels.items()})
    for size, values in stages.items():
        config[f"mamba_{size}x{size}"] = _stage(*values, directions)
    return config


def official_config(resolution: int = 256, num_classes: int = 3) -> dict:
    """The official AFHQ generator config at 128, 256 or 512 px."""
    mlp = {8: 64, 16: 128, 32: 256, 64: 256}
    if resolution == 128:
        return _config(128, num_classes, 92, 20, ["row_fwd", "col_bwd", "diag_left"],
                       {8: 148, 16: 148, 32: 148, 64: 148, 128: 168}, mlp, (2, 64, 4, 2),
                       {8: (2, 64, 4, 2, 0.8), 16: (1, 64, 4, 2, 0.8), 32: (1, 64, 4, 2, 0.5),
                        64: (1, 64, 3, 1.5, 0.3)}, (64, [128]))
    if resolution == 256:
        return _config(256, num_classes, 88, 28, ["row_fwd", "col_fwd", "diag_left"],
                       {8: 148, 16: 148, 32: 148, 64: 148, 128: 168, 256: 196}, mlp, (2, 64, 4, 2),
                       {8: (2, 64, 4, 1.5, 0.8), 16: (1, 64, 4, 1.5, 0.8), 32: (1, 64, 4, 1.5, 0.5),
                        64: (1, 64, 3, 1, 0.3), 128: (1, 48, 3, 1, 0.2)}, (64, [128]))
    if resolution == 512:
        return _config(512, num_classes, 98, 36, ["row_fwd", "col_fwd", "diag_left"],
                       {8: 148, 16: 128, 32: 108, 64: 98, 128: 80, 256: 64, 512: 48}, mlp, (2, 64, 4, 2),
                       {8: (2, 64, 4, 1.5, 0.8), 16: (1, 64, 4, 1, 0.8), 32: (1, 64, 4, 1, 0.5),
                        64: (1, 48, 3, 1, 0.3), 128: (1, 32, 3, 1, 0.2), 256: (1, 16, 3, 1, 0.1)},
                       (32, [64]))
    raise ValueError("official DSS-GAN configs exist for 128, 256 and 512 px")


def default_channels(resolution: int) -> list:
    """Widths for a small model: 64 at 8 px, narrowing by a quarter per doubling, at least 16."""
    sizes = resolution.bit_length() - 3  # 8, 16, ..., resolution
    return [max(16, int(64 * 0.75 ** i)) for i in range(sizes)]


def small_config(resolution: int = 32, num_classes: int = 4, channels=None, d_state: int = 16,
                 directions=("row_fwd", "col_fwd", "diag_left"), z_base: int = 32,
                 z_per_direction: int = 8) -> dict:
    """A CPU-trainable DSS-GAN: Mamba stages 8..resolution/2, the modulated conv block at
    full resolution. `channels` lists widths from 8 px up to `resolution`."""
    channels = list(channels or default_channels(resolution))
    sizes = [8 * 2 ** i for i in range(len(channels))]
    if sizes[-1] != resolution:
        raise ValueError(f"channels must give one width per size 8..{resolution}")
    clips = {8: 0.8, 16: 0.8, 32: 0.5, 64: 0.3, 128: 0.2}
    stages = {s: (2 if s == 8 else 1, d_state, 4, 1.5, clips[s]) for s in sizes[:-1]}
    return _config(resolution, num_classes, z_base, z_per_direction, list(directions),
                   dict(zip(sizes, channels)), {s: 64 for s in sizes[:-1]}, (2, d_state, 4, 2), stages,
                   (channels[-1], [channels[-1]]))
