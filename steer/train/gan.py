"""A compact GAN trainer: non-saturating loss, lazy R1 on real images, EMA of G,
atomic checkpoints, resume, and a Ctrl-C that saves before it stops.

Each step draws its data, latents and augmentations from generators seeded by
(seed, step), and seeds torch's global generator for whatever randomness G uses inside
(DSS-GAN's random rotation), so a run resumed from a checkpoint continues exactly as an
uninterrupted one would.

Options beyond the defaults reproduce the official DSS-GAN recipe
(`TrainConfig.dssgan_official()`): separate learning rates, gradient-norm clipping, R1 not
scaled by its interval, an EMA decay that switches after a number of images, EMA of
floating-point buffers (batch-norm statistics), fakes with uniformly drawn classes, fresh
latents for the G step, and a differentiable flip/brightness/contrast augmentation applied
to every image D sees.

Distributed: under `torchrun --nproc_per_node=N` (RANK / WORLD_SIZE / LOCAL_RANK set) the
process group is created when needed (gloo on CPU, nccl on CUDA); `batch` is the global
batch, split evenly, and each rank takes its own rows of the global batch, latents and
augmentation draws. Weights and buffers start from rank 0's, gradients are averaged across
ranks after every backward (the StyleGAN2-ADA way, rather than DistributedDataParallel,
whose reducer supports neither the R1 `autograd.grad` double backward nor switching D's
`requires_grad` between the D and G steps), and G's buffers follow rank 0 after each step,
so every rank holds bitwise-identical G, D, G_ema and optimiser states. Only rank 0 shows
progress, writes the log and checkpoints; every rank resumes from the same checkpoint.
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checkpoint import (
    Timer, check_same_run, interrupt_between_steps, load_resumable, restore, save_checkpoint, track,
)
from ..seeding import step_seed
from ..threads import adapt

# step_seed streams; 2 is the data stream (steer.data), 1 the original latent stream
_Z, _FAKE_CLASSES, _Z_G, _CLASSES_G = 1, 3, 4, 5
_AUG_REAL, _AUG_R1, _AUG_FAKE_D, _AUG_FAKE_G = 6, 7, 8, 9
_GLOBAL_RNG = 1000  # + rank: torch's global generator, for randomness inside G


@dataclass
class TrainConfig:
    steps: int = 6000
    batch: int = 32  # global batch; split evenly across ranks when distributed
    lr: float = 2e-4  # G's learning rate, and D's unless lr_d is set
    betas: tuple = (0.5, 0.99)
    r1_gamma: float = 1.0
    r1_every: int = 16  # lazy regularisation: R1 every k steps (scaled by k unless told not to)
    ema_beta: float = 0.999
    ema_rampup: float | None = None  # StyleGAN2-ADA's ramp: the EMA spans at most this share of the images seen
    checkpoint_every: int = 250
    checkpoint_seconds: float | None = 300.0  # also checkpoint at least this often (wall time)
    seed: int = 0
    lr_d: float | None = None  # D's learning rate; None: same as lr
    clip_g: float | None = None  # max gradient norm of G; None: no clipping
    clip_d: float | None = None  # max gradient norm of D; None: no clipping
    r1_scale_by_interval: bool = True  # False: add 0.5*gamma*R1 as is (official DSS-GAN)
    ema_beta2: float | None = None  # EMA decay once ema_switch_images images have been seen
    ema_switch_images: int = 1_000_000
    ema_buffers: bool = False  # also average G's floating-point buffers (batch-norm statistics)
    fake_classes: str = "real"  # "real": fakes take the batch's classes; "uniform": drawn uniformly
    fresh_g_latents: bool = False  # the G step draws its own latents (and classes) instead of reusing D's
    augment: bool = False  # flip / brightness / contrast on every image D sees (see diff_augment)
    aug_flip: float = 0.5  # probability of flipping the whole batch horizontally
    aug_brightness: float = 0.1  # additive offset drawn from U(-b, b)
    aug_p_brightness: float = 0.5  # per-image probability of the brightness offset
    aug_contrast: float = 0.1  # factor 1 + U(-c, c) about each image's per-channel mean
    aug_p_contrast: float = 0.5  # per-image probability of the contrast change
    mode_seeking: float = 0.0  # MSGAN's weight on 1 / (image distance / latent distance); 0: off
    d_only_steps: int = 0  # the first steps train D alone (a fresh D warming up against a trained G)
    amp: bool = False  # forward passes under bfloat16 autocast (mixed precision; meant for CUDA)

    def __post_init__(self):
        if self.fake_classes not in ("real", "uniform"):
            raise ValueError(f"fake_classes must be 'real' or 'uniform', not {self.fake_classes!r}")
        self.betas = tuple(self.betas)

    @classmethod
    def dssgan_official(cls, **overrides) -> "TrainConfig":
        """The official DSS-GAN training recipe (dssgan/DSS_GAN src/config, 256 px configs):
        Adam betas (0, 0.99), lr G 9e-5 / D 3e-5, batch 96, R1 gamma 5 every 4 steps added
        as 0.5*gamma*R1, gradient-norm clips G 10 / D 15, EMA 0.999 switching to 0.9995
        after 1M images (buffers included), fake classes drawn uniformly, fresh latents for
        the G step, flip 0.5 + brightness/contrast 0.1 (each p=0.5) on reals and fakes.
        Keyword arguments override any field (e.g. steps, batch, r1_gamma=8 for 512 px)."""
        recipe = dict(batch=96, lr=9e-5, lr_d=3e-5, betas=(0.0, 0.99), r1_gamma=5.0, r1_every=4,
                      r1_scale_by_interval=False, ema_beta=0.999, ema_beta2=0.9995,
                      ema_switch_images=1_000_000, ema_buffers=True, clip_g=10.0, clip_d=15.0,
                      fake_classes="uniform", fresh_g_latents=True, augment=True, aug_flip=0.5,
                      aug_brightness=0.1, aug_p_brightness=0.5, aug_contrast=0.1, aug_p_contrast=0.5)
        return cls(**{**recipe, **overrides})


def diff_augment(images, generator: torch.Generator, flip: float = 0.5, brightness: float = 0.1,
                 contrast: float = 0.1, p_brightness: float = 0.5, p_contrast: float = 0.5, rows=None):
    """Differentiable augmentation of images in [-1, 1] (the official DSS-GAN DiffAug):

    1. with probability `flip`, the whole batch is mirrored left-right (one draw per batch);
    2. each image, with probability `p_brightness`, gets an offset from U(-brightness,
       brightness), then values are clamped to [-1, 1];
    3. each image, with probability `p_contrast`, has its deviation from its per-channel
       spatial mean scaled by 1 + U(-contrast, contrast), then clamped again.

    All random numbers come from `generator` (CPU). `rows=(start, stop, total)` draws them
    for a batch of `total` images and uses rows start:stop, so the ranks of a distributed
    run together augment their global batch exactly as one process would.
    """
    n = images.shape[0]
    start, stop, total = rows if rows is not None else (0, n, n)
    if stop - start != n:
        raise ValueError(f"rows {start}:{stop} do not match a batch of {n}")
    flip_now = torch.rand((), generator=generator).item() < flip
    b_on = torch.rand(total, generator=generator) < p_brightness
    b_delta = (torch.rand(total, generator=generator) * 2 - 1) * brightness
    c_on = torch.rand(total, generator=generator) < p_contrast
    c_factor = 1 + (torch.rand(total, generator=generator) * 2 - 1) * contrast

    def per_image(values):
        return values[start:stop].to(images.device, images.dtype).view(n, 1, 1, 1)

    x = images.flip(3) if flip_now else images
    if brightness > 0:
        x = (x + per_image(torch.where(b_on, b_delta, 0.0))).clamp(-1, 1)
    if contrast > 0:
        mean = x.mean((2, 3), keepdim=True)
        x = ((x - mean) * per_image(torch.where(c_on, c_factor, 1.0)) + mean).clamp(-1, 1)
    return x


def distributed_device() -> torch.device:
    """The device this process should train on: cuda:LOCAL_RANK when CUDA is present
    (cuda:0 outside torchrun), else the CPU. Put G and D there before calling train_gan."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _init_distributed(device: torch.device):
    """(rank, world size). Creates the process group when torchrun's variables ask for one
    and none exists yet; it then stays up for later calls (creating it a second time in
    one process is not reliable) and is destroyed at exit."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    if device.type == "cuda":
        if device.index is not None:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    atexit.register(_destroy_process_group)
    return dist.get_rank(), dist.get_world_size()


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _broadcast_from_rank0(tensors) -> None:
    """Overwrite every tensor with rank 0's values, one collective per dtype."""
    by_kind = {}
    for t in tensors:
        by_kind.setdefault((t.dtype, t.device), []).append(t)
    for group in by_kind.values():
        flat = torch.cat([t.detach().reshape(-1) for t in group])
        dist.broadcast(flat, src=0)
        offset = 0
        with torch.no_grad():
            for t in group:
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()


