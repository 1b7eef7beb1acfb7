"""train_gan under torchrun: two CPU processes (gloo) must end with bitwise-identical weights,
resume exactly, and match one process training on the same global batch."""
import json
import subprocess
import sys
import textwrap

import torch

from steer.data.shapes import shapes_batches
from steer.generators.dcgan import DCGANGenerator
from steer.generators.dssgan.discriminator import DSSGANDiscriminator
from steer.train import TrainConfig, train_gan

from tests.conftest import subprocess_env

SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import torch
    from steer.data.shapes import shapes_batches
    from steer.generators.dcgan import DCGANGenerator
    from steer.generators.dssgan.discriminator import DSSGANDiscriminator
    from steer.train import TrainConfig, train_gan

    out, rank = Path(sys.argv[1]), int(os.environ["RANK"])

    def models(seed):
        torch.manual_seed(seed)
        return (DCGANGenerator(resolution=16, latent_dim=8, num_classes=4, embed_dim=4, base_channels=8),
                DSSGANDiscriminator(resolution=16, num_classes=4, base_channels=8, max_channels=16,
                                    mbstd_group_size=1))

    def train(steps, directory):
        G, D = models(100 + rank)  # different on each rank: train_gan starts all from rank 0's
        config = TrainConfig.dssgan_official(steps=steps, batch=8, checkpoint_every=2, r1_every=2)
        G_ema = train_gan(G, D, shapes_batches(resolution=16), out / directory, config, progress=False)
        return {"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict()}

    torch.save(train(3, "full"), out / f"rank{rank}.pt")
    train(2, "part")
    torch.save(train(3, "part"), out / f"resumed{rank}.pt")
""")


def run_two_processes(script_text: str, tmp_path):
    """Run a script under torchrun with two CPU processes (gloo), its first argument tmp_path."""
    script = tmp_path / "ddp_script.py"
    script.write_text(script_text)
    env = subprocess_env()
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                             str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_process_training_stays_identical_and_resumes(tmp_path):
    run_two_processes(SCRIPT, tmp_path)

    states = {name: torch.load(tmp_path / f"{name}.pt", weights_only=True)
              for name in ("rank0", "rank1", "resumed0", "resumed1")}
    for name in ("rank1", "resumed0", "resumed1"):
        for part, tensors in states["rank0"].items():
            for key, value in tensors.items():
                assert torch.equal(value, states[name][part][key]), (name, part, key)

    # only rank 0 logs: one line for step 0
    assert len((tmp_path / "full" / "log.jsonl").read_text().splitlines()) == 1
    assert json.loads((tmp_path / "full" / "log.jsonl").read_text())["step"] == 0

    # one process on the same global batch gives the same weights (up to summation order),
    # which also shows the ranks trained on different halves of that batch
    torch.manual_seed(100)
    G = DCGANGenerator(resolution=16, latent_dim=8, num_classes=4, embed_dim=4, base_channels=8)
    D = DSSGANDiscriminator(resolution=16, num_classes=4, base_channels=8, max_channels=16, mbstd_group_size=1)
    initial = {k: v.clone() for k, v in G.state_dict().items()}
    config = TrainConfig.dssgan_official(steps=3, batch=8, checkpoint_every=2, r1_every=2)
    train_gan(G, D, shapes_batches(resolution=16), tmp_path / "single", config, progress=False)
    for key, value in G.state_dict().items():
        assert not torch.equal(value, initial[key]) or key.endswith("bias"), key
        assert torch.allclose(value, states["rank0"]["G"][key], atol=1e-4), key


def test_steer_train_dssgan_under_torchrun(tmp_path):
    """The CLI path: two processes train a tiny DSS-GAN; rank 0 writes one model."""
    import shutil

    from steer import load_generator
    out = tmp_path / "run"
    env = subprocess_env()
    steer = shutil.which("steer")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                             "--no-python", steer, "train", "--arch", "dssgan", "--out", str(out), "--resolution",
                             "16", "--steps", "2", "--batch", "4", "--channels", "8,6", "--d-state", "4",
                             "--device", "cpu"], capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("model: ") == 1  # only rank 0 saves and reports
    G = load_generator(str(out / "model"), device="cpu")
    assert G.family == "dssgan" and G.resolution == 16 and list(G.latent_layout())[0] == "z_base"
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2
