"""StyleGAN-XL behind steer's generator interface: spaces z, w and w+, class-conditional
sampling, truncation psi toward each class's w_avg, and multimodal truncation toward the
nearest of a set of centroids (the official imagenet_centroids.npy)."""
from __future__ import annotations

import copy

import numpy as np
import torch

from ...errors import SteerError
from ..base import Generator
from .network import MappingNetwork, SynthesisNetwork


class StyleGANXLGenerator(Generator):
    family = "stylegan_xl"
    spaces = ("z", "w", "w+")
    default_space = "w"
    truncation_kind = "psi"

    def __init__(self, config: dict, name: str = "stylegan_xl"):
        super().__init__()
        self._config = copy.deepcopy(config)
        self.name = name
        self.resolution = int(config["img_resolution"])
        self.num_classes = int(config["c_dim"])
        self.latent_dim = int(config["z_dim"])
        self.w_dim = int(config["w_dim"])
        self.synthesis = SynthesisNetwork(self.w_dim, self.resolution, int(config["img_channels"]),
                                          config["input"], config["layers"], config.get("output_scale", 0.25))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(self.latent_dim, self.num_classes, self.w_dim, self.num_ws, **config["mapping"])
        self.truncation_cutoff = None  # truncate the first `cutoff` ws only (None: all)
        self.centroids = None  # [K, w_dim]: multimodal truncation targets

    # ---- settings -----------------------------------------------------------------------
    def set_impl(self, impl: str):
        """'fast' (default) or 'reference' (the official op order, for checking)."""
        for name in self.synthesis.layer_names:
            getattr(self.synthesis, name).impl = impl
        return self

    def set_centroids(self, centroids):
        """Truncate toward the nearest of these w centroids instead of w_avg. Accepts an array
        [K, w_dim] or the path of an .npy file (read without pickle)."""
        if centroids is None:
            self.centroids = None
            return self
        if not torch.is_tensor(centroids):
            try:
                centroids = np.load(centroids, allow_pickle=False) if not isinstance(centroids, np.ndarray) else centroids
            except (OSError, ValueError) as e:
                raise SteerError(f"cannot read centroids {centroids}: {e}") from None
            centroids = torch.from_numpy(np.asarray(centroids, dtype=np.float32))
        if centroids.ndim != 2 or centroids.shape[1] != self.w_dim:
            raise SteerError(f"centroids must be an array [K, {self.w_dim}] of w vectors for this "
                             f"generator; got shape {list(centroids.shape)}")
        self.centroids = centroids.float()
        return self

    # ---- the interface -------------------------------------------------------------------
    def latent_shape(self, space: str | None = None) -> tuple:
        space = space or self.default_space
        self.check_space(space)
        return {"z": (self.latent_dim,), "w": (self.w_dim,), "w+": (self.num_ws, self.w_dim)}[space]

    def check_truncation(self, truncation) -> float | None:
        """psi toward the (class) mean w; None means 1 (none). Any finite number is allowed
        (psi > 1 extrapolates away from the mean, as the official code allows)."""
        if truncation is None:
            return None
        psi = float(truncation)
        if psi != psi or abs(psi) == float("inf"):
            raise SteerError(f"truncation psi must be a finite number, got {truncation!r}")
        return psi

    def style_affines(self) -> list:
        """The optional hook SeFa reads: per w+ row, the effective weights [out, w_dim] of
        the style affines that read that row."""
        return self.synthesis.style_affines()

    def mapping_ws(self, z, classes=None, truncation: float | None = None):
        """z -> ws [N, num_ws, w_dim], truncated with psi = `truncation` (None: 1), toward
        w_avg or the nearest centroid when centroids are set."""
        psi = 1.0 if truncation is None else self.check_truncation(truncation)
        if self.num_classes and classes is None:
            raise SteerError("this StyleGAN-XL model is class-conditional: give classes")
        classes = None if classes is None else classes.to(self.device)
        if self.centroids is None or psi == 1:
            return self.mapping(z, classes, psi=psi, cutoff=self.truncation_cutoff)
        ws = self.mapping(z, classes, psi=1.0)
        centroids = self.centroids.to(ws)
        nearest = torch.cdist(ws[:, 0], centroids).argmin(1)
        return self.mapping(z, classes, psi=psi, cutoff=self.truncation_cutoff, centre=centroids[nearest])

    def synthesize(self, latent, classes=None, space: str | None = None, truncation: float | None = None):
        """-> images NCHW float32, the official raw output (about [-1, 1], not clamped).
        `truncation` matters only for latents in z, which go through the mapping here."""
        space = space or self.default_space
        self.check_space(space)
        if space == "z":
            ws = self.mapping_ws(latent, classes, truncation)
        elif space == "w":
            ws = latent.unsqueeze(1).repeat(1, self.num_ws, 1)
        else:
            ws = latent
        if ws.shape[1:] != (self.num_ws, self.w_dim):
            raise SteerError(f"{self.name}: latent in {space} has shape {tuple(latent.shape[1:])}; "
                             f"expected {'(%d,)' % self.w_dim if space == 'w' else (self.num_ws, self.w_dim)}")
        return self.synthesis(ws)

    def official_forward(self, z, classes, psi: float = 1.0, cutoff: int | None = None):
        """G_ema(z, c, truncation_psi, truncation_cutoff) as the official code computes it."""
        return self.synthesis(self.mapping(z, classes, psi=psi, cutoff=cutoff))

    def tunable_parameters(self):
        return list(self.synthesis.parameters())

    def config(self) -> dict:
        return copy.deepcopy(self._config)
