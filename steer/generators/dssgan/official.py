"""Official DSS-GAN checkpoints (`torch.save(G)` of the whole module, e.g.
G_full_ema_epoch_XXX.pt) rebuilt as steer's generator without running anything from the file.

The file is read by the restricted unpickler into inert stubs. The settings that decide the
forward pass live partly in the pickled attributes of each block (routing clip, directions,
temperature), not only in the generator's config copies, so those are read from the blocks
themselves, the values the official forward would use.
"""
from __future__ import annotations

from ...errors import SteerError
from ..loading import load_strict
from ..safe_pickle import Stub, module_state_dict
from .generator import DSSGANGenerator, mamba_stage_sizes

# the generator's attributes that are config entries under the same name
TOP_LEVEL = ("resolution", "z_dim", "z_tok_dim", "z_dir_dim", "num_classes", "temperature",
             "noise_strength", "use_vit_residual", "token_residual_weight", "spatial_residual_weight",
             "rotation_modes", "film_enabled", "use_multiscale_skips", "skip_8_to_64", "skip_16_to_128",
             "use_blur_upsample", "use_dense_connections", "use_lightweight_attention",
             "use_pixel_shuffle_32", "use_pixel_shuffle_64", "z_mlp_hidden")


def is_official_generator(obj) -> bool:
    return (isinstance(obj, Stub) and obj.class_name.endswith("generator.Generator")
            and isinstance(obj.state, dict) and "cfg_tokens" in obj.state)


def _attrs(stub) -> dict:
    return stub.state if isinstance(stub, Stub) and isinstance(stub.state, dict) else {}


def _child(stub, *path):
    for name in path:
        stub = (_attrs(stub).get("_modules") or {}).get(name)
        if stub is None:
            raise SteerError(f"official DSS-GAN checkpoint lacks module '{'.'.join(path)}'")
    return stub


def _check_submodules(stub, prefix=""):
    """Refuse variants our code would compute differently rather than load them silently."""
    for name, child in (_attrs(stub).get("_modules") or {}).items():
        attrs, kind = _attrs(child), getattr(child, "class_name", "")
        if kind.endswith("LayerNorm") and attrs.get("eps", 1e-5) != 1e-5:
            raise SteerError(f"{prefix}{name}: LayerNorm eps {attrs['eps']} is not supported")
        if kind.endswith("GELU") and attrs.get("approximate", "none") != "none":
            raise SteerError(f"{prefix}{name}: GELU approximation '{attrs['approximate']}' is not supported")
        if kind.endswith("Mamba") and attrs.get("activation", "silu") != "silu":
            raise SteerError(f"{prefix}{name}: Mamba activation '{attrs['activation']}' is not supported")
        _check_submodules(child, f"{prefix}{name}.")


def config_from_official(stub) -> dict:
    """The steer config of a pickled official Generator."""
    attrs = _attrs(stub)
    config = {key: attrs[key] for key in TOP_LEVEL if key in attrs}
    config["mamba_tokens"] = dict(attrs["cfg_tokens"])
    config["output"] = dict(attrs["cfg_out"])
    resolution = int(attrs.get("resolution", 512))
    for key, value in attrs.items():
        if key.startswith("ch_") and key.endswith(tuple(f"{s}x{s}" for s in (8, 16, 32, 64, 128, 256, 512))):
            config[key] = value
    for size in mamba_stage_sizes(resolution):
        key = f"{size}x{size}"
        stage = dict(attrs[f"cfg_{key}"])
        blocks = _attrs(_child(stub, f"mamba_{key}")).get("_modules") or {}
        if not blocks:
            raise SteerError(f"official DSS-GAN checkpoint has no blocks in stage {key}")
        first = _attrs(blocks[sorted(blocks)[0]])
        for name in ("routing_clip", "residual_routing", "use_z_routing", "random_corner", "use_dense"):
            if name in first:
                stage[name] = first[name]
        stage["scan_directions"] = list(first.get("scan_directions", stage["scan_directions"]))
        stage["depth"] = len(blocks)
        weighting = _attrs(_child(blocks[sorted(blocks)[0]], "direction_weighting"))
        config["temperature"] = weighting.get("temperature", config.get("temperature"))
        config[f"mamba_{key}"] = stage
    _check_submodules(stub)
    return config


def generator_from_official(stub, name: str = "dssgan") -> DSSGANGenerator:
    """Rebuild steer's generator from a pickled official Generator stub (strict load)."""
    generator = DSSGANGenerator(config_from_official(stub), name=name)
    return load_strict(generator, module_state_dict(stub),
                       "official DSS-GAN checkpoint does not match its recorded settings")


def official_parts(obj):
    """Registry hook: (config, state_fn, what) for a pickled official Generator, or a dict
    holding one; None for anything else. The registry checks the config and builds."""
    if isinstance(obj, dict):
        obj = next((v for v in obj.values() if is_official_generator(v)), obj)
    if not is_official_generator(obj):
        return None
    return ({"family": "dssgan", "generator": config_from_official(obj)}, lambda: module_state_dict(obj),
            "official DSS-GAN checkpoint does not match its recorded settings")


def read_official_checkpoint(obj, name: str):
    """Registry hook: a whole pickled official Generator, or a dict holding one."""
    if isinstance(obj, dict):
        obj = next((v for v in obj.values() if is_official_generator(v)), obj)
    return generator_from_official(obj, name) if is_official_generator(obj) else None
