"""Offline measures of generator quality (no downloads): the Frechet distance between real
and generated images in the features of a network we have weights for, and how often a
classifier recognises the class a conditional generator was asked for."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg


def frechet_distance(features_a, features_b) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets (n, d)."""
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        # ReLU features leave some dimensions constant, so singular covariances are expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        # nearly singular product: nudge both covariances, as the FID reference code does
        offset = np.eye(cov_a.shape[0]) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    root = root.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))


@torch.no_grad()
def batched(fn, images, batch: int = 256):
    return torch.cat([fn(images[i:i + batch]) for i in range(0, len(images), batch)])


@torch.no_grad()
def shapes_generator_quality(generator, classifier, n: int = 5000, seed: int = 0) -> dict:
    """Frechet distance (shapes-classifier features) to real shapes, the same distance
    between two independent real sets as its floor, and class recognition rates."""
    from .data.shapes import sample_shapes

    device = generator.device
    classifier = classifier.to(device)
    real, attrs = sample_shapes(n, seed=seed + 1, resolution=generator.resolution)
    real_b, _ = sample_shapes(n, seed=seed + 2, resolution=generator.resolution)
    classes = torch.arange(n) % generator.num_classes
    fakes = []
    for i in range(0, n, 256):
        z, c = generator.sample(min(256, n - i), seed=seed + 1000 + i, classes=classes[i:i + 256])
        fakes.append(generator(z, c).cpu())
    fake = torch.cat(fakes)
    feats = {k: batched(classifier.features, v.to(device)).cpu().numpy()
             for k, v in (("real", real), ("real_b", real_b), ("fake", fake))}
    predicted_fake = batched(classifier, fake.to(device)).argmax(1).cpu()
    predicted_real = batched(classifier, real.to(device)).argmax(1).cpu()
    return {
        "samples": n,
        "feature_network": "steer shapes-classifier32 (penultimate layer, 128-d)",
        "frechet_distance": frechet_distance(feats["real"], feats["fake"]),
        "frechet_distance_real_vs_real": frechet_distance(feats["real"], feats["real_b"]),
        "class_recognised_generated": float((predicted_fake == classes).float().mean()),
        "class_recognised_real": float((predicted_real == attrs["class"]).float().mean()),
    }
