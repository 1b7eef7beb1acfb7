"""Weight-space sliders: the steerability idea moved from the latent into the weights, as
Concept Sliders do for diffusion models.

A slider is a low-rank (LoRA) offset on some of the generator's layers, scaled per sample by
t = edit.walk_input(alpha) (log alpha for zoom, alpha / alpha_max for shifts and rotation):

    layer(x)  ->  layer(x) + sum_k t_k * B_k A_k x

and trained like a walk, so that G_{theta + alpha Delta}(z) ~ edit(G_theta(z), alpha): the
latent stays where it is and the weights move. Linear layers get A: (rank, in), B: (out,
rank); a convolution gets A as a convolution of the layer's own kernel, stride and padding
onto `rank` channels and B as a 1x1 convolution back, so the offset is a rank-limited change
of the layer's weight. B starts at zero (the slider starts as the identity), A small and
random, as LoRA does.

The offset is added by forward hooks on the generator's torch modules (nn.Linear,
nn.Conv2d, nn.ConvTranspose2d), attached only while the walked images are made, so the
generator itself is never changed and the slider knows no family. Saved as an ordinary walk
file (kind "weight_slider"): its tensors are the small A and B of each layer.
"""
from __future__ import annotations

import contextlib
import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SteerError

LAYER_TYPES = {nn.Linear: "linear", nn.Conv2d: "conv", nn.ConvTranspose2d: "conv_transpose"}


def _safe(name: str) -> str:
    return name.replace(".", "__")  # parameter names cannot hold dots


def slider_layers(generator, pattern: str | None = None) -> list:
    """The layers a slider offsets: every nn.Linear, nn.Conv2d and nn.ConvTranspose2d whose name
    matches `pattern` (a regular expression, searched), or by default every convolution but the
    last (the layer onto RGB) and the first layer that reads the latent: the layers that make
    the image's layout, where geometric edits live."""
    found = [(name, m) for name, m in generator.named_modules()
             if type(m) in LAYER_TYPES and getattr(m, "groups", 1) == 1 and name]
    if pattern is not None:
        try:
            regex = re.compile(pattern)
        except re.error as e:
            raise SteerError(f"--slider-layers {pattern!r} is not a regular expression ({e})") from None
        chosen = [(n, m) for n, m in found if regex.search(n)]
        if not chosen:
            raise SteerError(f"--slider-layers {pattern!r} matches none of the model's linear or convolution "
                             f"layers (some: {', '.join(n for n, _ in found[:6])})")
        return chosen
    convs = [(n, m) for n, m in found if type(m) is not nn.Linear]
    linears = [(n, m) for n, m in found if type(m) is nn.Linear]
    chosen = linears[:1] + convs[:-1]
    if not chosen:
        raise SteerError("the model has no linear or convolution layers a slider can offset")
    return chosen


def layer_spec(name: str, module: nn.Module) -> dict:
    kind = LAYER_TYPES[type(module)]
    w = module.weight
    if kind == "linear":
        return {"name": name, "type": kind, "in": int(w.shape[1]), "out": int(w.shape[0]), "kernel": [1, 1]}
    if kind == "conv":
        return {"name": name, "type": kind, "in": int(w.shape[1]), "out": int(w.shape[0]), "kernel": list(w.shape[2:])}
    return {"name": name, "type": kind, "in": int(w.shape[0]), "out": int(w.shape[1]), "kernel": list(w.shape[2:])}


def expected_shapes(settings: dict) -> dict:
    """name -> shape of every tensor a slider with these settings holds."""
    shapes = {}
    r, k = settings["rank"], settings["sliders"]
    for spec in settings["modules"]:
        kh, kw = spec["kernel"]
        key = _safe(spec["name"])
        if spec["type"] == "linear":
            shapes[f"down.{key}"] = (k * r, spec["in"])
        elif spec["type"] == "conv":
            shapes[f"down.{key}"] = (k * r, spec["in"], kh, kw)
        else:
            shapes[f"down.{key}"] = (spec["in"], k * r, kh, kw)
        shapes[f"up.{key}"] = (k, spec["out"], r)
    return shapes


