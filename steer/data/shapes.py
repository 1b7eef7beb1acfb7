"""Procedural shapes: one anti-aliased coloured shape per image, every attribute known.

Each attribute is drawn from a distribution the caller controls, so the spread of (say)
object scale in the training data is known exactly; the steerability experiments depend
on that. Rendering is vectorised torch on signed distance functions: a pixel's coverage
is its distance to the shape's edge, clipped to one pixel, which anti-aliases the edge.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from ..seeding import step_seed

SHAPE_CLASSES = ("circle", "square", "triangle", "cross")


@dataclass
class ShapesConfig:
    """Ranges of each attribute; values are drawn uniformly unless stated.

    scale: object radius as a fraction of the image width, drawn log-uniformly.
    class_scale: per-class scale ranges {class index: (low, high)} that replace `scale` for
        those classes (class-dependent spreads for the steerability experiments).
    centre: object centre (x and y) as a fraction of the image width.
    rotation: degrees.
    saturation / value: HSV of the object colour (hue is uniform on the circle).
    background: grey level of the background in [-1, 1].
    """

    scale: tuple = (0.12, 0.32)
    centre: tuple = (0.3, 0.7)
    rotation: tuple = (0.0, 360.0)
    saturation: tuple = (0.6, 1.0)
    value: tuple = (0.7, 1.0)
    background: tuple = (-0.9, -0.3)
    classes: tuple = field(default_factory=lambda: tuple(range(len(SHAPE_CLASSES))))
    class_scale: dict = field(default_factory=dict)

    def to_dict(self):
        d = {k: list(v) for k, v in asdict(self).items() if k != "class_scale"}
        if self.class_scale:
            d["class_scale"] = {str(k): list(v) for k, v in self.class_scale.items()}
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        class_scale = {int(k): tuple(v) for k, v in d.pop("class_scale", {}).items()}
        return cls(**{k: tuple(v) for k, v in d.items()}, class_scale=class_scale)

    def scale_range(self, kind: int) -> tuple:
        return self.class_scale.get(kind, self.scale)


def read_shapes_config(path) -> ShapesConfig:
    """A ShapesConfig from a JSON file of its fields; one SteerError line for anything wrong.
    Classes may be given by index or name (in `classes` and as `class_scale` keys)."""
    import json

    from ..errors import SteerError

    def class_index(k):
        if isinstance(k, str) and k in SHAPE_CLASSES:
            return SHAPE_CLASSES.index(k)
        try:
            i = int(k)
        except (TypeError, ValueError):
            i = -1
        if not 0 <= i < len(SHAPE_CLASSES):
            raise SteerError(f"{path}: unknown shape class {k!r}; use one of {', '.join(SHAPE_CLASSES)} or 0..3")
        return i

    try:
        d = json.loads(open(path).read())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SteerError(f"cannot read the shapes config {path}: {e}") from None
    if not isinstance(d, dict):
        raise SteerError(f"{path}: the shapes config must be a JSON object of ShapesConfig fields")
    known = set(ShapesConfig.__dataclass_fields__)
    unknown = sorted(set(d) - known)
    if unknown:
        raise SteerError(f"{path}: unknown field {unknown[0]!r}; fields are {', '.join(sorted(known))}")

    def pair(name, v, positive=False):
        if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)
                and v[0] <= v[1] and (not positive or v[0] > 0)):
            raise SteerError(f"{path}: {name} must be [low, high] with low <= high"
                             + (" and low > 0" if positive else "") + f", not {v!r}")
        return tuple(float(x) for x in v)

    out = {}
    for k, v in d.items():
        if k == "classes":
            out[k] = tuple(class_index(c) for c in v) if isinstance(v, list) and v else None
            if out[k] is None:
                raise SteerError(f"{path}: classes must be a non-empty list of shape classes")
        elif k == "class_scale":
            if not isinstance(v, dict):
                raise SteerError(f"{path}: class_scale must map shape classes to [low, high]")
            out[k] = {class_index(c): pair(f"class_scale[{c}]", r, positive=True) for c, r in v.items()}
        else:
            out[k] = pair(k, v, positive=(k == "scale"))
    return ShapesConfig(**out)


def _uniform(n, low_high, gen):
    low, high = low_high
    return low + (high - low) * torch.rand(n, generator=gen)


def _hsv_to_rgb(h, s, v):
    """h in [0, 1), s and v in [0, 1] -> (n, 3) RGB in [0, 1]."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    return v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _sdf(kind, px, py):
    """Signed distance (negative inside) of each unit-radius shape, in shape coordinates."""
    if kind == 0:  # circle
        return torch.sqrt(px**2 + py**2) - 1.0
    if kind == 1:  # square with half-side 0.85, so its area is close to the circle's
        qx, qy = px.abs() - 0.85, py.abs() - 0.85
        outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
        return outside + torch.maximum(qx, qy).clamp(max=0)
    if kind == 2:  # equilateral triangle inscribed in the unit circle, pointing up
        # distance to the three edge lines (an exact SDF inside, a close bound outside)
        edges = []
        for angle in (270.0, 30.0, 150.0):  # edge normals; vertices sit opposite
            a = math.radians(angle)
            edges.append(px * math.cos(a) + py * math.sin(a) - 0.5)
        return torch.stack(edges).amax(0)
    if kind == 3:  # plus-shaped cross: union of two bars of half-width 0.35
        def box(hx, hy):
            qx, qy = px.abs() - hx, py.abs() - hy
            outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
            return outside + torch.maximum(qx, qy).clamp(max=0)
        return torch.minimum(box(1.0, 0.35), box(0.35, 1.0))
    raise ValueError(f"unknown shape class {kind}")


