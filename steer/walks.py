"""Walks in a generator's latent space that reproduce an edit: G(walk(z, alpha)) ~ edit(G(z), alpha).

LinearWalk: z' = z + sum_i t_i w_i, with t = edit.walk_input(alpha) (log alpha for zoom,
alpha / alpha_max for shifts and rotation, one slider per channel for colour).

NonlinearWalk: n residual MLP steps z <- z + f(z), a forward net for n > 0 and a backward
net for n < 0; the target of n steps is eps**n (zoom) or n*eps (the rest). After each step
the latent is put back on the sphere of the original latent's norm (z space) or pulled
toward a centre with psi (W space).

Walks act on latents of any shape (flattened per sample), so the same code serves z, w
and w+. `layers=(start, stop)` restricts a walk to rows start..stop-1 of the latent (the
layers of a w+ latent it may move); the other rows pass through untouched. Files are
safetensors with the settings as JSON metadata.
"""
from __future__ import annotations

import json
import math

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .checkpoint import atomic_write
from .edits import Edit, get_edit
from .errors import SteerError

FORMAT_VERSION = 1


def check_layers(layers, latent_shape):
    """A (start, stop) row range of a latent with at least two dimensions, or None."""
    if layers is None:
        return None
    start, stop = (int(v) for v in layers)
    if len(latent_shape) < 2:
        raise SteerError(f"a layer range needs a latent with layers (w+); this one has shape {tuple(latent_shape)}")
    if not 0 <= start < stop <= latent_shape[0]:
        raise SteerError(f"layer range {start}:{stop} is outside the latent's {latent_shape[0]} layers "
                         f"(give START:STOP with 0 <= START < STOP <= {latent_shape[0]})")
    return start, stop


def _walked_shape(latent_shape, layers):
    return (layers[1] - layers[0], *latent_shape[1:]) if layers else tuple(latent_shape)


def _split(latent, layers):
    """(the rows a walk moves, a function putting moved rows back into the latent)."""
    if layers is None:
        return latent, lambda moved: moved
    start, stop = layers
    return latent[:, start:stop], lambda moved: torch.cat([latent[:, :start], moved, latent[:, stop:]], dim=1)


class LinearWalk(nn.Module):
    kind = "linear"

    def __init__(self, latent_shape, sliders: int = 1, init_std: float = 0.1, seed: int = 0, layers=None):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        self.layers = check_layers(layers, self.latent_shape)
        self.sliders = sliders
        dim = math.prod(_walked_shape(self.latent_shape, self.layers))
        gen = torch.Generator().manual_seed(seed)
        self.directions = nn.Parameter(torch.randn(sliders, dim, generator=gen) * init_std)

    def move(self, latent, t):
        """latent (N, *latent_shape), t (N, sliders) -> moved latent."""
        part, join = _split(latent, self.layers)
        flat = part.reshape(part.shape[0], -1)
        return join((flat + t.to(flat) @ self.directions).reshape(part.shape))

    def apply(self, latent, alpha, edit: Edit, resolution: int):
        return self.move(latent, edit.walk_input(alpha, resolution).to(latent.device))

    def sample_alpha(self, edit: Edit, n: int, gen, resolution: int):
        return edit.sample_train(n, gen, resolution)

    def settings(self) -> dict:
        settings = {"latent_shape": list(self.latent_shape), "sliders": self.sliders}
        return dict(settings, layers=list(self.layers)) if self.layers else settings


def _residual_mlp(dim: int, hidden: int, gen) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
    with torch.no_grad():
        for layer in (net[0], net[2]):
            # small start: each step begins near the identity
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * (0.2 / math.sqrt(layer.in_features)))
            layer.bias.zero_()
    return net


