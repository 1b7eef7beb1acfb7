"""The interface every generator adapter exposes, so walks, inversion and fine-tuning are
written once. Images are float32 in [-1, 1], NCHW; classes are int64 indices or None."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class FirstLayer:
    """What `first_layer()` returns: the generator's first layer as a linear map from part
    of the latent onto a k x k grid, out[c, i, j] = weight[c, i, j] . latent[slice] + bias[c, i, j].

    weight (C, k, k, d), bias (C, k, k); latent: the slice of z the layer reads (d entries)."""

    weight: torch.Tensor
    bias: torch.Tensor
    latent: slice


class Generator(nn.Module):
    """Base class for adapters. Subclasses set the attributes and implement
    `synthesize` (and `to_space` when they have more than one latent space)."""

    name: str = ""
    resolution: int = 0
    num_classes: int = 0  # 0 when unconditional
    latent_dim: int = 0
    spaces: tuple = ("z",)
    default_space: str = "z"
    class_names = None  # names of the classes by index, when the model has them

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def sample(self, n: int, seed: int = 0, truncation: float | None = None, classes=None):
        """Draw n latents (and classes) from a CPU generator seeded with `seed`, so the same
        seed gives the same latents on every device. Returns (z, classes or None)."""
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, self.latent_dim, generator=gen)
        if truncation is not None:
            # resample entries beyond the truncation bound (truncated normal)
            bad = z.abs() > truncation
            while bad.any():
                z[bad] = torch.randn(int(bad.sum()), generator=gen)
                bad = z.abs() > truncation
        if self.num_classes:
            if classes is None:
                classes = torch.randint(self.num_classes, (n,), generator=gen)
            else:
                classes = torch.as_tensor(classes, dtype=torch.int64).reshape(-1).expand(n).clone()
            classes = classes.to(self.device)
        else:
            classes = None
        return z.to(self.device), classes

    def to_space(self, z, classes, space: str | None = None, truncation: float | None = None):
        """Map z into `space`. Families with a single space return z unchanged."""
        space = space or self.default_space
        self.check_space(space)
        return z

    def synthesize(self, latent, classes, space: str | None = None):
        raise NotImplementedError

    def forward(self, z, classes=None, space: str | None = None):
        space = space or self.default_space
        return self.synthesize(self.to_space(z, classes, space), classes, space)

    def check_space(self, space: str):
        if space not in self.spaces:
            from ..errors import SteerError
            raise SteerError(f"{self.name or type(self).__name__} has no latent space '{space}'; "
                             f"choose one of {', '.join(self.spaces)}")

    def tunable_parameters(self):
        return list(self.parameters())

    def config(self) -> dict:
        """The JSON config that, with the weights, rebuilds this generator."""
        raise NotImplementedError


def class_index(generator, text, option: str = "--class") -> int:
    """A class given by index or by name (the model's class names, e.g. ImageNet's for
    BigGAN: 'golden retriever'; case and '_' for ' ' do not matter)."""
    from ..errors import SteerError
    text = str(text).strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < generator.num_classes:
            raise SteerError(f"{option} {index} is out of range: {generator.name} has classes "
                             f"0..{generator.num_classes - 1}")
        return index
    names = generator.class_names or []
    wanted = text.lower().replace("_", " ")
    hits = [i for i, name in enumerate(names) if name.lower() == wanted]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise SteerError(f"{option} '{text}' is ambiguous: it names classes {', '.join(map(str, hits))}; "
                         "give the index")
    if not names:
        raise SteerError(f"{generator.name} has no class names: give {option} as an index "
                         f"0..{generator.num_classes - 1}")
    close = [name for name in names if wanted in name.lower()][:5]
    hint = f" (did you mean {', '.join(repr(n) for n in close)}?)" if close else ""
    raise SteerError(f"{option}: unknown class '{text}' for {generator.name}{hint}; give a name or an index "
                     f"0..{generator.num_classes - 1}")