def render_shapes(attrs: dict, resolution: int) -> torch.Tensor:
    """Render images in [-1, 1] (n, 3, S, S) from an attribute dict (see sample_shapes)."""
    n = attrs["class"].shape[0]
    s = resolution
    coords = (torch.arange(s, dtype=torch.float32) + 0.5) / s  # pixel centres in [0, 1]
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    dx = xx[None] - attrs["centre_x"][:, None, None]
    dy = yy[None] - attrs["centre_y"][:, None, None]
    theta = torch.deg2rad(attrs["rotation"])[:, None, None]
    cos, sin = torch.cos(theta), torch.sin(theta)
    r = attrs["scale"][:, None, None]
    # rotate the pixel grid into the shape's frame and scale to unit radius;
    # y grows downwards in images, so flip it to make "up" point up
    px = (cos * dx + sin * dy) / r
    py = (sin * dx - cos * dy) / r
    dist = torch.zeros(n, s, s)
    for kind in range(len(SHAPE_CLASSES)):
        pick = attrs["class"] == kind
        if pick.any():
            dist[pick] = _sdf(kind, px[pick], py[pick])
    pixel = 1.0 / (s * r)  # one pixel in shape units
    coverage = (0.5 - dist / pixel).clamp(0, 1)[:, None]
    colour = attrs["colour"][:, :, None, None] * 2 - 1
    background = attrs["background"][:, :, None, None]
    return coverage * colour + (1 - coverage) * background


def sample_shapes(n: int, seed: int = 0, config: ShapesConfig | None = None,
                  resolution: int = 32, generator: torch.Generator | None = None):
    """Draw n shapes. Returns (images (n,3,S,S) in [-1,1], attrs dict of tensors).

    attrs: class, scale, centre_x, centre_y, rotation, colour (n,3 in [0,1]),
    background (n,3 in [-1,1]), area (fraction of the image the object covers).
    """
    config = config or ShapesConfig()
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)
    classes = torch.tensor(config.classes, dtype=torch.int64)
    kind = classes[torch.randint(len(classes), (n,), generator=gen)]
    # per-sample scale range (class-dependent when the config says so), drawn log-uniformly
    ranges = torch.tensor([[math.log(v) for v in config.scale_range(k)] for k in range(len(SHAPE_CLASSES))])
    low, high = ranges[kind, 0], ranges[kind, 1]
    attrs = {
        "class": kind,
        "scale": torch.exp(low + (high - low) * torch.rand(n, generator=gen)),
        "centre_x": _uniform(n, config.centre, gen),
        "centre_y": _uniform(n, config.centre, gen),
        "rotation": _uniform(n, config.rotation, gen),
    }
    hue = torch.rand(n, generator=gen)
    attrs["colour"] = _hsv_to_rgb(hue, _uniform(n, config.saturation, gen), _uniform(n, config.value, gen))
    attrs["background"] = _uniform(n, config.background, gen)[:, None].expand(n, 3).clone()
    images = render_shapes(attrs, resolution)
    # exact covered area: render a white object on black and average
    mask_attrs = dict(attrs, colour=torch.ones(n, 3), background=-torch.ones(n, 3))
    attrs["area"] = ((render_shapes(mask_attrs, resolution)[:, 0] + 1) / 2).mean((1, 2))
    return images, attrs


def shapes_batches(config: ShapesConfig | None = None, resolution: int = 32, seed: int = 0):
    """next_batch(step, n) -> (images, classes) for the trainer; each step has its own seed."""
    def next_batch(step, n):
        images, attrs = sample_shapes(n, seed=step_seed(seed, step, 2), config=config, resolution=resolution)
        return images, attrs["class"]
    return next_batch
