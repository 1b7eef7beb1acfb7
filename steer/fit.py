"""The walk optimiser: the generator is frozen, the target edit(G(z), alpha) is built
without gradient, and Adam moves only the walk.

Every step draws its latents and alphas from a generator seeded by (seed, step), so a fit
resumed from its checkpoint ends exactly where an uninterrupted one would.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import interrupt_between_steps, load_checkpoint, save_checkpoint
from .edits import Edit
from .errors import SteerError
from .losses import masked_l2
from .seeding import step_seed


@dataclass
class FitConfig:
    steps: int = 800
    batch: int = 16
    lr: float = 1e-3
    seed: int = 0
    loss: str = "l2"  # or "lpips"
    space: str | None = None
    truncation: float | None = None
    checkpoint_every: int = 100
    classes: list | None = None  # train on these classes only (cycled over the batch); None: all


def batch_classes(config: FitConfig, n: int):
    """The classes of one batch: None (the generator draws them) or config.classes cycled."""
    if not config.classes:
        return None
    return torch.tensor(config.classes, dtype=torch.int64).repeat(n // len(config.classes) + 1)[:n]


@dataclass
class FitResult:
    history: list = field(default_factory=list)
    steps_done: int = 0
    resumed_from: int = 0


def fit_walk(generator, walk, edit: Edit, config: FitConfig, checkpoint=None, lpips=None,
             progress: bool = True, callback=None, run_id: dict | None = None) -> FitResult:
    """Optimise `walk` so that G(walk(latent, alpha)) matches edit(G(latent), alpha).

    checkpoint: a path; resumed from when it exists, written every `checkpoint_every`
    steps and when interrupted (Ctrl-C). lpips: a MaskedLPIPS module when loss is "lpips".
    callback(step, loss) runs after each step. run_id: what this fit is (model, edit, walk
    type ...); a checkpoint written for a different run_id is refused, not resumed.
    """
    space = config.space or generator.default_space
    generator.eval().requires_grad_(False)
    device = generator.device
    walk.to(device).train()
    optimiser = torch.optim.Adam(walk.parameters(), lr=config.lr)
    result = FitResult()
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        if run_id is not None and state.get("run_id", run_id) != run_id:
            raise SteerError(f"{checkpoint} belongs to another walk ({state['run_id']}); "
                             "choose another --out or delete that checkpoint")
        walk.load_state_dict(state["walk"])
        optimiser.load_state_dict(state["optimiser"])
        result.history = list(state["history"])
        result.resumed_from = result.steps_done = state["step"]

    def save():
        if checkpoint is not None:
            save_checkpoint({"walk": walk.state_dict(), "optimiser": optimiser.state_dict(),
                             "step": result.steps_done, "history": result.history,
                             "config": asdict(config), "run_id": run_id}, checkpoint)

    if config.loss == "lpips" and lpips is None:
        raise ValueError("loss 'lpips' needs an lpips module")
    loss_fn = masked_l2 if config.loss == "l2" else lpips.to(device)
    bar = tqdm(range(result.steps_done, config.steps), initial=result.steps_done, total=config.steps,
               disable=not progress, desc=f"walk {edit.name}", dynamic_ncols=True)
    with interrupt_between_steps() as interrupt:
        for step in bar:
            seed = step_seed(config.seed, step)
            z, classes = generator.sample(config.batch, seed=seed, truncation=config.truncation,
                                          classes=batch_classes(config, config.batch))
            alpha = walk.sample_alpha(edit, config.batch, torch.Generator().manual_seed(seed + 1), generator.resolution)
            with torch.no_grad():
                latent = generator.to_space(z, classes, space)
                target, mask = edit(generator.synthesize(latent, classes, space), alpha.to(device))
            moved = walk.apply(latent, alpha, edit, generator.resolution)
            loss = loss_fn(generator.synthesize(moved, classes, space), target, mask)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            value = loss.item()
            result.history.append(value)
            result.steps_done = step + 1
            if step % 10 == 0:
                bar.set_postfix(loss=f"{sum(result.history[-50:]) / len(result.history[-50:]):.4f}")
            if callback is not None:
                callback(step, value)
            if interrupt["stop"]:
                save()
                raise KeyboardInterrupt
            if result.steps_done % config.checkpoint_every == 0:
                save()
    save()
    walk.eval()
    return result


@torch.no_grad()
def evaluate_walk(generator, walk, edit: Edit, config: FitConfig, batches: int = 4, seed_offset: int = 10**6,
                  alpha=None) -> float:
    """Mean masked L2 between G(walk(z, alpha)) and edit(G(z), alpha) on held-out batches
    (alpha drawn as in training unless given)."""
    space = config.space or generator.default_space
    total = 0.0
    for b in range(batches):
        seed = step_seed(config.seed + seed_offset, b)
        z, classes = generator.sample(config.batch, seed=seed, truncation=config.truncation,
                                      classes=batch_classes(config, config.batch))
        a = walk.sample_alpha(edit, config.batch, torch.Generator().manual_seed(seed + 1), generator.resolution) \
            if alpha is None else alpha
        latent = generator.to_space(z, classes, space)
        target, mask = edit(generator.synthesize(latent, classes, space), torch.as_tensor(a).to(generator.device))
        moved = walk.apply(latent, a, edit, generator.resolution)
        total += masked_l2(generator.synthesize(moved, classes, space), target, mask).item()
    return total / batches
