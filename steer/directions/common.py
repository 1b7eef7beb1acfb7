"""What the direction methods share: the space a direction lives in, and turning directions
into walks.

A method finds unit vectors u in a *direction space*: z (or the part of z a layer reads), or
w for StyleGAN. A direction found in w can move w itself, or only the w+ rows of a layer
range (GANSpace's and SeFa's layer-wise edits): the same u is added to each of those rows.

The walk a direction becomes is a one-slider LinearWalk whose vector is `step` standard
deviations of the sampled latents along u (in z that deviation is 1), so alpha = 1 moves
the latent by `step` of the spread the generator was trained on, whatever the method's own
scale. The walk's edit is "brightness", whose walk input is alpha itself: the edit only names
the alpha convention here (as for imported peer directions); the directions know no edit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import SteerError
from ..walks import LinearWalk, check_layers

# the edit a direction walk carries: its walk input is alpha, unchanged
DIRECTION_EDIT = "brightness"


@dataclass
class DirectionSpace:
    """Where directions live and how they move a latent.

    space: the generator space the walk moves (z, w or w+); dim: the length of a direction;
    latent: the slice of z a direction covers (z only; None: all of it); layers: the w+ rows
    a w direction moves (w+ only)."""

    space: str
    dim: int
    latent: slice | None = None
    layers: tuple | None = None

    @property
    def sampled_space(self) -> str:
        """The space latents are drawn in to fit or measure a direction (w for a w+ range)."""
        return "w" if self.space == "w+" else self.space

    def embed(self, u: torch.Tensor, latent_shape) -> torch.Tensor:
        """Directions (K, dim) as offsets of whole latents (K, *latent_shape)."""
        out = u.new_zeros(u.shape[0], *latent_shape)
        if self.space == "w+":
            out[:, self.layers[0]:self.layers[1]] = u[:, None, :]
        elif self.latent is not None:
            out[:, self.latent] = u
        else:
            out[:] = u.reshape(out.shape)
        return out

    def record(self) -> dict:
        return {"space": self.space, "dim": self.dim,
                "latent": None if self.latent is None else [self.latent.start, self.latent.stop],
                "layers": None if self.layers is None else list(self.layers)}


def direction_space(generator, space: str | None = None, layers=None) -> DirectionSpace:
    """The direction space for a model: `layers` (START, STOP) asks for a w direction moving
    those w+ rows; otherwise the space given (default: the model's), whole."""
    if layers is not None:
        if "w+" not in generator.spaces:
            raise SteerError(f"--layers needs a model with a w+ space; {generator.name} has "
                             f"{', '.join(generator.spaces)}")
        if space not in (None, "w", "w+"):
            raise SteerError("--layers moves w+ rows along a direction in w: drop --space or give w+")
        shape = tuple(generator.latent_shape("w+"))
        layers = check_layers(layers, shape)
        return DirectionSpace("w+", shape[1], layers=layers)
    space = space or generator.default_space
    generator.check_space(space)
    shape = tuple(generator.latent_shape(space))
    if space == "w+":
        # a w direction for every row: the same as moving w
        return DirectionSpace("w+", shape[1], layers=(0, shape[0]))
    return DirectionSpace(space, int(torch.tensor(shape).prod()))


@dataclass
class Directions:
    """What a method found: unit directions (K, dim) in `where`, best first, with one value
    per direction saying how strong it is (an eigenvalue, a variance, a singular value, an
    accuracy), what that value is, and the method's settings and report."""

    method: str
    vectors: torch.Tensor
    values: list
    value_name: str
    where: DirectionSpace
    settings: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)


def latent_spread(generator, where: DirectionSpace, vectors: torch.Tensor, samples: int = 512, seed: int = 0,
                  truncation=None) -> torch.Tensor:
    """The standard deviation of sampled latents along each unit direction (K,): 1 in an
    untruncated z, measured elsewhere (w's spread differs per direction)."""
    if where.sampled_space == "z" and truncation is None:
        return torch.ones(vectors.shape[0])
    z, classes = generator.sample(samples, seed=seed, truncation=truncation)
    with torch.no_grad():
        kw = {} if truncation is None else {"truncation": truncation}
        latent = generator.to_space(z, classes, where.sampled_space, **kw).reshape(samples, -1).float().cpu()
    if where.latent is not None:
        latent = latent[:, where.latent]
    return (latent @ vectors.T.float()).std(0).clamp_min(1e-8)


def direction_walks(generator, found: Directions, step: float = 1.0, truncation=None, seed: int = 0) -> list:
    """One one-slider LinearWalk per direction: `step` standard deviations of the sampled
    latents along it per unit alpha. Returns [(walk, spread)]."""
    where = found.where
    shape = tuple(generator.latent_shape(where.space))
    spreads = latent_spread(generator, where, found.vectors, seed=seed, truncation=truncation)
    walks = []
    for u, sd in zip(found.vectors.float().cpu(), spreads):
        if where.space == "w+":
            walk = LinearWalk(shape, sliders=1, init_std=0.0, layers=where.layers)
            vector = u.repeat(where.layers[1] - where.layers[0])
        else:
            walk = LinearWalk(shape, sliders=1, init_std=0.0)
            vector = where.embed(u[None], shape).reshape(-1)
        with torch.no_grad():
            walk.directions[0] = vector * (step * float(sd))
        walks.append((walk.to(generator.device), float(sd)))
    return walks


def orthonormal(vectors: torch.Tensor) -> torch.Tensor:
    """Rows made orthonormal in order (Gram-Schmidt via QR), signs kept."""
    q, r = torch.linalg.qr(vectors.double().T)
    # QR may flip a column's sign; flip it back so each row keeps the way it pointed
    return (q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q)).T.float()


def check_count(k: int, dim: int, what: str = "--components") -> int:
    if not 1 <= int(k) <= dim:
        raise SteerError(f"{what} must be in 1..{dim} (the direction space has {dim} dimensions), got {k}")
    return int(k)


def truncation_kw(truncation) -> dict:
    # adapters written without truncation support are called without the keyword
    return {} if truncation is None else {"truncation": truncation}


@torch.no_grad()
def seed_latents(generator, seeds, space: str, truncation=None, classes=None):
    """One latent per seed, each drawn alone as `steer render --seeds` draws it, so a seed
    names the same sample everywhere: (latents in `space`, classes or None)."""
    latents, drawn = [], []
    for s in seeds:
        z, c = generator.sample(1, seed=int(s), truncation=truncation, classes=classes)
        latents.append(generator.to_space(z, c, space, **truncation_kw(truncation)))
        drawn.append(c)
    return torch.cat(latents), (torch.cat(drawn) if drawn[0] is not None else None)


def flat(latent: torch.Tensor, where: DirectionSpace) -> torch.Tensor:
    """Latents in where.sampled_space as direction-space coordinates (N, dim)."""
    latent = latent.reshape(latent.shape[0], -1)
    return latent[:, where.latent] if where.latent is not None else latent
