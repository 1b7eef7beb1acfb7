"""Official StyleGAN2-ADA / StyleGAN3 snapshots and rosinality checkpoints rebuilt as steer's
networks, without running anything in them.

NVlabs files (`network-snapshot-*.pkl`, released `.pkl`s, a bare pickled Generator) embed
their source and run it on load; steer's restricted unpickler (safe_pickle) turns each
persistent object into a stub that keeps its class name and pickled __dict__, never the
source. The configuration is read from those recorded attributes (and the tensor shapes),
checked against what the official code builds, and the tensors are loaded with strict=True.
rosinality `.pt` files are torch.save dicts: `g_ema` (a state_dict), `latent_avg`, `args`
(an argparse.Namespace, recorded as data).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ...errors import SteerError
from ..loading import load_strict
from ..safe_pickle import PersistentStub, Stub, materialize, module_state_dict
from ..stylegan_xl.official import is_stylegan_xl, synthesis_config
from .generator import RosinalityGenerator, StyleGAN2Generator, StyleGAN3Generator
from .network import ARCHITECTURES
from .rosinality import official_channels


def _attrs(stub) -> dict:
    return stub.state if isinstance(stub, Stub) and isinstance(stub.state, dict) else {}


def _modules(stub) -> dict:
    return _attrs(stub).get("_modules") or {}


def _child(stub, name: str, where: str):
    child = _modules(stub).get(name)
    if child is None:
        raise SteerError(f"{where}: the checkpoint lacks module {name}")
    return child


def _shape(stub, name: str, where: str):
    tensor = (_attrs(stub).get("_parameters") or {}).get(name)
    if tensor is None:
        tensor = (_attrs(stub).get("_buffers") or {}).get(name)
    if tensor is None:
        raise SteerError(f"{where}: the checkpoint lacks {name}")
    return tuple(tensor.shape)


def _number(value):
    return value.item() if isinstance(value, np.generic) else value


def _fc(stub, where: str, activation: str, lr: float | None = None) -> float:
    """Check a FullyConnectedLayer's recorded activation and gains; return its lr multiplier."""
    a = _attrs(stub)
    if a.get("activation") != activation:
        raise SteerError(f"{where}: activation {a.get('activation')!r} is not what the official network "
                         f"uses there ({activation})")
    lr = float(_number(a.get("bias_gain", 1))) if lr is None else lr
    in_features = _shape(stub, "weight", where)[1]
    if not math.isclose(float(_number(a["weight_gain"])), lr / math.sqrt(in_features), rel_tol=1e-6):
        raise SteerError(f"{where}: weight gain {a['weight_gain']} does not follow lr multiplier {lr}")
    if not math.isclose(float(_number(a.get("bias_gain", 1))), lr, rel_tol=1e-6):
        raise SteerError(f"{where}: bias gain {a.get('bias_gain')} does not follow lr multiplier {lr}")
    return lr


def _kind(obj) -> str | None:
    """'stylegan2' or 'stylegan3' for an NVlabs Generator stub, else None."""
    if not (isinstance(obj, PersistentStub) and obj.class_name == "Generator") or is_stylegan_xl(obj):
        return None
    synthesis, mapping = _modules(obj).get("synthesis"), _modules(obj).get("mapping")
    if getattr(synthesis, "class_name", "") != "SynthesisNetwork" or getattr(mapping, "class_name", "") != "MappingNetwork":
        return None
    s = _attrs(synthesis)
    if "layer_names" in s and "input" in _modules(synthesis):
        return "stylegan3"
    if "block_resolutions" in s:
        return "stylegan2"
    return None


def _generator_stub(obj):
    if isinstance(obj, dict):  # a training snapshot: G_ema is the one to use
        obj = obj.get("G_ema", obj)
    return obj


