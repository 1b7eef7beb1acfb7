import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# the suite runs on 2 cores beside other work: one thread keeps timings stable
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


def subprocess_env(**extra):
    """Environment for a child python: one thread, and this checkout first on the path, so the
    child runs the code under test even where another install of steer is also present."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path, **extra)


def run_steer(*args, env=None, cwd=None, timeout=600):
    """`steer ARGS` in a subprocess with one thread; returns the CompletedProcess."""
    full_env = subprocess_env(**(env or {}))
    return subprocess.run([sys.executable, "-m", "steer.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def run_steer_peak(*args, timeout=600):
    """`steer ARGS` as run_steer does; returns (CompletedProcess, the child's peak resident
    memory in MiB, VmHWM of its own address space since exec)."""
    from steer.bench import run_steer_with_peak
    result, peak = run_steer_with_peak(args, env=subprocess_env(), timeout=timeout)
    assert peak is not None, f"the child did not report its peak: {result.stderr[-500:]}"
    return result, peak


def assert_user_error(result, *words):
    """A user mistake: exit status 2 and one line on stderr holding each of `words`."""
    assert result.returncode == 2, result.stderr
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def tiny_generator():
    """A randomly initialised 16 px dcgan: exercises the code paths in milliseconds."""
    from steer.generators.dcgan import DCGANGenerator
    torch.manual_seed(0)
    G = DCGANGenerator(resolution=16, latent_dim=8, num_classes=2, embed_dim=4, base_channels=8)
    return G.eval().requires_grad_(False)


@pytest.fixture
def tiny_model_dir(tmp_path, tiny_generator):
    from steer.generators import save_generator
    folder = tmp_path / "tiny"
    save_generator(tiny_generator, folder, "# tiny\n")
    return folder


@pytest.fixture
def bundled_generator():
    from steer import load_generator
    return load_generator("dcgan-shapes32", device="cpu")