def _average_gradients(module, world: int) -> None:
    """Average .grad across ranks. A parameter without a gradient on some rank counts as a
    zero gradient there; one without a gradient on every rank keeps grad None."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    device = params[0].device
    has_grad = torch.tensor([float(p.grad is not None) for p in params], device=device)
    flat = torch.cat([has_grad] + [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                                   for p in params])
    dist.all_reduce(flat)
    counts, flat = flat[:len(params)].tolist(), flat[len(params):] / world
    offset = 0
    for p, count in zip(params, counts):
        if count > 0:
            grad = flat[offset:offset + p.numel()].view_as(p).to(p.dtype)
            if p.grad is None:
                p.grad = grad.clone()
            else:
                p.grad.copy_(grad)
        offset += p.numel()


def _mean_across_ranks(values: dict, world: int, device) -> dict:
    if world == 1:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / world).tolist()))


def mode_seeking_term(images_a, images_b, z_a, z_b, eps: float = 1e-5):
    """MSGAN (Mao et al. 2019): 1 / (mean |G(z_a) - G(z_b)| / mean |z_a - z_b|) for pairs that
    share a class. Minimising it pushes apart the images of different latents, which a
    collapsed generator maps to the same image."""
    ratio = (images_a - images_b).abs().mean() / (z_a - z_b).abs().mean()
    return 1 / (ratio + eps)


def train_gan(G, D, next_batch, out_dir, config: TrainConfig, progress: bool = True,
              on_checkpoint=None, joint=None, run_id: dict | None = None, restart: bool = False):
    """Train G against D. next_batch(step, n) returns (images in [-1,1], classes or None)
    for the global batch n = config.batch; G is called as G.synthesize(z, classes) with
    z of size G.latent_dim.

    joint: a steer.finetune.JointWalk, which adds its terms to both losses (walked fakes,
    edited reals, the walk loss) and trains its walk beside G; its state is checkpointed.

    Writes out_dir/checkpoint.pt (resumed from when present, unless `restart`; every
    `checkpoint_every` steps and `checkpoint_seconds` of wall time) and out_dir/log.jsonl.
    run_id: what the run is beyond its config (architecture, data, base model ...); a
    checkpoint recorded with a different run_id or config is refused: only `steps` may grow.
    Returns the EMA generator (in eval mode). Under torchrun every rank must call this with
    the same arguments; only rank 0 writes and calls on_checkpoint.
    """
    out_dir = Path(out_dir)
    ckpt_path, log_path = out_dir / "checkpoint.pt", out_dir / "log.jsonl"
    device = next(G.parameters()).device
    rank, world = _init_distributed(device)
    if config.batch % world:
        raise ValueError(f"batch {config.batch} does not split evenly across {world} processes")
    lo, hi = rank * config.batch // world, (rank + 1) * config.batch // world
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    if world > 1:
        # identical starting weights everywhere (a checkpoint, when present, then replaces them)
        _broadcast_from_rank0(list(G.state_dict().values()) + list(D.state_dict().values())
                              + (list(joint.walk.state_dict().values()) if joint is not None else []))
    G.train(), D.train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=tuple(config.betas))
    lr_d = config.lr if config.lr_d is None else config.lr_d
    opt_d = torch.optim.Adam(D.parameters(), lr=lr_d, betas=tuple(config.betas))
    start, elapsed_before = 0, 0.0
    if rank == 0:
        track(ckpt_path)
        if restart and ckpt_path.exists():
            ckpt_path.unlink()  # now, so a Ctrl-C before the first save cannot leave the old run
    if ckpt_path.exists() and not restart:
        required = {"G": dict, "D": dict, "G_ema": dict, "opt_g": dict, "opt_d": dict, "step": int}
        if joint is not None:
            required["joint"] = dict
        state = load_resumable(ckpt_path, required)
        recorded = {**(state.get("config") if isinstance(state.get("config"), dict) else {}),
                    **(state.get("run_id") if isinstance(state.get("run_id"), dict) else {})}
        check_same_run(recorded, {**asdict(config), **(run_id or {})}, ckpt_path, state["step"], config.steps)
        restore("generator", ckpt_path, lambda: (G.load_state_dict(state["G"]), G_ema.load_state_dict(state["G_ema"])))
        restore("discriminator", ckpt_path, lambda: D.load_state_dict(state["D"]))
        restore("optimiser state", ckpt_path, lambda: (opt_g.load_state_dict(state["opt_g"]),
                                                       opt_d.load_state_dict(state["opt_d"])))
        for opt, lr in ((opt_g, config.lr), (opt_d, lr_d)):  # the run's lr, compared above
            for group in opt.param_groups:
                group["lr"] = lr
        elapsed = state.get("elapsed", 0.0)
        start, elapsed_before = state["step"], float(elapsed) if isinstance(elapsed, (int, float)) else 0.0
        if joint is not None:
            restore("walk", ckpt_path, lambda: joint.load_state_dict(state["joint"]))
        if rank == 0:
            track(ckpt_path, start)
    timer = Timer(config.checkpoint_seconds)
    t0 = time.time()  # wall time accumulates across resumes, for the model card
    num_classes = getattr(G, "num_classes", 0) or 0
    g_buffers = list(G.buffers())

    def save(step):
        save_checkpoint({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                         "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "step": step,
                         "config": asdict(config), "run_id": run_id, "elapsed": elapsed_before + time.time() - t0,
                         **({"joint": joint.state_dict()} if joint is not None else {})},
                        ckpt_path)
        if on_checkpoint is not None:
            on_checkpoint(G_ema, step)

    def rng(step, stream):
        return torch.Generator().manual_seed(step_seed(config.seed, step, stream))

    def latents(step, stream):  # this rank's rows of the global batch's latents
        z = torch.randn(config.batch, G.latent_dim, generator=rng(step, stream))
        return z[lo:hi].to(device)

    def random_classes(step, stream):
        c = torch.randint(0, num_classes, (config.batch,), generator=rng(step, stream))
        return c[lo:hi].to(device)

    def augment(images, step, stream):
        if not config.augment:
            return images
        return diff_augment(images, rng(step, stream), flip=config.aug_flip, brightness=config.aug_brightness,
                            contrast=config.aug_contrast, p_brightness=config.aug_p_brightness,
                            p_contrast=config.aug_p_contrast, rows=(lo, hi, config.batch))

    def step_done(model, clip):
        if world > 1:
            _average_gradients(model, world)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if config.amp else contextlib.nullcontext()

    if joint is not None:
        joint.bind(config.seed, (lo, hi, config.batch), device)
    r1_weight = 0.5 * config.r1_gamma * (config.r1_every if config.r1_scale_by_interval else 1)
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps,
               disable=not (progress and rank == 0), desc="train", dynamic_ncols=True)
    log_file = open(log_path, "w" if start == 0 else "a") if rank == 0 else contextlib.nullcontext()
    with interrupt_between_steps() as interrupt, log_file as log:
        for step in bar:
            adapt(step)  # the thread team follows the cores free (steer.threads)
            torch.manual_seed(step_seed(config.seed, step, _GLOBAL_RNG + rank))  # randomness inside G
            real, classes = next_batch(step, config.batch)
            real = real[lo:hi].to(device)
            classes = classes[lo:hi].to(device) if classes is not None else None
            z = latents(step, _Z)
            fake_classes = classes
            if config.fake_classes == "uniform" and classes is not None and num_classes:
                fake_classes = random_classes(step, _FAKE_CLASSES)

            # discriminator: real up, fake down
            with autocast():
                with torch.no_grad():
                    fake = G.synthesize(z, fake_classes)
                if joint is not None:  # some fakes walked, the same share of reals edited
                    fake, real = joint.discriminator_batch(G, z, fake_classes, fake, real, step)
                loss_d = (F.softplus(D(augment(fake, step, _AUG_FAKE_D), fake_classes)).float().mean()
                          + F.softplus(-D(augment(real, step, _AUG_REAL), classes)).float().mean())
            r1 = torch.zeros((), device=device)
            if config.r1_gamma > 0 and step % config.r1_every == 0:
                real_r1 = augment(real, step, _AUG_R1).detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(D(real_r1, classes).sum(), real_r1, create_graph=True)
                r1 = grad.square().sum((1, 2, 3)).mean()
                loss_d = loss_d + r1_weight * r1
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            step_done(D, config.clip_d)
            opt_d.step()

            joint_terms = {}
            loss_g = mode_seeking = torch.zeros((), device=device)
            if step >= config.d_only_steps:  # before: a fresh D warms up; G, its EMA and the walk wait
                # generator: non-saturating loss
                z_g, classes_g = z, fake_classes
                if config.fresh_g_latents:
                    z_g = latents(step, _Z_G)
                    if config.fake_classes == "uniform" and classes is not None and num_classes:
                        classes_g = random_classes(step, _CLASSES_G)
                D.requires_grad_(False)
                half = len(z_g) // 2
                if config.mode_seeking > 0 and half and classes_g is not None:
                    # pairs (i, i + half) share a class, so only their latents differ
                    classes_g = torch.cat([classes_g[:half], classes_g[:half], classes_g[2 * half:]])
                with autocast():
                    fake_g = G.synthesize(z_g, classes_g)
                    shown = fake_g
                    if joint is not None:  # the walk's rows: walked fakes, and the walk loss against the edit
                        shown, walk_loss, joint_terms = joint.generator_terms(G, z_g, classes_g, fake_g, step)
                    loss_g = F.softplus(-D(augment(shown, step, _AUG_FAKE_G), classes_g)).float().mean()
                    if joint is not None:
                        loss_g = loss_g + walk_loss
                if config.mode_seeking > 0 and half:
                    mode_seeking = mode_seeking_term(fake_g[:half].float(), fake_g[half:2 * half].float(),
                                                     z_g[:half], z_g[half:2 * half])
                    loss_g = loss_g + config.mode_seeking * mode_seeking
                opt_g.zero_grad(set_to_none=True)
                if joint is not None:
                    joint.zero_grad()
                loss_g.backward()
                step_done(G, config.clip_g)
                opt_g.step()
                if joint is not None:
                    step_done(joint.walk, None)
                    joint.step()
                D.requires_grad_(True)

                if world > 1 and g_buffers:
                    _broadcast_from_rank0(g_buffers)  # batch-norm statistics follow rank 0
                beta = config.ema_beta
                if config.ema_beta2 is not None and (step + 1) * config.batch >= config.ema_switch_images:
                    beta = config.ema_beta2
                if config.ema_rampup is not None:  # short runs: do not average in the untrained start
                    beta = min(beta, 0.5 ** (1 / max((step + 1) * config.ema_rampup, 1e-8)))
                with torch.no_grad():
                    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                        p_ema.lerp_(p, 1 - beta)
                    if config.ema_buffers:
                        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                            if b.dtype.is_floating_point:
                                b_ema.lerp_(b, 1 - beta)

            if step % 10 == 0:
                logged = {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "r1": r1.item(),
                          **{k: v.item() for k, v in joint_terms.items()}}
                if config.mode_seeking > 0:
                    logged["mode_seeking"] = mode_seeking.item()
                values = _mean_across_ranks(logged, world, device)
                if rank == 0:
                    bar.set_postfix(d=f"{values['loss_d']:.3f}", g=f"{values['loss_g']:.3f}",
                                    **{k: f"{values[k]:.3f}" for k in joint_terms})
                    log.write(json.dumps({"step": step, **values}) + "\n")
            stop = interrupt["stop"]
            if world > 1:  # stop together, at the same step
                flag = torch.tensor([float(stop)], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop = bool(flag.item())
            due = rank == 0 and timer.due()  # only rank 0 writes, so only its clock counts
            if stop or due or (step + 1) % config.checkpoint_every == 0:
                if rank == 0:
                    log.flush()
                    save(step + 1)
            if stop:
                raise KeyboardInterrupt
    if start < config.steps and rank == 0:
        save(config.steps)
    if world > 1:
        dist.barrier()  # the final checkpoint is on disk before any rank returns
    G_ema.train_seconds = elapsed_before + time.time() - t0
    return G_ema
