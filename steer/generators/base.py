"""The interface every generator adapter exposes, so walks, inversion and fine-tuning are
written once. Images are float32 in [-1, 1], NCHW; classes are int64 indices or None."""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

# What truncation means for a family (Generator.truncation_kind):
#   "z"      a truncated normal z: entries beyond +-t are redrawn (steer's own families)
#   "psi"    psi in W: w is pulled toward the (class) mean w (StyleGAN); applied in to_space
#   "biggan" z from a normal truncated to +-2 times t, and the batch-norm statistics stored
#            for t (BigGAN-deep); applied in sample and in synthesize
TRUNCATION_KINDS = ("z", "psi", "biggan")


@dataclass
class FirstLayer:
    """What `first_layer()` returns: the generator's first layer as a linear map from part
    of the latent onto a k x k grid, out[c, i, j] = weight[c, i, j] . latent[slice] + bias[c, i, j].

    weight (C, k, k, d), bias (C, k, k); latent: the slice of z the layer reads (d entries)."""

    weight: torch.Tensor
    bias: torch.Tensor
    latent: slice


def file_sha256(path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelSource:
    """Where a loaded generator came from, recorded in every file steer writes so that a walk,
    an inversion or a render can reload its model by itself.

    kind: "bundled" (a folder under models/), "folder" (a model folder a user gave) or
    "checkpoint" (an official checkpoint file) or "hf" (a Hugging Face Hub file, steer.fetch);
    name: the bundled name, the folder's or file's name, or for "hf" the spec pinned to the
    commit (hf:ORG/REPO/FILE@COMMIT); path: the resolved absolute path of the folder or file;
    sha256: of the weights file (folders) or of the checkpoint file; family: the registry's
    family name; hub ("hf" only): repo, file, revision asked for, commit and sha256."""

    kind: str
    name: str
    path: str
    sha256: str
    family: str
    hub: dict | None = None

    def spec(self) -> str:
        """What load_generator takes to load this model again."""
        return self.name if self.kind in ("bundled", "hf") else self.path

    def to_dict(self) -> dict:
        record = asdict(self)
        if record["hub"] is None:  # files of every other kind keep their five keys
            del record["hub"]
        return record

    @classmethod
    def from_dict(cls, record: dict) -> "ModelSource":
        from ..errors import SteerError
        keys = ("kind", "name", "path", "sha256", "family")
        if not isinstance(record, dict) or any(not isinstance(record.get(k), str) for k in keys):
            raise SteerError(f"the recorded model source {record!r} is incomplete: pass --model")
        hub = record.get("hub")
        return cls(**{k: record[k] for k in keys}, hub=dict(hub) if isinstance(hub, dict) else None)


@dataclass
class Family:
    """What a generator family declares to the registry (steer/generators/registry.py).

    build(config) -> Generator from steer's own config.json (weights loaded by the registry);
    check_config(config, where) -> the config checked against the family's declared schema
    (steer/generators/schema.py), run by the registry once, before anything is built;
    checkpoint_parts(obj) -> (config, state_fn) or None, for an official checkpoint file read
    by the restricted unpickler: the registry checks the config, calls state_fn() for the
    tensors and builds the generator itself; folder_parts(folder, config) -> (config, state_fn)
    or None, the same for a third-party model folder whose config.json has no "family";
    read_checkpoint(obj, name) / read_folder(folder, config) -> Generator or None: the older,
    all-in-one hooks, still run inside the registry's guard; weights_file(folder) -> the
    file whose sha256 identifies such a folder. Training, where the family trains:
    for_training(resolution, num_classes, **options) -> a fresh G to train, discriminator(G)
    -> a fresh D that fits G, recipe(**overrides) -> its TrainConfig. small(seed) -> a small
    random instance, for the conformance tests. notes: e.g. {"about": a model card's first line}."""

    name: str
    build: Callable
    small: Callable
    read_checkpoint: Callable | None = None
    read_folder: Callable | None = None
    check_config: Callable | None = None
    checkpoint_parts: Callable | None = None
    folder_parts: Callable | None = None
    weights_file: Callable | None = None
    discriminator: Callable | None = None
    recipe: Callable | None = None
    for_training: Callable | None = None
    notes: dict = field(default_factory=dict)


def run_layer(layer, *args, checkpointed: bool = False):
    """layer(*args), under gradient checkpointing when asked and a backward can follow."""
    if checkpointed and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint
        return checkpoint(layer, *args, use_reentrant=False)
    return layer(*args)


class Generator(nn.Module):
    """Base class for adapters. Subclasses set the attributes and implement
    `synthesize` (and `to_space` when they have more than one latent space).

    Truncation is an argument, never state: `sample`, `to_space` and `synthesize` all take
    `truncation=` and each applies it where the family does (see TRUNCATION_KINDS), so a
    caller passes the same value to all three."""

    family: str = ""
    name: str = ""
    resolution: int = 0
    num_classes: int = 0  # 0 when unconditional
    latent_dim: int = 0
    spaces: tuple = ("z",)
    default_space: str = "z"
    truncation_kind: str = "z"
    class_names = None  # names of the classes by index, when the model has them
    source: ModelSource | None = None  # set by the registry when it loads the model

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def latent_shape(self, space: str | None = None) -> tuple:
        """The shape of one latent in `space` (without the batch dimension)."""
        self.check_space(space or self.default_space)
        return (self.latent_dim,)

    def check_truncation(self, truncation) -> float | None:
        """A truncation value this family accepts, as a float (None stays None)."""
        from ..errors import SteerError
        if truncation is None:
            return None
        t = float(truncation)
        if not t > 0 or t != t or t == float("inf"):
            raise SteerError(f"truncation must be a positive number, got {truncation!r}")
        if self.truncation_kind == "z" and t < 0.05:
            # below this almost every draw lands outside the bound and redrawing cannot finish
            raise SteerError(f"truncation {t:g} is too small for a truncated normal z: give at least 0.05")
        return t

    def sample(self, n: int, seed: int = 0, truncation: float | None = None, classes=None):
        """Draw n latents (and classes) from a CPU generator seeded with `seed`, so the same
        seed gives the same latents on every device. Returns (z, classes or None)."""
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, self.latent_dim, generator=gen)
        truncation = self.check_truncation(truncation) if self.truncation_kind == "z" else None
        if truncation is not None:
            # resample entries beyond the truncation bound (truncated normal); at t >= 0.05 a
            # draw lands inside with probability >= 4 %, so 2,000 rounds leave nothing out
            bad = z.abs() > truncation
            for _ in range(2000):
                if not bad.any():
                    break
                z[bad] = torch.randn(int(bad.sum()), generator=gen)
                bad = z.abs() > truncation
            z = z.clamp(-truncation, truncation)
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
        """Map z into `space`: z unchanged; w and w+ through the family's `mapping_ws`
        (every family with W spaces defines it), w as the first of the per-layer ws."""
        space = space or self.default_space
        self.check_space(space)
        if space == "z":
            return z
        ws = self.mapping_ws(z, classes, truncation)
        return ws[:, 0] if space == "w" else ws

    def synthesize(self, latent, classes, space: str | None = None, truncation: float | None = None):
        raise NotImplementedError

    def forward(self, z, classes=None, space: str | None = None, truncation: float | None = None):
        space = space or self.default_space
        # an adapter written without truncation support is called without the keyword
        kw = {} if truncation is None else {"truncation": truncation}
        return self.synthesize(self.to_space(z, classes, space, **kw), classes, space, **kw)

    def check_space(self, space: str):
        if space not in self.spaces:
            from ..errors import SteerError
            raise SteerError(f"{self.name or type(self).__name__} has no latent space '{space}'; "
                             f"choose one of {', '.join(self.spaces)}")

    def tunable_parameters(self):
        return list(self.parameters())

    def set_gradient_checkpointing(self, on: bool = True):
        """Recompute each synthesis layer's activations in the backward pass instead of keeping
        them (torch.utils.checkpoint): less memory for a walk step, for recomputing the forward.
        Families that have no such layers refuse to turn it on rather than ignore it."""
        layers = [m for m in self.modules() if hasattr(m, "checkpoint_layers")]
        if on and not layers:
            from ..errors import SteerError
            raise SteerError(f"{self.name or type(self).__name__} ({self.family}) has no synthesis layers to "
                             "checkpoint (BigGAN-deep and StyleGAN-XL do): drop --grad-checkpoint")
        for module in layers:
            module.checkpoint_layers = bool(on)
        return self

    def config(self) -> dict:
        """The JSON config that, with the weights, rebuilds this generator."""
        raise NotImplementedError


