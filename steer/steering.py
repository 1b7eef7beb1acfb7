"""The steering core: a generator, a walk and the edit the walk reproduces, in one latent
space under one truncation. It owns the comparison at the heart of the toolkit,

    walked = G(walk(latent, alpha))   against   target, mask = edit(G(latent), alpha),

and everything that fits, measures, renders, inverts or fine-tunes a walk goes through it.
It also owns the walk file: the walk's tensors with metadata naming the model's source, so
`Steering.load(path)` brings back the generator the walk was learned on by itself.

    import steer
    s = steer.Steering.load("walks/dssgan-shapes32/zoom/walk.safetensors")
    latent, classes = s.sample(4, seed=0)
    walked, target, mask = s.pair(latent, classes, alpha=2.0)
"""
from __future__ import annotations

import torch

from .edits import Edit, get_edit
from .errors import SteerError
from .losses import masked_l2, masked_l2_per_sample
from .seeding import step_seed

CHANNELS = {"r": (1.0, 0.0, 0.0), "g": (0.0, 1.0, 0.0), "b": (0.0, 0.0, 1.0), "all": (1.0, 1.0, 1.0)}


def expand_alpha(edit: Edit, alpha, channel: str = "all"):
    """An alpha as the edit takes it: a scalar colour alpha becomes an RGB offset along
    `channel`; a colour alpha given as three values (one per slider) is used as it is."""
    if edit.sliders == 3:
        if isinstance(alpha, (list, tuple)):
            return [float(v) for v in alpha]
        return [alpha * c for c in CHANNELS[channel]]
    return alpha


def alpha_batch(edit: Edit, alpha, n: int, channel: str = "all") -> torch.Tensor:
    """One alpha (a number, or one value per slider) repeated for n samples: (n,) or (n, sliders)."""
    a = torch.as_tensor(expand_alpha(edit, alpha, channel), dtype=torch.float32)
    return a.expand(n, *a.shape).clone()


def model_for(meta: dict, model=None, device=None, what: str = "the walk"):
    """The generator a file's metadata names: `model` when given (an override), else its
    recorded source (checked: moved or changed weights are one line asking for --model),
    else the bundled name that files written before sources were recorded carry."""
    from .generators.base import Generator
    from .generators.registry import load_generator, load_source
    if isinstance(model, Generator):
        return model
    if model is not None:
        return load_generator(model, device=device)
    if meta.get("source") is not None:
        return load_source(meta["source"], device=device, what=what)
    if isinstance(meta.get("model"), str) and meta["model"]:
        return load_generator(meta["model"], device=device)
    raise SteerError(f"{what} does not name its model: pass --model")


def source_record(generator) -> dict | None:
    """The generator's source as the JSON every written file carries (None if unknown)."""
    return generator.source.to_dict() if getattr(generator, "source", None) is not None else None


def model_label(generator) -> str:
    """What to call a model in files and messages: its bundled name, or its folder or file."""
    source = getattr(generator, "source", None)
    return source.spec() if source is not None else generator.name


