"""Official StyleGAN-XL pickles (network-snapshot.pkl, imagenet128.pkl ...) rebuilt as steer's
network without running the source they embed.

The restricted unpickler turns each persistent object into a stub holding its pickled
__dict__; the settings the forward pass uses (sizes, up/down factors, paddings, clamps, the
layer order) are read from those recorded attributes, the tensors from the recorded
parameters and buffers. Base generators and super-resolution stages (SuperresGenerator)
have the same mapping/synthesis layout and load alike. Only G_ema is taken from a snapshot.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import SteerError
from ..loading import load_strict
from ..safe_pickle import PersistentStub, Stub, module_state_dict
from .generator import StyleGANXLGenerator

GENERATOR_CLASSES = ("Generator", "SuperresGenerator")


def _attrs(stub) -> dict:
    return stub.state if isinstance(stub, Stub) and isinstance(stub.state, dict) else {}


def _child(stub, name: str, where: str = ""):
    child = (_attrs(stub).get("_modules") or {}).get(name)
    if child is None:
        raise SteerError(f"StyleGAN-XL checkpoint lacks module {where}{name}")
    return child


def _need(attrs: dict, key: str, where: str):
    """A recorded attribute the rebuild needs: one line naming it when the file lacks it."""
    if key not in attrs:
        raise SteerError(f"checkpoint: {where} lacks its recorded attribute '{key}'")
    return attrs[key]


def _plain(value):
    """numpy scalars and arrays -> Python numbers and lists (JSON-able)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def is_stylegan_xl(obj) -> bool:
    if not (isinstance(obj, PersistentStub) and obj.class_name in GENERATOR_CLASSES):
        return False
    modules = _attrs(obj).get("_modules") or {}
    if getattr(modules.get("synthesis"), "class_name", "") != "SynthesisNetwork" or "mapping" not in modules:
        return False
    # StyleGAN-XL's mapping holds an nn.Embedding class table; StyleGAN2/3's (same class
    # names otherwise) has an FC `embed`, or none
    embed = (_attrs(modules["mapping"]).get("_modules") or {}).get("embed")
    return isinstance(embed, Stub) and not isinstance(embed, PersistentStub) and embed.class_name.endswith("Embedding")


def _check_fc(stub, where: str, activation: str, lr_multiplier: float | None = None):
    attrs = _attrs(stub)
    if attrs.get("activation") != activation:
        raise SteerError(f"{where}: activation {attrs.get('activation')!r} is not supported (expected {activation})")
    lr = float(attrs.get("bias_gain", 1)) if lr_multiplier is None else lr_multiplier
    in_features = int(_need(attrs, "in_features", where))
    if in_features < 1:
        raise SteerError(f"{where}: in_features {in_features} is not a positive width")
    expected = lr / math.sqrt(in_features)
    if not math.isclose(float(_need(attrs, "weight_gain", where)), expected, rel_tol=1e-6):
        raise SteerError(f"{where}: weight gain {attrs['weight_gain']} does not follow lr_multiplier {lr}")
    return lr


def _buffer_taps(layer, name: str):
    buffer = (_attrs(layer).get("_buffers") or {}).get(name)
    return 1 if buffer is None else int(buffer.shape[0]), buffer is not None and buffer.ndim == 2


