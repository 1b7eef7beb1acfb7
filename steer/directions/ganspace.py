"""GANSpace: principal components of what the generator makes of its latents (Härkönen,
Hertzmann, Lehtinen & Paris, NeurIPS 2020).

- In w (StyleGAN): PCA of sampled w; component k is a direction in w, applied to w or, for
  a layer-wise edit, to a range of w+ rows.
- In z (the z-only families): PCA of one layer's activations y(z) (a module of the
  generator, or the image), then a linear regression z ~ x U from each sample's component
  coordinates x back to its z; row k of U is component k's direction in z.

Both use scikit-learn's IncrementalPCA over batches, so memory holds one batch at a time.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import SteerError
from .common import Directions, check_count, direction_space, flat, truncation_kw


def incremental_pca(batches, k: int):
    """Fit IncrementalPCA(k) on an iterable of (n, features) arrays; returns the model."""
    from sklearn.decomposition import IncrementalPCA
    pca = IncrementalPCA(n_components=k)
    for batch in batches:
        batch = np.asarray(batch, dtype=np.float64)
        if batch.shape[0] < k:
            raise SteerError(f"a PCA batch of {batch.shape[0]} samples cannot fit {k} components: "
                             "use a larger batch or fewer components")
        pca.partial_fit(batch)
    return pca


def _batches(samples: int, batch: int):
    """(start, size) of each batch; the last absorbs a remainder too small to fit on its own."""
    starts = list(range(0, samples, batch))
    if len(starts) > 1 and samples - starts[-1] < batch:
        starts.pop()
    return [(s, (starts[i + 1] if i + 1 < len(starts) else samples) - s) for i, s in enumerate(starts)]


def layer_names(generator) -> list:
    return ["image"] + [name for name, _ in generator.named_modules() if name]


class _Activations:
    """The output of one module of the generator during synthesize ('image': the image)."""

    def __init__(self, generator, layer: str):
        self.generator, self.layer = generator, layer
        if layer != "image":
            try:
                self.module = generator.get_submodule(layer)
            except AttributeError:
                names = layer_names(generator)
                raise SteerError(f"{generator.name} has no layer '{layer}'; give 'image' or a module name such as "
                                 f"{', '.join(names[1:6])} ({len(names) - 1} in all)") from None

    @torch.no_grad()
    def __call__(self, latent, classes, space, truncation=None) -> torch.Tensor:
        if self.layer == "image":
            image = self.generator.synthesize(latent, classes, space, **truncation_kw(truncation))
            return image.reshape(image.shape[0], -1)
        seen = []
        handle = self.module.register_forward_hook(lambda m, i, out: seen.append(out[0] if isinstance(out, tuple)
                                                                                   else out))
        try:
            self.generator.synthesize(latent, classes, space, **truncation_kw(truncation))
        finally:
            handle.remove()
        if not seen or not torch.is_tensor(seen[0]):
            raise SteerError(f"layer '{self.layer}' gave no tensor during synthesis")
        # a module called more than once (shared) counts from its first call
        return seen[0].reshape(latent.shape[0], -1)


def ganspace(generator, components: int = 5, samples: int = 2000, space: str | None = None, layers=None,
             layer: str = "image", batch: int = 256, seed: int = 0, truncation=None) -> Directions:
    """The top `components` GANSpace directions (see the module's docstring)."""
    where = direction_space(generator, space, layers)
    k = check_count(components, where.dim)
    batch = max(int(batch), k)
    if samples < 2 * k:
        raise SteerError(f"--samples {samples} is too few for {k} components: give at least {2 * k}")
    chunks = _batches(samples, batch)

    def draw(i, n):
        z, c = generator.sample(n, seed=seed + i, truncation=truncation)
        with torch.no_grad():
            return z, c, generator.to_space(z, c, where.sampled_space, **truncation_kw(truncation))

    settings = {"components": k, "samples": samples, "batch": batch, "seed": seed}
    if where.sampled_space != "z":
        pca = incremental_pca((flat(draw(i, n)[2], where).cpu().numpy() for i, (_, n) in enumerate(chunks)), k)
        vectors = torch.from_numpy(pca.components_).float()
        settings["fitted_on"] = where.sampled_space
    else:
        grab = _Activations(generator, layer)

        def features(i, n):
            z, c, latent = draw(i, n)
            return z, grab(latent, c, where.sampled_space, truncation).float().cpu().numpy()

        pca = incremental_pca((features(i, n)[1] for i, (_, n) in enumerate(chunks)), k)
        # second pass (same seeds, same samples): regress z on the component coordinates
        xtx, xtz = np.zeros((k, k)), np.zeros((k, where.dim))
        for i, (_, n) in enumerate(chunks):
            z, y = features(i, n)
            x = pca.transform(y)
            xtx += x.T @ x
            xtz += x.T @ z.reshape(n, -1).cpu().double().numpy()
        u = np.linalg.solve(xtx + 1e-10 * np.trace(xtx) / k * np.eye(k), xtz)
        vectors = torch.from_numpy(u / np.linalg.norm(u, axis=1, keepdims=True)).float()
        settings.update(fitted_on=f"activations of {layer}", layer=layer)
    return Directions("pca", vectors, pca.explained_variance_.tolist(), "variance of the component", where,
                      settings=settings,
                      report={"explained_variance_ratio": pca.explained_variance_ratio_.tolist()})