class Steering:
    """A generator + walk + edit in a latent space, under a truncation (None: none).

    classes: the classes training batches cycle through (None: the generator draws them)."""

    def __init__(self, generator, walk, edit, space: str | None = None, truncation=None, classes=None):
        self.generator = generator
        self.walk = walk
        self.edit = get_edit(edit) if isinstance(edit, str) else edit  # None: sampling only
        self.space = space or generator.default_space
        generator.check_space(self.space)
        generator.check_truncation(truncation)
        self.truncation = None if truncation is None else float(truncation)
        self.classes = list(classes) if classes else None
        shape = tuple(generator.latent_shape(self.space))
        walk_shape = getattr(walk, "latent_shape", None)  # None: a walk that takes any latent
        if walk_shape is not None and tuple(walk_shape) != shape:
            raise SteerError(f"the walk moves latents of shape {tuple(walk.latent_shape)}, but "
                             f"{generator.name} has {shape} in {self.space}")

    @property
    def resolution(self) -> int:
        return self.generator.resolution

    # ---- latents and images -------------------------------------------------------------
    def batch_classes(self, n: int):
        """n classes cycling through self.classes, or None (the generator draws them)."""
        if not self.classes:
            return None
        return torch.tensor(self.classes, dtype=torch.int64).repeat(n // len(self.classes) + 1)[:n]

    def sample(self, n: int, seed: int = 0, classes=None):
        """n latents in this space (truncated) and their classes, from one seed."""
        G = self.generator
        classes = self.batch_classes(n) if classes is None else classes
        z, c = G.sample(n, seed=seed, truncation=self.truncation, classes=classes)
        return G.to_space(z, c, self.space, **self._truncation_kw()), c

    def _truncation_kw(self) -> dict:
        # adapters written without truncation support are called without the keyword
        return {} if self.truncation is None else {"truncation": self.truncation}

    def rows(self, seeds, row_classes=None):
        """One latent per seed, each drawn alone (so a seed gives the same latent whatever is
        drawn beside it). row_classes: int64 per seed, or None for each seed's own class."""
        latents, classes = [], []
        for i, s in enumerate(seeds):
            latent, c = self.sample(1, seed=s, classes=None if row_classes is None else row_classes[i:i + 1])
            latents.append(latent)
            classes.append(c)
        return torch.cat(latents), (torch.cat(classes) if classes[0] is not None else None)

    def synthesize(self, latent, classes):
        return self.generator.synthesize(latent, classes, self.space, **self._truncation_kw())

    def alpha(self, value, n: int, channel: str = "all") -> torch.Tensor:
        """One alpha repeated for a batch of n, as pair() and move() take it."""
        return alpha_batch(self.edit, value, n, channel)

    def move(self, latent, alpha):
        """walk(latent, alpha); alpha is per sample, as alpha_batch gives it."""
        return self.walk.apply(latent, alpha, self.edit, self.resolution)

    def walked(self, latent, classes, alpha):
        """G(walk(latent, alpha)); a walk that moves the weights instead (a weight-space slider)
        makes the images itself."""
        images_at = getattr(self.walk, "images_at", None)
        if images_at is not None:
            return images_at(self, latent, classes, alpha)
        return self.synthesize(self.move(latent, alpha), classes)

    # ---- the comparison -----------------------------------------------------------------
    def pair(self, latent, classes, alpha, source=None):
        """(walked, target, mask): G(walk(latent, alpha)) with gradients to the walk (and G),
        and edit(G(latent), alpha) with its mask, held fixed. `source`: G(latent) when the
        caller already has it."""
        alpha = torch.as_tensor(alpha).to(latent.device)
        with torch.no_grad():
            if source is None:
                source = self.synthesize(latent, classes)
            target, mask = self.edit(source.detach().float(), alpha)
        walked = self.walked(latent, classes, alpha)
        return walked, target, mask

    def training_batch(self, step: int, batch: int, seed: int = 0):
        """The latents, classes and alphas of training step `step`: drawn from (seed, step),
        so a resumed fit draws exactly what an uninterrupted one would."""
        s = step_seed(seed, step)
        latent, classes = self.sample(batch, seed=s)
        alpha = self.walk.sample_alpha(self.edit, batch, torch.Generator().manual_seed(s + 1), self.resolution)
        return latent, classes, alpha

    def loss(self, latent, classes, alpha, loss_fn=masked_l2):
        walked, target, mask = self.pair(latent, classes, alpha)
        return loss_fn(walked, target, mask)

    @torch.no_grad()
    def held_out_error(self, batch: int = 16, batches: int = 4, seed: int = 0, seed_offset: int = 10**6,
                       alpha=None) -> float:
        """Mean masked L2 of the pair on held-out batches (alphas drawn as in training unless given)."""
        total = 0.0
        for b in range(batches):
            latent, classes, drawn = self.training_batch(b, batch, seed + seed_offset)
            walked, target, mask = self.pair(latent, classes, drawn if alpha is None else alpha)
            total += masked_l2(walked, target, mask).item()
        return total / batches

    @torch.no_grad()
    def error_over_alphas(self, latent, classes, alphas) -> float:
        """Mean over alphas (and samples) of the masked L2 of the pair at these latents."""
        source = self.synthesize(latent, classes)
        errors = [masked_l2_per_sample(*self.pair(latent, classes, alpha_batch(self.edit, a, len(latent)),
                                                  source=source))
                  for a in alphas]
        return float(torch.stack(errors).mean())

    @torch.no_grad()
    def strips(self, latent, classes, alphas, channel: str = "all", targets: bool = False):
        """(rows, len(alphas), 3, H, W): G(walk(latent, alpha)) per sample and alpha; with
        targets=True each sample's row is followed by its target row, undefined pixels 0 (grey)."""
        n = latent.shape[0]
        source = self.synthesize(latent, classes) if targets else None
        walked, wanted = [], []
        for a in alphas:
            alpha = alpha_batch(self.edit, a, n, channel).to(latent.device)
            walked.append(self.walked(latent, classes, alpha).cpu())
            if targets:
                target, mask = self.edit(source, alpha)
                wanted.append((target * mask).cpu())
        walked = torch.stack(walked, dim=1)
        if not targets:
            return walked
        wanted = torch.stack(wanted, dim=1)
        return torch.stack([walked, wanted], dim=1).reshape(2 * n, len(alphas), *walked.shape[2:])

    # ---- the walk file ------------------------------------------------------------------
    def metadata(self, **extra) -> dict:
        """The walk file's metadata: the model (its name and source), space, edit and its alpha
        convention, resolution and truncation, then whatever the caller adds (method,
        training settings, loss history, command)."""
        G = self.generator
        meta = {"model": model_label(G), "source": source_record(G), "space": self.space, "edit": self.edit.name,
                "alpha_convention": self.edit.convention, "resolution": G.resolution,
                "truncation": self.truncation, "truncation_kind": G.truncation_kind}
        meta.update(extra)
        return meta

    def save(self, path, **extra) -> dict:
        from .walks import save
        meta = self.metadata(**extra)
        save(self.walk, path, meta)
        return meta

    @classmethod
    def load(cls, path, model=None, device=None, truncation=None):
        """The walk at `path` with the generator it names (or `model`, a name, path or loaded
        Generator, which overrides it),
        the space and the truncation it was learned under (or `truncation`). Returns
        (steering, meta)."""
        from .walks import load
        walk, meta = load(path)
        generator = model_for(meta, model, device, what=str(path))
        space = meta.get("space") or generator.default_space
        if space not in generator.spaces:
            raise SteerError(f"{path} walks in {space}, which {generator.name} does not have "
                             f"(it has {', '.join(generator.spaces)})")
        shape = tuple(generator.latent_shape(space))
        if tuple(walk.latent_shape) != shape:
            raise SteerError(f"{path} was learned for latents of shape {tuple(walk.latent_shape)} "
                             f"({meta.get('model')}), but {generator.name} has {shape} in {space}")
        learned = meta.get("truncation")
        steering = cls(generator, walk.to(generator.device).eval(), meta["edit"], space,
                       truncation=learned if truncation is None else truncation)
        return steering, meta
