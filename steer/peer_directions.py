"""Direction files of other latent-editing tools, as steer walks, and back.

- InterFaceGAN: a boundary `.npy`, one unit normal [1, d] in z, w or (flattened) w+
  (`np.save(boundary)` in its train_boundary.py).
- GANSpace: the component `.npz` (`lat_comp` [K, 1, d], `lat_stdev` [K], `lat_mean` ...);
  component k is the direction, scaled by its stdev when asked, as GANSpace's sliders are.
- SeFa: the eigenvectors of the style weights, [K, w_dim] (`np.save(boundaries)`), each
  usually applied to a range of w+ layers.

Files are read with numpy and allow_pickle=False, so nothing in them runs. Every import is
checked against the model's latent shape in the chosen space and becomes a one-slider
LinearWalk (t = alpha with the default edit "brightness", whose walk input is alpha itself),
saved by steer.walks with the model's source and the peer file named in the metadata.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import SteerError
from .walks import LinearWalk, check_layers

FORMATS = ("interfacegan", "ganspace", "sefa")


def _read_array(path, key=None):
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SteerError(f"direction file {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise SteerError(f"cannot read {path} as a numpy direction file (pickled arrays are refused): {e}") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            if key not in data.files:
                raise SteerError(f"{path} has no '{key}' array (it holds {', '.join(data.files) or 'nothing'})")
            return {name: data[name] for name in data.files}
    return data


def _check_numeric(array, path):
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise SteerError(f"{path}: a direction must be finite floating-point numbers (got {array.dtype})")
    return array.astype(np.float32)


def _walk(vector, latent_shape, layers, path):
    """A one-slider LinearWalk moving `vector` (the whole latent, or the rows in `layers`)."""
    layers = check_layers(layers, latent_shape)
    walked = (layers[1] - layers[0], *latent_shape[1:]) if layers else tuple(latent_shape)
    per_row = int(np.prod(latent_shape[1:])) if len(latent_shape) > 1 else None
    size = int(np.prod(walked))
    vector = vector.reshape(-1)
    if vector.size == size:
        pass
    elif per_row is not None and vector.size == per_row:  # one w for every walked layer (SeFa)
        vector = np.tile(vector, walked[0])
    elif layers and vector.size == int(np.prod(latent_shape)):  # a full w+ direction cut to the layers
        vector = vector.reshape(latent_shape)[layers[0]:layers[1]].reshape(-1)
    else:
        raise SteerError(f"{path}: a direction of {vector.size} numbers does not fit this model's latent "
                         f"{tuple(latent_shape)}" + (f" (layers {layers[0]}:{layers[1]})" if layers else ""))
    walk = LinearWalk(latent_shape, sliders=1, layers=layers)
    with torch.no_grad():
        walk.directions.copy_(torch.from_numpy(vector.copy()).reshape(1, -1))
    return walk


def import_direction(path, generator, fmt: str, space: str | None = None, index: int = 0, layers=None,
                     scale_by_stdev: bool = True):
    """A peer direction file -> (LinearWalk, meta fields for steer.walks.save)."""
    if fmt not in FORMATS:
        raise SteerError(f"unknown direction format {fmt!r}: choose one of {', '.join(FORMATS)}")
    space = space or generator.default_space
    generator.check_space(space)
    latent_shape = tuple(generator.latent_shape(space))
    if fmt == "interfacegan":
        array = _check_numeric(np.asarray(_read_array(path)), path)
        if array.ndim not in (1, 2) or (array.ndim == 2 and array.shape[0] != 1):
            raise SteerError(f"{path}: an InterFaceGAN boundary is one vector [1, d]; got shape {list(array.shape)}")
        vector = array
    elif fmt == "ganspace":
        data = _read_array(path, "lat_comp")
        comps = _check_numeric(np.asarray(data["lat_comp"]), path)
        comps = comps.reshape(comps.shape[0], -1) if comps.ndim >= 2 else None
        if comps is None:
            raise SteerError(f"{path}: lat_comp must be [K, 1, d]")
        if not 0 <= index < comps.shape[0]:
            raise SteerError(f"{path}: component {index} is out of range (it has {comps.shape[0]})")
        vector = comps[index]
        if scale_by_stdev and "lat_stdev" in data:
            stdev = _check_numeric(np.asarray(data["lat_stdev"]).reshape(-1), path)
            vector = vector * stdev[index]
    else:
        comps = _check_numeric(np.asarray(_read_array(path)), path)
        if comps.ndim == 1:
            comps = comps[None]
        if comps.ndim != 2:
            raise SteerError(f"{path}: SeFa components are an array [K, w_dim]; got shape {list(comps.shape)}")
        if not 0 <= index < comps.shape[0]:
            raise SteerError(f"{path}: component {index} is out of range (it has {comps.shape[0]})")
        vector = comps[index]
    walk = _walk(vector, latent_shape, layers, path)
    meta = {"space": space, "peer": {"format": fmt, "file": str(Path(path).resolve()), "index": int(index),
                                     "scaled_by_stdev": bool(scale_by_stdev and fmt == "ganspace")}}
    return walk, meta


def _full_direction(walk) -> np.ndarray:
    """A one-slider linear walk's direction over the whole latent (zeros outside its layers)."""
    if getattr(walk, "kind", None) != "linear":
        raise SteerError("only linear walks are directions other tools can read")
    directions = walk.directions.detach().cpu().numpy().astype(np.float32)
    full = np.zeros((directions.shape[0], *walk.latent_shape), dtype=np.float32)
    rows = slice(*walk.layers) if walk.layers else slice(None)
    if walk.layers:
        full[:, rows] = directions.reshape(directions.shape[0], walk.layers[1] - walk.layers[0], *walk.latent_shape[1:])
    else:
        full[:] = directions.reshape(full.shape)
    return full


def export_direction(walk, path, fmt: str, normalise: bool = True):
    """Write a linear walk as `fmt`: InterFaceGAN [1, d] (unit norm unless normalise=False),
    SeFa [sliders, d] rows (unit norm), GANSpace .npz (lat_comp [sliders, 1, d] unit rows and
    lat_stdev their lengths, so stdev x component gives the walk back)."""
    if fmt not in FORMATS:
        raise SteerError(f"unknown direction format {fmt!r}: choose one of {', '.join(FORMATS)}")
    full = _full_direction(walk).reshape(walk.directions.shape[0], -1)
    norms = np.linalg.norm(full, axis=1)
    if not (norms > 0).all():
        raise SteerError("the walk has a zero direction: nothing to export")
    unit = full / norms[:, None]
    path = Path(path)
    if fmt == "interfacegan":
        if full.shape[0] != 1:
            raise SteerError("an InterFaceGAN boundary is one direction: export a one-slider walk")
        np.save(path, unit if normalise else full)
    elif fmt == "sefa":
        np.save(path, unit)
    else:
        np.savez(path, lat_comp=unit[:, None, :], lat_stdev=norms.astype(np.float32),
                 lat_mean=np.zeros(full.shape[1], dtype=np.float32), var_ratio=np.zeros(full.shape[0], dtype=np.float32))
    return path
