import numpy as np
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
