import os

import numpy as np
import pytest
import torch

from steer.classifier import load_classifier
from steer.data.shapes import sample_shapes
from steer.metrics import frechet_distance


def test_frechet_distance_of_gaussians_matches_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, size=(200_000, 1))
    b = rng.normal(2.0, 3.0, size=(200_000, 1))
    # 1-D: (mu_a - mu_b)^2 + (s_a - s_b)^2
    assert abs(frechet_distance(a, b) - (4.0 + 4.0)) < 0.1
    assert frechet_distance(a, a) < 1e-6


def test_bundled_classifier_recognises_shapes():
    model = load_classifier()
    images, attrs = sample_shapes(500, seed=4242)
    with torch.no_grad():
        accuracy = (model(images).argmax(1) == attrs["class"]).float().mean().item()
    assert accuracy > 0.9
    assert model.features(images[:3]).shape == (3, 128)


def _clusters(n, centres, seed, spread=0.3):
    rng = np.random.default_rng(seed)
    which = rng.integers(len(centres), size=n)
    return np.asarray(centres)[which] + rng.normal(0, spread, size=(n, len(centres[0])))


CENTRES = [[x, y] for x in range(0, 10, 2) for y in range(0, 10, 2)]  # 25 modes


def test_ndb_and_jsd_of_matching_and_collapsed_sets():
    from steer.metrics import ndb_jsd
    real = _clusters(4000, CENTRES, seed=0)
    same = ndb_jsd(real, real, bins=20)
    assert same["ndb"] == 0 and same["jsd"] < 1e-12
    fresh = ndb_jsd(real, _clusters(4000, CENTRES, seed=1), bins=20)
    assert fresh["ndb"] <= 3 and fresh["jsd"] < 0.01  # the same distribution, new draws
    collapsed = ndb_jsd(real, _clusters(4000, [CENTRES[0]], seed=2), bins=20)
    assert collapsed["ndb"] >= 18 and collapsed["jsd"] > 0.5  # ln 2 = 0.69 is the maximum


def test_precision_recall_density_coverage():
    from steer.metrics import precision_recall_density_coverage as prdc
    real = _clusters(1500, CENTRES, seed=3)
    itself = prdc(real, real)
    assert itself["precision"] == 1.0 and itself["recall"] == 1.0 and itself["coverage"] == 1.0
    fresh = prdc(real, _clusters(1500, CENTRES, seed=4))
    assert fresh["precision"] > 0.9 and fresh["recall"] > 0.9 and 0.8 < fresh["density"] < 1.2
    collapsed = prdc(real, _clusters(1500, [CENTRES[0]], seed=5))
    assert collapsed["precision"] > 0.9  # every sample realistic...
    assert collapsed["recall"] < 0.15 and collapsed["coverage"] < 0.1  # ...but one mode of 25
    far = prdc(real, _clusters(1500, [[50, 50]], seed=6))
    assert far["precision"] == 0.0 and far["density"] == 0.0


def test_lpips_diversity_sees_collapse():
    from steer.losses import MaskedLPIPS
    from steer.metrics import lpips_diversity
    varied, _ = sample_shapes(64, seed=7)
    collapsed = varied[:1].expand(64, -1, -1, -1)
    classes = torch.arange(64) % 4
    pixel = lpips_diversity(varied, classes, pairs=100)
    assert pixel["diversity"] > 0.01 and lpips_diversity(collapsed, classes, pairs=100)["diversity"] == 0.0
    net = MaskedLPIPS("alex", backbone="random")  # the code path; real weights are not here
    assert lpips_diversity(varied, classes, pairs=20, distance=net)["distance"] == "lpips-alex"
    assert lpips_diversity(collapsed, classes, pairs=20, distance=net)["diversity"] < 1e-6


def test_steer_evaluate_writes_json_and_table(tmp_path):
    import json

    from tests.conftest import assert_user_error, run_steer
    out = tmp_path / "ev.json"
    result = run_steer("evaluate", "--model", "dcgan-shapes32", "--samples", "200", "--out", str(out),
                       "--device", "cpu")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    overall = report["overall"]
    assert report["feature_network"].startswith("steer shapes-classifier32")
    assert overall["frechet_distance"] > 1 and 0 <= overall["ndb"] <= overall["bins"]
    assert 0 < overall["precision"] <= 1 and 0 < overall["class_recognised"] <= 1
    assert set(report["per_class"]) == {"0", "1", "2", "3"}
    # the table names each class
    assert report["per_class"]["3"]["name"] == "cross"
    assert "overall" in result.stdout and "\ncross " in result.stdout and "diversity:" in result.stdout
    assert_user_error(run_steer("evaluate", "--model", "dssgan-shapes32", "--class", "9", "--out", str(out)), "--class 9")
    assert_user_error(run_steer("evaluate", "--model", "dssgan-shapes32", "--features", "resnet50", "--out", str(out),
                                env={"TORCH_HOME": str(tmp_path)}), "resnet50-0676ba61.pth")


def test_frechet_in_pixels_separates_real_from_noise():
    from steer.metrics import feature_network, frechet_distance
    fn, name = feature_network("pixels")
    real_a, _ = sample_shapes(300, seed=1, resolution=16)
    real_b, _ = sample_shapes(300, seed=2, resolution=16)
    noise = torch.rand(300, 3, 16, 16) * 2 - 1
    close = frechet_distance(fn(real_a).numpy(), fn(real_b).numpy())
    assert name.startswith("pixels") and close * 5 < frechet_distance(fn(real_a).numpy(), fn(noise).numpy())


def test_fid_features_are_pytorch_fids_inception_read_safely(tmp_path, monkeypatch):
    """--features fid: pytorch-fid's network with the weights file from torch's cache, read
    without unpickling code; features equal pytorch-fid's own for images mapped to [0, 1]."""
    inception = pytest.importorskip("pytorch_fid.inception")
    from steer.errors import SteerError
    from steer.metrics import FID_WEIGHTS_FILE, feature_network

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(SteerError, match=FID_WEIGHTS_FILE):
        feature_network("fid")
    # random weights in the release's layout: build the net once with loading switched off
    torch.manual_seed(0)
    with monkeypatch.context() as m:
        m.setattr(inception, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(torch.nn.Module, "load_state_dict", lambda self, state, strict=True: None)
        state = inception.fid_inception_v3().state_dict()
    weights = tmp_path / "hub" / "checkpoints" / FID_WEIGHTS_FILE
    weights.parent.mkdir(parents=True)
    torch.save(state, weights)

    fn, name = feature_network("fid")
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        ours = fn(images)
        with monkeypatch.context() as m:
            m.setattr(inception, "load_state_dict_from_url", lambda *a, **k: state)
            theirs = inception.InceptionV3([3]).eval()((images + 1) / 2)[0].flatten(1)
    assert name.startswith("standard FID") and ours.shape == (2, 2048)
    assert torch.allclose(ours, theirs, atol=1e-5) and ours.std() > 0

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    torch.save({"x": Hostile()}, weights)
    with pytest.raises(SteerError, match="cannot read"):
        feature_network("fid")
    assert not (tmp_path / "ran").exists()
