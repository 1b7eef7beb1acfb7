"""Joint G + walk fine-tuning (steer.finetune through the GAN trainer) and `steer finetune`."""
import textwrap

import pytest
import torch

from steer.data.shapes import shapes_batches
from steer.edits import get_edit
from steer.finetune import JointSettings, JointWalk
from steer.generators.dcgan import DCGANDiscriminator, DCGANGenerator
from steer.losses import masked_l2
from steer.steerability import background_fill
from steer.train import TrainConfig, train_gan
from tests.conftest import run_steer


def small_pair(seed=0):
    torch.manual_seed(seed)
    return (DCGANGenerator(resolution=16, latent_dim=8, num_classes=4, embed_dim=4, base_channels=8),
            DCGANDiscriminator(resolution=16, num_classes=4, base_channels=8))


def joint_for(G, **settings):
    return JointWalk(JointSettings(edit="zoom", **settings), (G.latent_dim,), G.resolution, seed=0)


def fixed_walk_loss(G, joint, n=32):
    """The walk loss on one fixed batch (fixed latents, classes and alphas)."""
    gen = torch.Generator().manual_seed(123)
    z = torch.randn(n, G.latent_dim, generator=gen)
    c = torch.arange(n) % 4
    alpha = joint.edit.sample_train(n, gen, G.resolution)
    with torch.no_grad():
        target, mask = joint.edit(G.synthesize(z, c), alpha)
        walked = G.synthesize(joint.walk.apply(z, alpha, joint.edit, G.resolution), c)
        return masked_l2(walked, target, mask).item()


def test_joint_steps_reduce_the_walk_loss_and_keep_g_sound(tmp_path):
    """From the bundled generator and a fresh D warmed up for ten steps, ten joint steps cut the
    walk loss on a fixed batch, while G keeps making varied images that D scores with a finite
    loss. (Without the warm-up the fresh D's first gradients cost G a third of its variety.)"""
    from steer import load_generator
    from steer.finetune import discriminator_for

    G = load_generator("dcgan-shapes32", device="cpu")
    torch.manual_seed(0)
    D = discriminator_for(G)
    joint = joint_for(G)
    before = fixed_walk_loss(G, joint)
    z, c = G.sample(32, seed=1)
    with torch.no_grad():
        spread_before = G(z, c).std(0).mean()
    config = TrainConfig(steps=20, batch=8, d_only_steps=10, checkpoint_every=100)
    train_gan(G.train().requires_grad_(True), D, shapes_batches(resolution=32), tmp_path / "run", config,
              progress=False, joint=joint)
    G.eval()
    after = fixed_walk_loss(G, joint)
    assert after < 0.6 * before, (before, after)
    with torch.no_grad():
        images = G(z, c)
        plain_loss = torch.nn.functional.softplus(-D(images, c)).mean()
    assert torch.isfinite(plain_loss)
    assert images.std(0).mean() > 0.7 * spread_before  # not collapsed onto one image
    logged = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert '"walk"' in logged[-1] and '"walk"' not in logged[0]  # step 0: D alone


def test_walk_vector_is_trained_by_the_joint_run(tmp_path):
    G, D = small_pair()
    joint = joint_for(G)
    start = {k: v.clone() for k, v in joint.walk.state_dict().items()}
    train_gan(G, D, shapes_batches(resolution=16), tmp_path / "run", TrainConfig(steps=3, batch=8), progress=False,
              joint=joint)
    assert any(not torch.equal(start[k], v) for k, v in joint.walk.state_dict().items())


