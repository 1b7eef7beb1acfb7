"""The walk optimiser's lr schedule and early stopping: cosine by the step alone, the walk
kept is the one of the best validation, and a stopped run stays stopped when resumed."""
import pytest
import torch

from steer.edits import get_edit
from steer.fit import VALIDATION_OFFSET, FitConfig, fit_walk, learning_rate, steering_for
from steer.walks import make_walk


def test_cosine_schedule_by_step():
    config = FitConfig(steps=100, lr=0.02, schedule="cosine")
    assert learning_rate(config, 0) == pytest.approx(0.02)
    assert learning_rate(config, 50) == pytest.approx(0.01)
    assert learning_rate(config, 100) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(FitConfig(lr=0.02), 77) == 0.02


def test_early_stopping_keeps_the_best_validated_walk_and_stays_stopped(tiny_generator, tmp_path):
    G = tiny_generator
    edit = get_edit("zoom")
    # a huge lr makes the loss jump about, so validation gets worse after a while
    config = FitConfig(steps=200, batch=4, lr=3.0, seed=0, patience=2, validate_every=4, checkpoint_every=10**6)
    walk = make_walk("linear", edit, G.latent_shape("z"), G.resolution)
    result = fit_walk(G, walk, edit, config, checkpoint=tmp_path / "ck.pt", progress=False)
    assert result.stopped_early and result.steps_done < 200
    steps, values = zip(*result.validation)
    best = min(range(len(values)), key=values.__getitem__)
    assert result.best_step == steps[best]
    assert result.steps_done - result.best_step >= 2 * 4
    # the walk returned is the best one: its validation loss is the best recorded
    again = steering_for(G, walk, edit, config).held_out_error(batch=4, batches=2, seed=0,
                                                               seed_offset=VALIDATION_OFFSET)
    assert again == pytest.approx(values[best], rel=1e-5)
    # resuming the stopped run trains nothing more and keeps the same walk
    walk2 = make_walk("linear", edit, G.latent_shape("z"), G.resolution, seed=5)
    resumed = fit_walk(G, walk2, edit, config, checkpoint=tmp_path / "ck.pt", progress=False)
    assert resumed.steps_done == result.steps_done and resumed.best_step == result.best_step
    assert torch.equal(walk2.directions, walk.directions)


def test_walk_defaults_by_walk_type():
    from steer.cli.walk import fit_defaults
    from steer.edits import get_edit
    zoom = get_edit("zoom")
    assert fit_defaults("linear", zoom) == (100, "cosine", 0.2)
    assert fit_defaults("linear", zoom, schedule="constant") == (100, "constant", zoom.lr)
    assert fit_defaults("linear", zoom, steps=800, lr=1e-3) == (800, "cosine", 1e-3)
    assert fit_defaults("nonlinear", zoom) == (800, "constant", zoom.lr / 5)
    assert fit_defaults("slider", zoom) == (800, "constant", zoom.lr)
