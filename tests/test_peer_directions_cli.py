"""`steer directions import|export` on the StyleGAN2-ADA fixture: a peer file becomes a walk
that render takes, a walk goes back to each format, and mistakes are one line."""
import numpy as np
import pytest

from tests.conftest import FIXTURES, assert_user_error, run_steer

MODEL = FIXTURES / "stylegan2_ada_official" / "uncond" / "network-snapshot-000200.pkl"  # w_dim 96, 8 ws
needs = pytest.mark.skipif(not MODEL.is_file(), reason="shared/fixtures is not beside the checkout")


@pytest.mark.slow
@needs
def test_import_render_and_export_back(tmp_path):
    rng = np.random.RandomState(0)
    sefa = rng.randn(3, 96).astype(np.float32)
    np.save(tmp_path / "sefa.npy", sefa)
    out = tmp_path / "imported"
    result = run_steer("directions", "import", str(tmp_path / "sefa.npy"), "--format", "sefa", "--model", str(MODEL),
                       "--space", "w+", "--layers", "0:4", "--index", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "strip.png").is_file() and "walk.safetensors" in result.stdout

    from steer.walks import load
    walk, meta = load(out / "walk.safetensors")
    assert meta["peer"]["format"] == "sefa" and meta["peer"]["index"] == 2 and meta["space"] == "w+"
    assert meta["source"]["kind"] == "checkpoint" and walk.layers == (0, 4)
    assert np.allclose(walk.directions.detach().numpy().reshape(4, 96), sefa[2], atol=1e-6)

    # the imported walk is a walk like any other: render reloads its model from the source
    result = run_steer("render", "--walk", str(out / "walk.safetensors"), "--seeds", "0", "--alphas", "-1,0,1",
                       "--out", str(tmp_path / "render"))
    assert result.returncode == 0, result.stderr

    result = run_steer("directions", "export", "--walk", str(out / "walk.safetensors"), "--format", "interfacegan",
                       "--out", str(tmp_path / "back.npy"))
    assert result.returncode == 0, result.stderr
    back = np.load(tmp_path / "back.npy").reshape(8, 96)
    assert np.allclose(np.linalg.norm(back), 1, atol=1e-5) and np.allclose(back[4:], 0)
    assert np.allclose(back[0] / np.linalg.norm(back[0]), sefa[2] / np.linalg.norm(sefa[2]), atol=1e-5)
    result = run_steer("directions", "export", "--walk", str(out / "walk.safetensors"), "--format", "ganspace",
                       "--out", str(tmp_path / "gs.npz"))
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "gs.npz") as data:
        assert data["lat_comp"].shape == (1, 1, 8 * 96)


@pytest.mark.slow
@needs
def test_mistakes_are_one_line(tmp_path):
    np.save(tmp_path / "b.npy", np.ones((1, 50), np.float32))
    common = ("directions", "import", str(tmp_path / "b.npy"), "--model", str(MODEL))
    assert_user_error(run_steer(*common, "--format", "interfacegan", "--space", "w"), "does not fit")
    assert_user_error(run_steer(*common, "--format", "interfacegan", "--alphas", "5"), "--alphas")
    assert_user_error(run_steer("directions", "import", str(tmp_path / "none.npy"), "--model", str(MODEL),
                                "--format", "sefa"), "does not exist")
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert_user_error(run_steer("directions", "import", str(tmp_path / "pickled.npy"), "--model", str(MODEL),
                                "--format", "interfacegan"), "pickled arrays are refused")
    assert_user_error(run_steer("directions", "export", "--walk", str(tmp_path / "w.safetensors"), "--format",
                                "ganspace", "--out", str(tmp_path / "x.npy")), ".npz")