class NonlinearWalk(nn.Module):
    kind = "nonlinear"

    def __init__(self, latent_shape, eps: float, max_steps: int, step_mode: str,
                 renorm: str = "sphere", centre: torch.Tensor | None = None, psi: float = 1.0,
                 hidden: int | None = None, seed: int = 0, layers=None):
        super().__init__()
        if renorm not in ("sphere", "truncate", "none"):
            raise ValueError("renorm must be sphere, truncate or none")
        self.latent_shape = tuple(latent_shape)
        self.layers = check_layers(layers, self.latent_shape)
        self.eps, self.max_steps, self.step_mode = float(eps), int(max_steps), step_mode
        self.renorm, self.psi = renorm, float(psi)
        dim = math.prod(_walked_shape(self.latent_shape, self.layers))
        if centre is not None and self.layers is not None and centre.numel() != dim:
            centre = _split(centre.reshape(1, *self.latent_shape), self.layers)[0]
        self.hidden = hidden or dim
        gen = torch.Generator().manual_seed(seed)
        self.forward_net = _residual_mlp(dim, self.hidden, gen)
        self.backward_net = _residual_mlp(dim, self.hidden, gen)
        self.register_buffer("centre", torch.zeros(dim) if centre is None else centre.reshape(-1).float().clone())

    def step(self, flat, direction: int, norm):
        net = self.forward_net if direction > 0 else self.backward_net
        out = flat + net(flat)
        if self.renorm == "sphere":
            out = out * (norm / out.norm(dim=1, keepdim=True).clamp_min(1e-8))
        elif self.renorm == "truncate":
            out = self.centre + self.psi * (out - self.centre)
        return out

    def move(self, latent, steps: int):
        """Apply |steps| steps forward (steps > 0) or backward (steps < 0)."""
        part, join = _split(latent, self.layers)
        flat = part.reshape(part.shape[0], -1)
        norm = flat.norm(dim=1, keepdim=True)
        for _ in range(abs(int(steps))):
            flat = self.step(flat, 1 if steps > 0 else -1, norm)
        return join(flat.reshape(part.shape))

    def apply(self, latent, alpha, edit: Edit, resolution: int):
        """Each sample moves by the whole number of steps nearest its alpha."""
        n = latent.shape[0]
        a = torch.as_tensor(alpha, dtype=torch.float64)
        if a.numel() == 1 or (edit.sliders > 1 and a.dim() == 1 and a.numel() == edit.sliders):
            a = a.reshape(1, -1).expand(n, -1)  # one alpha shared by the batch
        a = a.reshape(n, -1).mean(1)
        steps = [edit.alpha_to_steps(v.item(), resolution) for v in a]
        out = latent.clone()
        for n in set(steps):
            pick = torch.tensor([s == n for s in steps], device=latent.device)
            out[pick] = self.move(latent[pick], n)
        return out

    def sample_alpha(self, edit: Edit, n: int, gen, resolution: int):
        """One step count per batch (as the official code), never 0; the target alpha it means."""
        choices = [k for k in range(-self.max_steps, self.max_steps + 1) if k != 0]
        k = choices[int(torch.randint(len(choices), (1,), generator=gen))]
        alpha = torch.full((n,), float(edit.steps_to_alpha(k, resolution)))
        # colour moves all channels together under a nonlinear walk
        return alpha[:, None].expand(n, edit.sliders).clone() if edit.sliders > 1 else alpha

    def settings(self) -> dict:
        settings = {"latent_shape": list(self.latent_shape), "eps": self.eps, "max_steps": self.max_steps,
                    "step_mode": self.step_mode, "renorm": self.renorm, "psi": self.psi, "hidden": self.hidden}
        return dict(settings, layers=list(self.layers)) if self.layers else settings


def make_walk(kind: str, edit: Edit, latent_shape, resolution: int, seed: int = 0, renorm: str = "sphere",
              centre=None, layers=None):
    """A fresh walk of `kind` for `edit` with the edit's default settings."""
    if kind == "linear":
        return LinearWalk(latent_shape, sliders=edit.sliders, seed=seed, layers=layers)
    if kind == "nonlinear":
        return NonlinearWalk(latent_shape, eps=edit.step_eps(resolution), max_steps=edit.max_steps,
                             step_mode=edit.step_mode, renorm=renorm, centre=centre, seed=seed, layers=layers)
    raise SteerError(f"unknown walk type '{kind}': choose linear or nonlinear")


def save(walk, path, meta: dict) -> None:
    """Write the walk's tensors and JSON metadata (model, space, edit, alpha convention,
    training settings, loss history ...) to one safetensors file."""
    info = dict(meta, format=FORMAT_VERSION, walk=walk.kind, settings=walk.settings())
    tensors = {k: v.detach().cpu().contiguous() for k, v in walk.state_dict().items()}
    data = safetensors_bytes(tensors, metadata={"steer": json.dumps(info)})
    atomic_write(path, lambda f: f.write(data))


MAX_WALK_DIM = 1 << 20        # entries of the latent a walk moves (w+ of StyleGAN-XL: ~20,000)
MAX_WALK_PARAMETERS = 1 << 28  # elements of one walk's tensors (1 GB as float32)


