"""A compact GAN trainer: non-saturating loss, lazy R1 on real images, EMA of G,
atomic checkpoints, resume, and a Ctrl-C that saves before it stops.

Each step draws its data and latents from generators seeded by (seed, step), so a run
resumed from a checkpoint continues exactly as an uninterrupted one would.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checkpoint import interrupt_between_steps, load_checkpoint, save_checkpoint
from ..seeding import step_seed


@dataclass
class TrainConfig:
    steps: int = 6000
    batch: int = 32
    lr: float = 2e-4
    betas: tuple = (0.5, 0.99)
    r1_gamma: float = 1.0
    r1_every: int = 16  # lazy regularisation: R1 every k steps, scaled by k
    ema_beta: float = 0.999
    checkpoint_every: int = 250
    seed: int = 0


def train_gan(G, D, next_batch, out_dir, config: TrainConfig, progress: bool = True,
              on_checkpoint=None):
    """Train G against D. next_batch(step, n) returns (images in [-1,1], classes or None).

    Writes out_dir/checkpoint.pt (resumed from when present) and out_dir/log.jsonl.
    Returns the EMA generator.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = out_dir / "checkpoint.pt", out_dir / "log.jsonl"
    device = next(G.parameters()).device
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=tuple(config.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=tuple(config.betas))
    start, elapsed_before = 0, 0.0
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        G.load_state_dict(state["G"]), D.load_state_dict(state["D"]), G_ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_g"]), opt_d.load_state_dict(state["opt_d"])
        start, elapsed_before = state["step"], state.get("elapsed", 0.0)
    t0 = time.time()  # wall time accumulates across resumes, for the model card

    def save(step):
        save_checkpoint({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                         "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "step": step,
                         "config": asdict(config), "elapsed": elapsed_before + time.time() - t0},
                        ckpt_path)
        if on_checkpoint is not None:
            on_checkpoint(G_ema, step)

    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress,
               desc="train", dynamic_ncols=True)
    with interrupt_between_steps() as interrupt, open(log_path, "a") as log:
        for step in bar:
            real, classes = next_batch(step, config.batch)
            real = real.to(device)
            classes = classes.to(device) if classes is not None else None
            gen = torch.Generator().manual_seed(step_seed(config.seed, step, 1))
            z = torch.randn(config.batch, G.latent_dim, generator=gen).to(device)

            # discriminator: real up, fake down
            with torch.no_grad():
                fake = G.synthesize(z, classes)
            loss_d = F.softplus(D(fake, classes)).mean() + F.softplus(-D(real, classes)).mean()
            r1 = torch.zeros((), device=device)
            if config.r1_gamma > 0 and step % config.r1_every == 0:
                real_r1 = real.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(D(real_r1, classes).sum(), real_r1, create_graph=True)
                r1 = grad.square().sum((1, 2, 3)).mean()
                loss_d = loss_d + 0.5 * config.r1_gamma * config.r1_every * r1
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            # generator: non-saturating loss
            D.requires_grad_(False)
            loss_g = F.softplus(-D(G.synthesize(z, classes), classes)).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            D.requires_grad_(True)

            with torch.no_grad():
                for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                    p_ema.lerp_(p, 1 - config.ema_beta)

            if step % 10 == 0:
                bar.set_postfix(d=f"{loss_d.item():.3f}", g=f"{loss_g.item():.3f}")
                log.write(json.dumps({"step": step, "loss_d": loss_d.item(), "loss_g": loss_g.item(),
                                      "r1": r1.item()}) + "\n")
            if interrupt["stop"] or (step + 1) % config.checkpoint_every == 0:
                log.flush()
                save(step + 1)
            if interrupt["stop"]:
                raise KeyboardInterrupt
    if start < config.steps:
        save(config.steps)
    G_ema.train_seconds = elapsed_before + time.time() - t0
    return G_ema
