"""Learn a zoom walk on the bundled generator and check it does what a zoom does."""
import pytest
import torch

from steer.attributes import object_area
from steer.edits import EDITS
from steer.fit import FitConfig, evaluate_walk, fit_walk
from steer.walks import LinearWalk, make_walk


@pytest.mark.slow
def test_zoom_walk_on_bundled_generator(bundled_generator):
    G = bundled_generator
    edit = EDITS["zoom"]
    config = FitConfig(steps=300, batch=16, lr=edit.lr, seed=0)
    walk = make_walk("linear", edit, (G.latent_dim,), G.resolution)
    fit_walk(G, walk, edit, config, progress=False)

    # held-out masked L2 against the zero walk (latent unchanged); seen: 0.74 of it over
    # the training range, 0.80 at alpha 0.5, 0.74 at alpha 2 (the generator's blur bounds it)
    zero = LinearWalk((G.latent_dim,), init_std=0.0)
    for alpha in (0.5, 2.0, None):
        learned = evaluate_walk(G, walk, edit, config, alpha=alpha)
        baseline = evaluate_walk(G, zero, edit, config, alpha=alpha)
        assert learned < 0.85 * baseline, (alpha, learned, baseline)

    # the object's measured area grows with alpha
    z, classes = G.sample(64, seed=123)
    with torch.no_grad():
        areas = [object_area(G.synthesize(walk.apply(z, torch.full((64,), a), edit, G.resolution), classes)).median().item()
                 for a in (0.5, 1.0, 2.0)]
    assert areas[0] < 0.8 * areas[1] and areas[2] > 1.25 * areas[1], areas