def read_meta(path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        info = json.loads(meta["steer"])
    except FileNotFoundError:
        raise SteerError(f"walk file {path} does not exist") from None
    except Exception as e:
        raise SteerError(f"{path} is not a steer walk file ({type(e).__name__}: {e})") from None
    if not isinstance(info, dict):
        raise SteerError(f"{path} is not a steer walk file: its metadata is a {type(info).__name__}, not an object")
    return info


def _settings_schema(kind: str):
    from .generators import schema as S
    shape = S.Items(S.Int(1, MAX_WALK_DIM), 1, 4)
    layers = S.Maybe(S.Fixed(S.Int(0, MAX_WALK_DIM), S.Int(1, MAX_WALK_DIM)))
    if kind == "linear":
        return S.Table({"latent_shape": shape, "sliders": S.Int(1, 64), "layers": layers},
                       required=("latent_shape", "sliders"))
    if kind == "weight_slider":
        size = S.Int(1, MAX_WALK_DIM)
        module = S.Table({"name": S.Text(), "type": S.Text(choices=("linear", "conv", "conv_transpose")),
                          "in": size, "out": size, "kernel": S.Fixed(S.Int(1, 64), S.Int(1, 64))},
                         required=("name", "type", "in", "out", "kernel"))
        return S.Table({"latent_shape": shape, "sliders": S.Int(1, 64), "rank": S.Int(1, 4096),
                        "modules": S.Items(module, 1, 4096)},
                       required=("latent_shape", "sliders", "rank", "modules"))
    return S.Table({"latent_shape": shape, "eps": S.Num(-1e6, 1e6), "max_steps": S.Int(1, 1000),
                    "step_mode": S.Text(choices=("multiply", "add")), "renorm": S.Text(choices=("sphere", "truncate", "none")),
                    "psi": S.Num(-1e6, 1e6), "hidden": S.Int(1, MAX_WALK_DIM), "layers": layers},
                   required=("latent_shape", "eps", "max_steps", "step_mode", "renorm", "psi", "hidden"))


def _expected_shapes(kind: str, settings: dict) -> dict:
    """The tensors a walk with these settings holds, name -> shape, worked out without
    building it (so a file cannot make steer allocate more than it holds)."""
    latent_shape = tuple(settings["latent_shape"])
    layers = check_layers(settings.get("layers"), latent_shape)
    dim = math.prod(_walked_shape(latent_shape, layers))
    if dim > MAX_WALK_DIM:
        raise SteerError(f"the walk moves {dim:,} latent entries, more than steer's limit of {MAX_WALK_DIM:,}")
    if kind == "linear":
        return {"directions": (settings["sliders"], dim)}
    if kind == "weight_slider":
        from .directions.weight_slider import expected_shapes
        return expected_shapes(settings)
    hidden = settings["hidden"]
    shapes = {"centre": (dim,)}
    for net in ("forward_net", "backward_net"):
        shapes.update({f"{net}.0.weight": (hidden, dim), f"{net}.0.bias": (hidden,),
                       f"{net}.2.weight": (dim, hidden), f"{net}.2.bias": (dim,)})
    return shapes


def load(path, device=None):
    """Returns (walk, meta). The settings are checked against their schema and the file's
    tensors against the shapes those settings give, before any walk is built; tensors with
    NaN or inf are refused by name."""
    from .generators import schema as S
    from .generators.loading import check_finite
    meta = read_meta(path)
    missing = [k for k in ("edit", "walk", "settings") if k not in meta]
    if missing:
        raise SteerError(f"{path} is not a complete steer walk file: its metadata lacks {', '.join(missing)}")
    if not isinstance(meta["edit"], str):
        raise SteerError(f"{path}: the walk's edit must be a name, got {meta['edit']!r:.40}")
    get_edit(meta["edit"])  # refuse walks for edits this version does not know
    if meta["walk"] not in ("linear", "nonlinear", "weight_slider"):
        raise SteerError(f"{path}: unknown walk type {meta['walk']!r:.40}")
    settings = S.check(_settings_schema(meta["walk"]), meta["settings"], f"{path}: settings")
    if meta["walk"] == "nonlinear" and settings["step_mode"] == "multiply":
        S.rule(settings["eps"] > 0 and settings["eps"] != 1, f"{path}: settings",
               f"a multiplying step needs eps > 0 and not 1, got {settings['eps']:g}")
    expected = _expected_shapes(meta["walk"], settings)
    total = sum(math.prod(shape) for shape in expected.values())
    S.rule(total <= MAX_WALK_PARAMETERS, f"{path}: settings",
           f"they ask for {total:,} weights, more than steer's limit of {MAX_WALK_PARAMETERS:,}")
    try:
        with safe_open(str(path), framework="pt") as f:
            declared = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:
        raise SteerError(f"{path} is not a steer walk file ({type(e).__name__}: {e})") from None
    if declared != expected:
        wrong = sorted(set(declared) ^ set(expected)) or [k for k in expected if declared[k] != expected[k]]
        raise SteerError(f"{path}: its tensors do not match its settings (first difference: '{wrong[0]}')")
    state = check_finite(load_file(str(path)), f"walk file {path}")
    if meta["walk"] == "linear":
        walk = LinearWalk(settings["latent_shape"], sliders=settings["sliders"], layers=settings.get("layers"))
    elif meta["walk"] == "weight_slider":
        from .directions.weight_slider import WeightSlider
        walk = WeightSlider(settings["latent_shape"], settings["modules"], sliders=settings["sliders"],
                            rank=settings["rank"])
    else:
        walk = NonlinearWalk(settings["latent_shape"], settings["eps"], settings["max_steps"],
                             settings["step_mode"], renorm=settings["renorm"], psi=settings["psi"],
                             hidden=settings["hidden"], layers=settings.get("layers"))
    walk.load_state_dict(state, strict=True)
    if device is not None:
        walk = walk.to(device)
    return walk, meta


__all__ = ["LinearWalk", "NonlinearWalk", "make_walk", "save", "load", "read_meta"]