def _mapping_config(stub, num_ws: int) -> dict:
    mapping = _child(stub, "mapping", "G_ema")
    m, root = _attrs(mapping), _attrs(stub)
    where = "mapping"
    num_layers = int(m["num_layers"])
    for key in ("z_dim", "c_dim", "w_dim"):
        if int(m[key]) != int(root[key]):
            raise SteerError(f"{where}: {key} {m[key]} differs from the generator's {root[key]}")
    if int(m["num_ws"]) != num_ws:
        raise SteerError(f"{where}: makes {m['num_ws']} ws but the synthesis network reads {num_ws}")
    lr = _fc(_child(mapping, "fc0", where), "mapping.fc0", "lrelu")
    for idx in range(1, num_layers):
        _fc(_child(mapping, f"fc{idx}", where), f"mapping.fc{idx}", "lrelu", lr)
    if f"fc{num_layers}" in _modules(mapping):
        raise SteerError(f"{where}: more FC layers than its recorded num_layers {num_layers}")
    c_dim = int(m["c_dim"])
    config = {"num_layers": num_layers, "lr_multiplier": lr}
    if c_dim > 0:
        embed = _child(mapping, "embed", where)
        _fc(embed, "mapping.embed", "linear", 1.0)
        config["embed_features"] = _shape(embed, "weight", "mapping.embed")[0]
    elif isinstance(_modules(mapping).get("embed"), Stub):
        raise SteerError(f"{where}: an unconditional mapping with a class embedding")
    if num_layers > 1:
        config["layer_features"] = _shape(_child(mapping, "fc0", where), "weight", "mapping.fc0")[0]
    return config


def stylegan2_config(stub) -> dict:
    """steer's config for a pickled NVlabs StyleGAN2 Generator (ADA's networks.py or the
    stylegan3 repo's networks_stylegan2.py), checked against the official construction."""
    root = _attrs(stub)
    synthesis = _child(stub, "synthesis", "G_ema")
    s = _attrs(synthesis)
    img_resolution, img_channels, w_dim = int(s["img_resolution"]), int(s["img_channels"]), int(s["w_dim"])
    log2 = int(math.log2(img_resolution)) if img_resolution >= 4 else 0
    if img_resolution < 4 or 2 ** log2 != img_resolution:
        raise SteerError(f"StyleGAN2 checkpoint: resolution {img_resolution} is not a power of two >= 4")
    resolutions = [int(r) for r in s["block_resolutions"]]
    if resolutions != [2 ** i for i in range(2, log2 + 1)]:
        raise SteerError(f"StyleGAN2 checkpoint: blocks {resolutions} are not 4 ... {img_resolution}")
    blocks, num_ws, prev_out = [], 0, 0
    for res in resolutions:
        where = f"synthesis.b{res}"
        block = _child(synthesis, f"b{res}", "synthesis")
        b = _attrs(block)
        arch = b.get("architecture")
        if arch not in ARCHITECTURES:
            raise SteerError(f"{where}: architecture {arch!r} is not one the official code has ({', '.join(ARCHITECTURES)})")
        in_channels, is_last = int(b["in_channels"]), bool(b["is_last"])
        if in_channels != prev_out or is_last != (res == img_resolution) or int(b["resolution"]) != res:
            raise SteerError(f"{where}: its recorded channels or position do not chain with the other blocks")
        conv1 = _child(block, "conv1", where)
        c1 = _attrs(conv1)
        out_channels = _shape(conv1, "weight", f"{where}.conv1")[0]
        layers = (["conv0"] if in_channels else []) + ["conv1"]
        for name in layers:
            layer = _child(block, name, where)
            a = _attrs(layer)
            kernel = _shape(layer, "weight", f"{where}.{name}")[-1]
            up = 2 if name == "conv0" else 1
            if (a.get("activation") != "lrelu" or int(a["up"]) != up or kernel != 3 or int(a["padding"]) != 1
                    or int(a["resolution"]) != res):
                raise SteerError(f"{where}.{name}: settings (activation {a.get('activation')}, up {a.get('up')}, "
                                 f"kernel {kernel}) are not the official StyleGAN2 layer's")
            if a.get("conv_clamp") != c1.get("conv_clamp") or bool(a["use_noise"]) != bool(c1["use_noise"]):
                raise SteerError(f"{where}.{name}: its clamp or noise setting differs from the block's")
            _fc(_child(layer, "affine", f"{where}.{name}"), f"{where}.{name}.affine", "linear", 1.0)
        has_torgb = "torgb" in _modules(block)
        if has_torgb != (is_last or arch == "skip") or ("skip" in _modules(block)) != (arch == "resnet" and in_channels > 0):
            raise SteerError(f"{where}: its ToRGB/skip modules do not fit architecture {arch!r}")
        if has_torgb:
            torgb = _child(block, "torgb", where)
            t = _attrs(torgb)
            shape = _shape(torgb, "weight", f"{where}.torgb")
            if shape[-1] != 1 or shape[0] != img_channels or t.get("conv_clamp") != c1.get("conv_clamp"):
                raise SteerError(f"{where}.torgb: not the official 1x1 ToRGB of this network")
            _fc(_child(torgb, "affine", f"{where}.torgb"), f"{where}.torgb.affine", "linear", 1.0)
        if int(b["num_conv"]) != len(layers) or int(b["num_torgb"]) != int(has_torgb):
            raise SteerError(f"{where}: recorded num_conv/num_torgb do not match its layers")
        clamp = c1.get("conv_clamp")
        blocks.append({"resolution": res, "in_channels": in_channels, "out_channels": out_channels,
                       "is_last": is_last, "architecture": arch,
                       "conv_clamp": None if clamp is None else float(_number(clamp)),
                       "use_noise": bool(c1["use_noise"]), "use_fp16": bool(b.get("use_fp16", False))})
        num_ws += len(layers) + (int(has_torgb) if is_last else 0)
        prev_out = out_channels
    if int(s["num_ws"]) != num_ws or int(root["num_ws"]) != num_ws:
        raise SteerError(f"StyleGAN2 checkpoint: recorded num_ws {s['num_ws']} but its blocks read {num_ws}")
    if int(root["img_resolution"]) != img_resolution or int(root["w_dim"]) != w_dim:
        raise SteerError("StyleGAN2 checkpoint: the generator's and the synthesis network's settings differ")
    return {"family": "stylegan2", "z_dim": int(root["z_dim"]), "w_dim": w_dim, "c_dim": int(root["c_dim"]),
            "img_resolution": img_resolution, "img_channels": img_channels, "blocks": blocks,
            "mapping": _mapping_config(stub, num_ws)}


