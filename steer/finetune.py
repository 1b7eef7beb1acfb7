"""Joint fine-tuning of a generator and a walk, with the data augmented by the walk's edit.

The steerability paper trains G together with the walk: G learns to render
edit(G(z), alpha) at walk(z, alpha), and the discriminator sees real images edited by the
same edit, so zoomed or shifted images become part of the distribution G must cover. This
module is the part of that recipe the GAN trainer (steer.train.train_gan) does not have;
the trainer calls it inside its D and G steps, so fine-tuning keeps the trainer's
checkpoints, exact resume, EMA and torchrun data parallelism.

Per step, a share of the batch (`edit_share`) is "edited": those rows' fakes are walked,
G(walk(z, alpha)), and those rows' reals are edited, edit(x, alpha), with the pixels the
edit leaves undefined painted in the image's background colour. D sees both mixed into its
usual batch. G's loss is the non-saturating loss on the mixed fakes plus `walk_weight`
times the masked L2 between G(walk(z, alpha)) and edit(G(z), alpha) over the whole batch,
the target held fixed (no gradient through it), as the walk optimiser does. With
train_walk=False there is no walk: only the reals are edited, which is the "generator
trained on augmented data" arm of the paper's comparison.

Every draw (which rows, which alphas) comes from generators seeded by (seed, step,
stream) over the global batch, so a resumed or distributed run draws what a single
uninterrupted one would.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .edits import get_edit, with_training_limit
from .losses import masked_l2
from .seeding import step_seed
from .steerability import background_fill
from .steering import Steering
from .walks import make_walk

# step_seed streams, apart from the trainer's (1-9)
_ROWS_D, _ALPHA_FAKE_D, _ALPHA_REAL_D, _ROWS_G, _ALPHA_G = 21, 22, 23, 24, 25


@dataclass
class JointSettings:
    edit: str
    walk_type: str = "linear"
    train_walk: bool = True  # False: no walk; G fine-tuned on edited reals alone
    edit_share: float = 0.5  # share of each batch walked (fakes) and edited (reals)
    walk_weight: float = 1.0  # weight of the masked L2 walk loss in G's loss
    walk_lr: float | None = None  # default: the edit's walk learning rate
    ramp_start: int = 0  # step at which the share and the walk weight start to grow (after D's warm-up)
    ramp_steps: int = 0  # they reach their values linearly over this many steps; 0: at once
    alpha_max: float | None = None  # draw alphas up to this (edits.with_training_limit); None: the edit's range

    def to_dict(self):
        return asdict(self)


class JointWalk:
    def __init__(self, settings: JointSettings, latent_shape, resolution: int, seed: int = 0):
        self.settings = settings
        self.edit = get_edit(settings.edit)
        if settings.alpha_max is not None:
            self.edit = with_training_limit(self.edit, settings.alpha_max)
        self.resolution = resolution
        self.walk = (make_walk(settings.walk_type, self.edit, latent_shape, resolution, seed=seed)
                     if settings.train_walk else nn.Module())  # an empty module: nothing to train
        params = list(self.walk.parameters())
        lr = settings.walk_lr or (self.edit.lr if settings.walk_type == "linear" else self.edit.lr / 5)
        self.optimiser = torch.optim.Adam(params, lr=lr) if params else None
        self.seed, self.rows, self.device = seed, None, torch.device("cpu")

    def bind(self, seed: int, rows, device) -> None:
        """Called by the trainer: its seed, this rank's rows (start, stop, global batch), device."""
        self.seed, self.rows, self.device = seed, rows, device
        self.walk.to(device).train()

    def _ramp(self, step) -> float:
        s = self.settings
        if s.ramp_steps <= 0:
            return 1.0 if step >= s.ramp_start else 0.0
        return min(max((step - s.ramp_start) / s.ramp_steps, 0.0), 1.0)

    def _gen(self, step, stream):
        return torch.Generator().manual_seed(step_seed(self.seed, step, stream))

    def _draw(self, step, rows_stream, alpha_stream, walked: bool):
        """(which of this rank's rows are edited, their alphas), drawn over the global batch."""
        lo, hi, total = self.rows
        on = torch.rand(total, generator=self._gen(step, rows_stream)) < self.settings.edit_share * self._ramp(step)
        gen = self._gen(step, alpha_stream)
        if walked:
            alpha = self.walk.sample_alpha(self.edit, total, gen, self.resolution)
        else:
            alpha = self.edit.sample_train(total, gen, self.resolution)
        return on[lo:hi].to(self.device), alpha[lo:hi].to(self.device)

    def discriminator_batch(self, G, z, classes, fake, real, step):
        """D's fakes with the drawn rows walked, and its reals with the drawn rows edited."""
        if self.settings.train_walk:
            on, alpha = self._draw(step, _ROWS_D, _ALPHA_FAKE_D, walked=True)
            if on.any():
                with torch.no_grad():
                    steering = Steering(G, self.walk, self.edit, "z")
                    walked = steering.walked(z[on], None if classes is None else classes[on], alpha[on])
                fake = fake.clone()
                fake[on] = walked.to(fake.dtype)
        on, alpha = self._draw(step, _ROWS_D, _ALPHA_REAL_D, walked=False)
        if on.any():
            edited, mask = self.edit(real[on], alpha[on])
            real = real.clone()
            real[on] = background_fill(edited, mask, real[on])
        return fake, real

    def generator_terms(self, G, z, classes, fake, step):
        """(the fakes D judges, the weighted walk loss, {name: value} to log)."""
        if not self.settings.train_walk:
            return fake, torch.zeros((), device=fake.device), {}
        on, alpha = self._draw(step, _ROWS_G, _ALPHA_G, walked=True)
        walked, target, mask = Steering(G, self.walk, self.edit, "z").pair(z, classes, alpha, source=fake)
        walk_loss = masked_l2(walked.float(), target, mask)
        shown = torch.where(on[:, None, None, None], walked, fake)
        return shown, self.settings.walk_weight * self._ramp(step) * walk_loss, {"walk": walk_loss.detach()}

    def state_dict(self) -> dict:
        return {"walk": self.walk.state_dict(),
                "optimiser": self.optimiser.state_dict() if self.optimiser is not None else {}}

    def load_state_dict(self, state) -> None:
        self.walk.load_state_dict(state["walk"])
        if self.optimiser is not None:
            self.optimiser.load_state_dict(state["optimiser"])

    def zero_grad(self) -> None:
        if self.optimiser is not None:
            self.optimiser.zero_grad(set_to_none=True)

    def step(self) -> None:
        if self.optimiser is not None:
            self.optimiser.step()


def discriminator_for(G):
    """A fresh discriminator that fits G: its family's own where it declares one (DSS-GAN's
    official D, steer's conv D for DCGAN), steer's conv D otherwise."""
    from .generators.dcgan import DCGANDiscriminator
    from .generators.registry import family
    fam = family(G.family)
    if fam.discriminator is not None:
        return fam.discriminator(G)
    return DCGANDiscriminator(resolution=G.resolution, num_classes=max(G.num_classes, 1), base_channels=24)


def training_recipe(G, **overrides):
    """The TrainConfig of G's family (the plain GAN recipe for families without one)."""
    from .generators.registry import family
    from .train import TrainConfig
    fam = family(G.family)
    return (fam.recipe or TrainConfig)(**overrides)
