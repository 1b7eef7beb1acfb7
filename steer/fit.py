"""The walk optimiser: the generator is frozen, the target edit(G(z), alpha) is built
without gradient, and Adam moves only the walk.

Every step draws its latents and alphas from a generator seeded by (seed, step), so a fit
resumed from its checkpoint ends exactly where an uninterrupted one would.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import (
    Timer, check_same_run, interrupt_between_steps, load_resumable, restore, save_checkpoint, track,
)
from .edits import Edit
from .errors import SteerError
from .losses import masked_l2
from .steering import Steering
from .threads import adapt


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
    checkpoint_seconds: float | None = 300.0  # also checkpoint at least this often (wall time)
    classes: list | None = None  # train on these classes only (cycled over the batch); None: all
    schedule: str = "constant"  # or "cosine": lr * (1 + cos(pi * step / steps)) / 2, down to 0 at the last step
    patience: int | None = None  # stop after this many validations without improvement (None: never)
    validate_every: int = 50  # steps between validations when stopping early
    min_improvement: float = 0.01  # a validation must beat the best by this share to count as better


@dataclass
class FitResult:
    history: list = field(default_factory=list)
    steps_done: int = 0
    resumed_from: int = 0
    validation: list = field(default_factory=list)  # (step, validation loss) when stopping early
    best_step: int | None = None  # the step whose walk was kept, when stopping early
    stopped_early: bool = False


VALIDATION_OFFSET = 2 * 10**6  # validation batches: apart from training (0..) and held-out (10**6..) seeds
SCHEDULES = ("constant", "cosine")


def learning_rate(config: FitConfig, step: int) -> float:
    """The lr of `step`, a function of the step alone (so a resumed fit follows the same schedule)."""
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * step / max(1, config.steps)))
    return config.lr


def steering_for(generator, walk, edit: Edit, config: FitConfig) -> Steering:
    """The Steering a fit trains: its space, truncation and classes come from the config."""
    return Steering(generator, walk, edit, config.space, truncation=config.truncation, classes=config.classes)


def fit_walk(generator, walk, edit: Edit, config: FitConfig, checkpoint=None, lpips=None,
             progress: bool = True, callback=None, run_id: dict | None = None, restart: bool = False) -> FitResult:
    """Optimise `walk` so that G(walk(latent, alpha)) matches edit(G(latent), alpha).

    checkpoint: a path; resumed from when it exists (unless `restart`), written every
    `checkpoint_every` steps, every `checkpoint_seconds` of wall time and when interrupted
    (Ctrl-C). lpips: a MaskedLPIPS module when loss is "lpips". callback(step, loss) runs
    after each step. run_id: what this fit is beyond its config (model and its sha256, edit,
    walk type ...); a checkpoint written with a different run_id or config (seed, batch, lr,
    loss, space, truncation, classes) is refused, not resumed: only `steps` may grow.
    """
    generator.eval().requires_grad_(False)
    device = generator.device
    walk.to(device).train()
    steering = steering_for(generator, walk, edit, config)
    optimiser = torch.optim.Adam(walk.parameters(), lr=config.lr)
    result = FitResult()
    best_state = None  # early stopping: {"step", "walk"} of the best validation so far
    settings = {**asdict(config), **(run_id or {})}
    if checkpoint is not None:
        track(checkpoint)
        if restart and Path(checkpoint).exists():
            Path(checkpoint).unlink()  # now, so a Ctrl-C before the first save cannot leave the old run
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_resumable(checkpoint, {"walk": dict, "optimiser": dict, "step": int, "history": list})
        recorded = {**(state.get("config") if isinstance(state.get("config"), dict) else {}),
                    **(state.get("run_id") if isinstance(state.get("run_id"), dict) else {})}
        check_same_run(recorded, settings, checkpoint, state["step"], config.steps)
        if len(state["history"]) != state["step"] or not all(isinstance(v, float) for v in state["history"]):
            raise SteerError(f"{checkpoint}: its loss history does not match its step {state['step']}: choose a "
                             "fresh --out, or pass --restart to start over")
        restore("walk", checkpoint, lambda: walk.load_state_dict(state["walk"]))
        restore("optimiser state", checkpoint, lambda: optimiser.load_state_dict(state["optimiser"]))
        for group in optimiser.param_groups:  # the checkpoint's lr is the run's lr: they were compared above
            group["lr"] = config.lr
        result.history = list(state["history"])
        # early stopping's record (checkpoints from before it have none)
        validation, best_state = state.get("validation") or [], state.get("best")
        if not (isinstance(validation, list) and all(isinstance(v, (list, tuple)) and len(v) == 2 for v in validation)
                and (best_state is None or (isinstance(best_state, dict) and isinstance(best_state.get("walk"), dict)
                                            and isinstance(best_state.get("step"), int)))):
            raise SteerError(f"{checkpoint}: its early-stopping record is malformed: choose a fresh --out, or pass "
                             "--restart to start over")
        result.validation = [tuple(v) for v in validation]
        result.resumed_from = result.steps_done = state["step"]
        track(checkpoint, result.steps_done)
    timer = Timer(config.checkpoint_seconds)
    if config.schedule not in SCHEDULES:
        raise SteerError(f"unknown lr schedule {config.schedule!r}: choose {' or '.join(SCHEDULES)}")

    def save():
        if checkpoint is not None:
            save_checkpoint({"walk": walk.state_dict(), "optimiser": optimiser.state_dict(),
                             "step": result.steps_done, "history": result.history,
                             "validation": [list(v) for v in result.validation], "best": best_state,
                             "config": asdict(config), "run_id": run_id}, checkpoint)

    def validate():
        """Early stopping: the validation loss now; True when it has not improved for `patience` looks."""
        nonlocal best_state
        walk.eval()
        value = steering.held_out_error(batch=config.batch, batches=2, seed=config.seed,
                                        seed_offset=VALIDATION_OFFSET)
        walk.train()
        best = min((v for _, v in result.validation), default=math.inf)
        result.validation.append((result.steps_done, value))
        if value < best * (1 - config.min_improvement):
            best_state = {"step": result.steps_done, "walk": copy.deepcopy(walk.state_dict())}
        if best_state is None:  # no finite validation yet (a diverged walk): keep going
            return False
        return result.steps_done - best_state["step"] >= config.patience * config.validate_every

    if config.loss == "lpips" and lpips is None:
        raise ValueError("loss 'lpips' needs an lpips module")
    loss_fn = masked_l2 if config.loss == "l2" else lpips.to(device)
    if config.patience and best_state is not None and \
            result.steps_done - best_state["step"] >= config.patience * config.validate_every:
        result.stopped_early = True  # a resumed run that had already stopped
    last = result.steps_done if result.stopped_early else config.steps
    bar = tqdm(range(result.steps_done, last), initial=result.steps_done, total=config.steps,
               disable=not progress, desc=f"walk {edit.name}", dynamic_ncols=True)
    with interrupt_between_steps() as interrupt:
        for step in bar:
            adapt(step)  # the thread team follows the cores free (steer.threads)
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(config, step)
            latent, classes, alpha = steering.training_batch(step, config.batch, config.seed)
            loss = steering.loss(latent, classes, alpha, loss_fn)
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
            if config.patience and result.steps_done % config.validate_every == 0 and validate():
                result.stopped_early = True
                break
            if result.steps_done % config.checkpoint_every == 0 or timer.due():
                save()
    save()
    if config.patience and best_state is not None:
        walk.load_state_dict(best_state["walk"])  # the walk at its best validation, not its last step
        result.best_step = best_state["step"]
    walk.eval()
    return result


@torch.no_grad()
def evaluate_walk(generator, walk, edit: Edit, config: FitConfig, batches: int = 4, seed_offset: int = 10**6,
                  alpha=None) -> float:
    """Mean masked L2 between G(walk(z, alpha)) and edit(G(z), alpha) on held-out batches
    (alpha drawn as in training unless given)."""
    return steering_for(generator, walk, edit, config).held_out_error(
        batch=config.batch, batches=batches, seed=config.seed, seed_offset=seed_offset, alpha=alpha)
