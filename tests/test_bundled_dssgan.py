"""The bundled DSS-GAN and the zoom walk shipped for it (skipped until it is bundled)."""
import pytest
import torch

import steer
from steer.attributes import object_area
from steer.edits import EDITS
from steer.fit import FitConfig, evaluate_walk
from steer.generators.registry import bundled_models
from steer.walks import LinearWalk
from tests.conftest import REPO

pytestmark = pytest.mark.skipif("dssgan-shapes32" not in bundled_models(), reason="dssgan-shapes32 not bundled")


@pytest.fixture(scope="module")
def G():
    return steer.load_generator("dssgan-shapes32", device="cpu")


def test_bundled_dssgan_loads_and_samples(G):
    assert G.family == "dssgan" and G.resolution == 32 and G.num_classes == 4
    assert list(G.latent_layout()) == ["z_base", "row_fwd", "col_fwd", "diag_left"]
    z, classes = G.sample(8, seed=0, classes=torch.arange(8) % 4)
    with torch.no_grad():
        images = G.synthesize(z, classes)
    assert images.shape == (8, 3, 32, 32) and images.abs().max() <= 1
    assert images.std() > 0.1  # not a flat image


def test_shipped_zoom_walk_zooms(G):
    walk, _ = steer.walks.load(REPO / "walks" / "dssgan-shapes32" / "zoom" / "walk.safetensors")
    edit = EDITS["zoom"]
    config = FitConfig(batch=16, seed=0)
    zero = LinearWalk((G.latent_dim,), init_std=0.0)
    learned, baseline = evaluate_walk(G, walk, edit, config), evaluate_walk(G, zero, edit, config)
    assert learned < 0.85 * baseline, (learned, baseline)
    z, classes = G.sample(64, seed=123)
    with torch.no_grad():
        areas = [object_area(G.synthesize(walk.apply(z, torch.full((64,), a), edit, G.resolution), classes))
                 .median().item() for a in (0.5, 1.0, 2.0)]
    assert areas[0] < 0.8 * areas[1] and areas[2] > 1.25 * areas[1], areas