def class_index(generator, text, option: str = "--class") -> int:
    """A class given by index or by name (the model's class names, e.g. ImageNet's for
    BigGAN: 'golden retriever'; case and '_' for ' ' do not matter)."""
    from ..errors import SteerError
    text = str(text).strip()
    if len(text) > 200:
        raise SteerError(f"{option} is {len(text)} characters long: give a class name or an index")
    # ASCII digits only: str.isdigit() also takes '²', which int() then refuses with a traceback
    if re.fullmatch(r"[+-]?[0-9]+", text):
        index = int(text) if len(text) <= 20 else -1
        if not 0 <= index < generator.num_classes:
            raise SteerError(f"{option} {text[:24]} is out of range: {generator.name} has classes "
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


def pick_classes(generator, class_option, n, classes_option=None):
    """The classes of n samples: `class_option` (one class, index or name) for every sample;
    `classes_option` ("A,B,..." indices or names) cycled over them; neither: cycle through all
    the classes. None for an unconditional generator."""
    from ..errors import SteerError
    if not generator.num_classes:
        if class_option is not None or classes_option:
            raise SteerError(f"{generator.name} is unconditional: drop --class")
        return None
    if class_option is not None and classes_option:
        raise SteerError("give --class or --classes, not both")
    if classes_option:
        chosen = [class_index(generator, part, "--classes") for part in classes_option.split(",") if part.strip()]
        if not chosen:
            raise SteerError("--classes is empty")
        return torch.tensor(chosen, dtype=torch.int64).repeat(n // len(chosen) + 1)[:n]
    if class_option is None:
        return torch.arange(n) % generator.num_classes
    return torch.full((n,), class_index(generator, class_option), dtype=torch.int64)