class WeightSlider(nn.Module):
    kind = "weight_slider"

    def __init__(self, latent_shape, modules: list, sliders: int = 1, rank: int = 4, seed: int = 0,
                 init_std: float | None = None):
        super().__init__()
        self.latent_shape = tuple(latent_shape)  # the latent it leaves alone (checked like a walk's)
        self.modules_spec = [dict(m) for m in modules]
        self.sliders, self.rank = int(sliders), int(rank)
        gen = torch.Generator().manual_seed(seed)
        self.down = nn.ParameterDict()
        self.up = nn.ParameterDict()
        shapes = expected_shapes(self.settings())
        for spec in self.modules_spec:
            key = _safe(spec["name"])
            fan_in = spec["in"] * math.prod(spec["kernel"])
            std = 1.0 / math.sqrt(fan_in) if init_std is None else init_std
            self.down[key] = nn.Parameter(torch.randn(*shapes[f"down.{key}"], generator=gen) * std)
            self.up[key] = nn.Parameter(torch.zeros(*shapes[f"up.{key}"]))

    def settings(self) -> dict:
        return {"latent_shape": list(self.latent_shape), "sliders": self.sliders, "rank": self.rank,
                "modules": self.modules_spec}

    # ---- as a walk: the latent is left alone, the alphas are drawn as a linear walk's ----
    def apply(self, latent, alpha, edit, resolution: int):
        return latent

    def sample_alpha(self, edit, n: int, gen, resolution: int):
        return edit.sample_train(n, gen, resolution)

    def offset(self, spec: dict, module: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """sum_k t_k B_k A_k x for one layer's input x; t: (N, sliders)."""
        key = _safe(spec["name"])
        down, up = self.down[key], self.up[key]
        r, k = self.rank, self.sliders
        if spec["type"] == "linear":
            h = F.linear(x, down)  # (N, ..., k*r)
            h = h.reshape(*h.shape[:-1], k, r)
            delta = torch.einsum("n...kr,kor->n...ko", h, up)
            scale = t.reshape(t.shape[0], *([1] * (delta.dim() - 3)), k, 1)
            return (delta * scale).sum(-2)
        if spec["type"] == "conv":
            h = F.conv2d(x, down, None, module.stride, module.padding, module.dilation)
        else:
            h = F.conv_transpose2d(x, down, None, module.stride, module.padding, module.output_padding, 1,
                                   module.dilation)
        n, _, height, width = h.shape
        h = h.reshape(n, k, r, height, width)
        delta = torch.einsum("nkrhw,kor->nkohw", h, up)
        return (delta * t.reshape(n, k, 1, 1, 1)).sum(1)

    @contextlib.contextmanager
    def attached(self, generator, t: torch.Tensor):
        """Hooks on the generator's layers adding the offset at strengths t (N, sliders) while
        inside the block; removed on the way out, whatever happens."""
        named = dict(generator.named_modules())
        handles = []
        try:
            for spec in self.modules_spec:
                module = named.get(spec["name"])
                if module is None or type(module) not in LAYER_TYPES or layer_spec(spec["name"], module) != spec:
                    raise SteerError(f"this slider offsets layer '{spec['name']}' ({spec['type']} "
                                     f"{spec['in']}->{spec['out']}), which {generator.name} does not have as such: "
                                     "it was trained on another model (pass the one it was trained on)")

                def hook(mod, inputs, output, spec=spec):
                    if output.shape[0] != t.shape[0]:
                        raise SteerError(f"layer '{spec['name']}' sees a batch of {output.shape[0]} for "
                                         f"{t.shape[0]} samples (it folds the batch): leave it out of "
                                         "--slider-layers")
                    return output + self.offset(spec, mod, inputs[0], t.to(output)).to(output.dtype)

                handles.append(module.register_forward_hook(hook))
            yield
        finally:
            for h in handles:
                h.remove()

    def images_at(self, steering, latent, classes, alpha):
        """G with the weights moved by alpha, at the unmoved latent (what Steering.walked asks)."""
        t = steering.edit.walk_input(alpha, steering.resolution).to(latent.device)
        with self.attached(steering.generator, t.reshape(len(latent), -1)):
            return steering.synthesize(latent, classes)


def make_weight_slider(generator, edit, space: str, rank: int = 4, pattern: str | None = None,
                       seed: int = 0) -> WeightSlider:
    modules = [layer_spec(n, m) for n, m in slider_layers(generator, pattern)]
    return WeightSlider(generator.latent_shape(space), modules, sliders=edit.sliders, rank=rank, seed=seed)