def stylegan3_config(stub) -> dict:
    """steer's config for a pickled StyleGAN3-T/R Generator (networks_stylegan3.py)."""
    root = _attrs(stub)
    synthesis = _child(stub, "synthesis", "G_ema")
    s = _attrs(synthesis)
    config = {"family": "stylegan3", "z_dim": int(root["z_dim"]), "w_dim": int(root["w_dim"]),
              "c_dim": int(root["c_dim"]), "img_resolution": int(root["img_resolution"]),
              "img_channels": int(root["img_channels"]), **synthesis_config(synthesis)}
    num_ws = len(config["layers"]) + 1
    if int(s.get("num_ws", num_ws)) != num_ws or int(root["num_ws"]) != num_ws:
        raise SteerError(f"StyleGAN3 checkpoint: recorded num_ws {root['num_ws']} but synthesis has "
                         f"{len(config['layers'])} layers plus its input")
    last = config["layers"][-1]
    if not last["is_torgb"] or any(layer["is_torgb"] for layer in config["layers"][:-1]):
        raise SteerError("StyleGAN3 checkpoint: ToRGB is not the last layer alone")
    if last["out_channels"] != config["img_channels"]:
        raise SteerError("StyleGAN3 checkpoint: the ToRGB layer's channels differ from img_channels")
    config["mapping"] = _mapping_config(stub, num_ws)
    return config


def _nvlabs_config(stub, family: str) -> dict:
    try:
        return stylegan2_config(stub) if family == "stylegan2" else stylegan3_config(stub)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SteerError(f"{family} checkpoint: a setting the official network records is missing or "
                         f"malformed ({type(e).__name__}: {e})") from None


def nvlabs_parts(obj, family: str):
    """Registry hook for the `family` ('stylegan2' or 'stylegan3'): (config, state_fn, what)
    for a snapshot dict (its G_ema) or a pickled Generator, else None. The registry checks the
    config against the family's schema, sizes it on the meta device and compares the tensor
    shapes before state_fn materialises G_ema's tensors and the generator is built."""
    stub = _generator_stub(obj)
    if _kind(stub) != family:
        return None
    return (_nvlabs_config(stub, family), lambda: module_state_dict(stub),
            f"{family} checkpoint does not match its recorded settings")