def config_from_official(stub) -> dict:
    """steer's config for a pickled official Generator / SuperresGenerator."""
    attrs = _attrs(stub)
    mapping, synthesis = _child(stub, "mapping"), _child(stub, "synthesis")
    m, s = _attrs(mapping), _attrs(synthesis)
    c_dim, num_layers = int(_need(attrs, "c_dim", "G_ema")), int(m.get("num_layers", 2))
    lr = _check_fc(_child(mapping, "fc0", "mapping."), "mapping.fc0", "lrelu")
    for idx in range(1, num_layers):
        _check_fc(_child(mapping, f"fc{idx}", "mapping."), f"mapping.fc{idx}", "lrelu", lr)
    if c_dim > 0:
        _check_fc(_child(mapping, "embed_proj", "mapping."), "mapping.embed_proj", "lrelu", 1.0)
    embed = _attrs(_child(mapping, "embed", "mapping."))
    config = {
        "family": "stylegan_xl", "z_dim": int(_need(attrs, "z_dim", "G_ema")),
        "w_dim": int(_need(attrs, "w_dim", "G_ema")), "c_dim": c_dim,
        "img_resolution": int(s.get("img_resolution", _need(attrs, "img_resolution", "G_ema"))),
        "img_channels": int(_need(attrs, "img_channels", "G_ema")),
        "mapping": {"num_layers": num_layers, "lr_multiplier": lr,
                    "embed_num": int(_need(embed, "num_embeddings", "mapping.embed")),
                    "embed_dim": int(_need(embed, "embedding_dim", "mapping.embed"))},
        **synthesis_config(synthesis),
    }
    if int(m.get("num_ws", len(config["layers"]) + 1)) != len(config["layers"]) + 1:
        raise SteerError(f"StyleGAN-XL checkpoint: the mapping makes {m['num_ws']} ws but synthesis "
                         f"has {len(config['layers'])} layers plus its input")
    return config


def synthesis_config(synthesis) -> dict:
    """The input, layers and output scale of a pickled StyleGAN3 SynthesisNetwork (StyleGAN-XL's
    and StyleGAN3-T/R's are the same network), from its recorded attributes."""
    s = _attrs(synthesis)
    source_input = _child(synthesis, "input", "synthesis.")
    inp = _attrs(source_input)
    _check_fc(_child(source_input, "affine", "synthesis.input."), "synthesis.input.affine", "linear", 1.0)
    layers = []
    for name in _need(s, "layer_names", "synthesis"):
        layer = _child(synthesis, name, "synthesis.")
        a = _attrs(layer)
        _check_fc(_child(layer, "affine", f"synthesis.{name}."), f"synthesis.{name}.affine", "linear", 1.0)
        up_taps, up_2d = _buffer_taps(layer, "up_filter")
        down_taps, down_2d = _buffer_taps(layer, "down_filter")
        if up_2d:
            raise SteerError(f"synthesis.{name}: a 2-D upsampling filter is not supported")
        clamp = a.get("conv_clamp")

        def need(key, a=a, name=name):
            return _need(a, key, f"synthesis.{name}")
        layers.append({"name": name, "in_channels": int(need("in_channels")), "out_channels": int(need("out_channels")),
                       "conv_kernel": int(need("conv_kernel")), "is_torgb": bool(need("is_torgb")),
                       "up_factor": int(need("up_factor")), "down_factor": int(need("down_factor")),
                       "up_taps": up_taps, "down_taps": down_taps, "down_radial": down_2d,
                       "padding": [int(p) for p in _plain(need("padding"))],
                       "conv_clamp": None if clamp is None else float(clamp)})
    def need_input(key):
        return _need(inp, key, "synthesis.input")
    return {"input": {"channels": int(need_input("channels")),
                      "size": [int(v) for v in np.broadcast_to(_plain(need_input("size")), [2])],
                      "sampling_rate": float(need_input("sampling_rate")), "bandwidth": float(need_input("bandwidth"))},
            "layers": layers, "output_scale": float(s.get("output_scale", 1.0))}


def generator_from_official(stub, name: str = "stylegan_xl") -> StyleGANXLGenerator:
    generator = StyleGANXLGenerator(config_from_official(stub), name=name)
    return load_strict(generator, module_state_dict(stub),
                       "StyleGAN-XL checkpoint does not match its recorded settings")


def official_parts(obj):
    """Registry hook: (config, state_fn, what) for a training snapshot dict (its G_ema) or a
    pickled generator; None for anything else. The registry checks the config and builds;
    state_fn materialises G_ema's lazy tensors only, inside the registry's guard."""
    if isinstance(obj, dict):
        obj = obj.get("G_ema", obj)
    if not is_stylegan_xl(obj):
        return None
    return (config_from_official(obj), lambda: module_state_dict(obj),
            "StyleGAN-XL checkpoint does not match its recorded settings")


def read_official_checkpoint(obj, name: str):
    """Registry hook: a training snapshot dict (its G_ema) or a pickled generator itself."""
    if isinstance(obj, dict):
        obj = obj.get("G_ema", obj)
    return generator_from_official(obj, name) if is_stylegan_xl(obj) else None