def test_joint_run_resumes_exactly(tmp_path):
    config = TrainConfig(steps=6, batch=8, checkpoint_every=3, r1_every=2)

    def run(directory, steps):
        G, D = small_pair()
        joint = joint_for(G)
        G_ema = train_gan(G, D, shapes_batches(resolution=16), tmp_path / directory,
                          TrainConfig(**{**vars(config), "steps": steps}), progress=False, joint=joint)
        return G_ema, D, joint

    full = run("full", 6)
    run("part", 3)
    resumed = run("part", 6)
    for a, b in zip(full[0].state_dict().values(), resumed[0].state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(full[1].state_dict().values(), resumed[1].state_dict().values()):
        assert torch.equal(a, b)
    for k, v in full[2].walk.state_dict().items():
        assert torch.equal(v, resumed[2].walk.state_dict()[k])


def test_discriminator_warm_up_leaves_g_and_the_walk_alone(tmp_path):
    G, D = small_pair()
    joint = joint_for(G)
    g0 = {k: v.clone() for k, v in G.state_dict().items()}
    d0 = {k: v.clone() for k, v in D.state_dict().items()}
    w0 = {k: v.clone() for k, v in joint.walk.state_dict().items()}
    train_gan(G, D, shapes_batches(resolution=16), tmp_path / "run",
              TrainConfig(steps=3, batch=8, d_only_steps=3), progress=False, joint=joint)
    assert all(torch.equal(g0[k], v) for k, v in G.state_dict().items())
    assert all(torch.equal(w0[k], v) for k, v in joint.walk.state_dict().items())
    assert any(not torch.equal(d0[k], v) for k, v in D.state_dict().items())


def test_discriminator_batch_edits_the_drawn_share_of_reals_and_walks_the_same_share_of_fakes():
    G, _ = small_pair()
    G.eval()
    joint = joint_for(G, edit_share=0.5)
    joint.bind(0, (0, 64, 64), torch.device("cpu"))
    real, _ = shapes_batches(resolution=16)(0, 64)
    z, c = torch.randn(64, G.latent_dim), torch.arange(64) % 4
    with torch.no_grad():
        fake = G.synthesize(z, c)
    new_fake, new_real = joint.discriminator_batch(G, z, c, fake, real, step=5)
    real_changed = (new_real != real).flatten(1).any(1)
    fake_changed = (new_fake != fake).flatten(1).any(1)
    assert 16 < real_changed.sum() < 48 and 16 < fake_changed.sum() < 48  # about half of 64
    # the edited rows are exactly the zoom edit with the background painted in
    on, alpha = joint._draw(5, 21, 23, walked=False)
    edited, mask = get_edit("zoom")(real[on], alpha[on])
    assert torch.allclose(new_real[on], background_fill(edited, mask, real[on]))
    assert torch.equal(new_real[~on], real[~on])
    # no walk (augmentation alone): the fakes are left as they are, reals still edited
    plain = joint_for(G, train_walk=False)
    plain.bind(0, (0, 64, 64), torch.device("cpu"))
    f2, r2 = plain.discriminator_batch(G, z, c, fake, real, step=5)
    assert torch.equal(f2, fake) and not torch.equal(r2, real)
    assert list(plain.walk.parameters()) == []


def test_mixed_precision_step_runs_on_cpu(tmp_path):
    G, D = small_pair()
    joint = joint_for(G)
    train_gan(G, D, shapes_batches(resolution=16), tmp_path / "run", TrainConfig(steps=2, batch=8, amp=True),
              progress=False, joint=joint)
    assert all(torch.isfinite(p).all() for p in G.parameters())
    assert '"walk"' in (tmp_path / "run" / "log.jsonl").read_text()


@pytest.mark.slow
def test_finetune_command_writes_model_and_walk_and_refuses_bad_input(tmp_path, tiny_model_dir):
    import json

    from steer import load_generator
    from steer.walks import load
    # the tiny model's classes are not the shapes classes: it needs --data with its own images
    result = run_steer("finetune", "--model", str(tiny_model_dir), "--edit", "zoom", "--out", str(tmp_path / "x"),
                       "--steps", "2")
    assert result.returncode == 2 and "shapes data" in result.stderr and "Traceback" not in result.stderr

    train = tmp_path / "base"
    assert run_steer("train", "--out", str(train), "--resolution", "16", "--steps", "2", "--batch", "4",
                     "--base-channels", "8").returncode == 0
    out = tmp_path / "joint"
    result = run_steer("finetune", "--model", str(train / "model"), "--edit", "zoom", "--out", str(out),
                       "--steps", "4", "--batch", "4", "--discriminator", str(train / "checkpoint.pt"))
    assert result.returncode == 0, result.stderr
    G = load_generator(str(out / "model"), device="cpu")
    assert G.resolution == 16
    walk, meta = load(out / "walk.safetensors")
    assert meta["method"] == "joint" and meta["edit"] == "zoom" and meta["joint"]["walk_weight"] == 1.0
    assert (out / "strip.png").is_file()
    assert json.loads((out / "model" / "config.json").read_text())["shapes_config"]["scale"] == [0.12, 0.32]

    for args, words in ((["--discriminator", str(tmp_path / "none.pt")], "not a `steer train` checkpoint"),
                        (["--warmup-steps", "9"], "leaves no step"),
                        (["--edit", "spin"], "edit")):
        result = run_steer("finetune", "--model", str(train / "model"), "--edit", "zoom", "--out",
                           str(tmp_path / "bad"), "--steps", "4", *args)
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr, result.stderr


DDP_SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import torch
    from steer.data.shapes import shapes_batches
    from steer.finetune import JointSettings, JointWalk
    from steer.generators.dcgan import DCGANDiscriminator, DCGANGenerator
    from steer.train import TrainConfig, train_gan

    out, rank = Path(sys.argv[1]), int(os.environ["RANK"])
    torch.manual_seed(100 + rank)  # different on each rank: train_gan starts all from rank 0's
    G = DCGANGenerator(resolution=16, latent_dim=8, num_classes=4, embed_dim=4, base_channels=8)
    D = DCGANDiscriminator(resolution=16, num_classes=4, base_channels=8)
    joint = JointWalk(JointSettings(edit="zoom"), (8,), 16, seed=rank)
    G_ema = train_gan(G, D, shapes_batches(resolution=16), out / "run", TrainConfig(steps=3, batch=8, r1_every=2),
                      progress=False, joint=joint)
    torch.save({"G": G.state_dict(), "D": D.state_dict(), "walk": joint.walk.state_dict()}, out / f"rank{rank}.pt")
""")


def test_two_process_joint_finetuning_stays_identical(tmp_path):
    from tests.test_train_ddp import run_two_processes
    run_two_processes(DDP_SCRIPT, tmp_path)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for part in ("G", "D", "walk"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    # the walks started from different seeds on each rank: rank 0's was broadcast, then trained
    start = JointWalk(JointSettings(edit="zoom"), (8,), 16, seed=0).walk.state_dict()
    assert any(not torch.equal(start[k], v) for k, v in a["walk"].items())


def test_mode_seeking_term_in_joint_fine_tuning(tmp_path):
    """MSGAN's term works beside the walk: both are logged, and the run differs from one without it."""
    import json

    def run(directory, weight):
        G, D = small_pair()
        joint = joint_for(G)
        train_gan(G, D, shapes_batches(resolution=16), tmp_path / directory,
                  TrainConfig(steps=2, batch=8, mode_seeking=weight), progress=False, joint=joint)
        return G, json.loads((tmp_path / directory / "log.jsonl").read_text().splitlines()[0])

    G_ms, logged = run("ms", 1.0)
    assert logged["mode_seeking"] > 0 and "walk" in logged
    G_plain, _ = run("plain", 0.0)
    assert any(not torch.equal(a, b) for a, b in zip(G_ms.parameters(), G_plain.parameters()))