def read_nvlabs(obj, name: str, family: str):
    """The all-in-one reader (a snapshot dict or a pickled Generator -> Generator, else None),
    for callers outside the registry; the recorded config goes through the family's schema
    before anything is built, as in nvlabs_parts."""
    stub = _generator_stub(obj)
    if _kind(stub) != family:
        return None
    config = _nvlabs_config(stub, family)
    if family == "stylegan2":
        from .family import check_stylegan2_config
        generator = StyleGAN2Generator(check_stylegan2_config(config, f"{family} checkpoint"), name=name)
    else:
        from .family_stylegan3 import check_stylegan3_config
        generator = StyleGAN3Generator(check_stylegan3_config(config, f"{family} checkpoint"), name=name)
    return load_strict(generator, module_state_dict(stub), f"{family} checkpoint does not match its recorded settings")


# ---- rosinality ---------------------------------------------------------------------------

def _tensor_dict(value) -> dict | None:
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        out = {k: materialize(v) for k, v in value.items()}
        if all(isinstance(v, torch.Tensor) for v in out.values()):
            return out
    return None


def is_rosinality(obj) -> bool:
    state = _tensor_dict(obj.get("g_ema")) if isinstance(obj, dict) else None
    return state is not None and "input.input" in state and "style.1.weight" in state


def rosinality_config(state: dict, args=None) -> dict:
    """Size, style_dim, n_mlp and the channel table from the state_dict's shapes, checked
    against `args` (train.py's argparse.Namespace) when the file has them."""
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in state:
        n_mlp += 1
    style_dim = int(state["style.1.weight"].shape[1])
    num_rgbs = 0
    while f"to_rgbs.{num_rgbs}.conv.weight" in state:
        num_rgbs += 1
    size = 2 ** (num_rgbs + 2)
    channels = {4: int(state["input.input"].shape[1])}
    for k in range(num_rgbs):
        channels[2 ** (k + 3)] = int(state[f"convs.{2 * k}.conv.weight"].shape[1])
    a = _attrs(args) if isinstance(args, Stub) else (args if isinstance(args, dict) else {})
    if a:
        if a.get("arch", "stylegan2") != "stylegan2":
            raise SteerError(f"rosinality checkpoint: arch {a.get('arch')!r} is not supported (stylegan2 is)")
        for key, ours in (("size", size), ("latent", style_dim), ("n_mlp", n_mlp)):
            if key in a and int(a[key]) != ours:
                raise SteerError(f"rosinality checkpoint: args.{key} = {a[key]} but its g_ema has {ours}")
    config = {"family": "rosinality", "size": size, "style_dim": style_dim, "n_mlp": n_mlp,
              "channels": {str(r): c for r, c in channels.items()}, "lr_mlp": 0.01, "blur_kernel": [1, 3, 3, 1]}
    multiplier = a.get("channel_multiplier") if a else None
    table = official_channels(size, int(multiplier)) if multiplier is not None else None
    config["official_channel_table"] = table is not None and all(table[r] == c for r, c in channels.items())
    return config


def read_rosinality(obj, name: str):
    """Registry hook: a rosinality train.py checkpoint or a convert_weight.py {g_ema, latent_avg} file."""
    if not is_rosinality(obj):
        return None
    from .family_rosinality import check_rosinality_config
    state = _tensor_dict(obj["g_ema"])
    try:
        config = rosinality_config(state, obj.get("args"))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SteerError(f"rosinality checkpoint: its g_ema is not the official layout ({type(e).__name__}: {e})") from None
    # the same schema a steer folder's config.json goes through, before anything is built; the
    # sizes come from g_ema's shapes, whose tensors the restricted read already bounded
    config = check_rosinality_config(config, "rosinality checkpoint")
    try:
        generator = RosinalityGenerator(config, name=name)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise SteerError(f"rosinality checkpoint: its g_ema is not the official layout ({type(e).__name__}: {e})") from None
    load_strict(generator, {**state, "latent_avg": generator.latent_avg},
                "rosinality checkpoint does not match the official StyleGAN2 layout")
    latent_avg = materialize(obj.get("latent_avg"))
    if isinstance(latent_avg, torch.Tensor):
        if tuple(latent_avg.shape) != (generator.w_dim,):
            raise SteerError(f"rosinality checkpoint: latent_avg has shape {list(latent_avg.shape)}, "
                             f"expected [{generator.w_dim}]")
        generator.latent_avg.copy_(latent_avg.float())
        generator.latent_avg_source = "checkpoint"
    else:
        generator.latent_avg.copy_(generator.mean_latent())
        generator.latent_avg_source = "mean of 8192 seeded style(z)"
    return generator
