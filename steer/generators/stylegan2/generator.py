"""StyleGAN2 (NVlabs), StyleGAN3-T/R and rosinality StyleGAN2 behind steer's generator
interface: spaces z, w and w+ (one w per layer), conditional and unconditional, truncation
psi toward w_avg (an argument) with an optional cutoff, per-layer noise 'const' (the stored
buffers, default), 'random' (seeded) or 'none'."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ...errors import SteerError
from ..base import Generator
from ..stylegan_xl.network import SynthesisNetwork as SG3SynthesisNetwork
from .network import NOISE_MODES, MappingNetwork, SynthesisNetwork
from .rosinality import RosinalityNetwork


class StyleGANAdapter(Generator):
    """What the three formats share; subclasses map z to ws and synthesise ws."""

    spaces = ("z", "w", "w+")
    default_space = "w"
    truncation_kind = "psi"

    def _setup(self, config: dict, name: str):
        self._config = copy.deepcopy(config)
        self.name = name
        self.truncation_cutoff = None  # truncate the first `cutoff` ws only (None: all)
        self.noise_mode = "const"  # 'const' (stored buffers), 'random' (seeded by noise_seed), 'none'
        self.noise_seed = 0

    def set_noise(self, mode: str = "const", seed: int = 0):
        if mode not in NOISE_MODES:
            raise SteerError(f"noise mode must be one of {', '.join(NOISE_MODES)}, not {mode!r}")
        self.noise_mode, self.noise_seed = mode, int(seed)
        return self

    def _noise_generator(self):
        return torch.Generator().manual_seed(self.noise_seed) if self.noise_mode == "random" else None

    def latent_shape(self, space: str | None = None) -> tuple:
        space = space or self.default_space
        self.check_space(space)
        return {"z": (self.latent_dim,), "w": (self.w_dim,), "w+": (self.num_ws, self.w_dim)}[space]

    def check_truncation(self, truncation) -> float | None:
        """psi toward w_avg; None means 1. Any finite number (psi > 1 extrapolates)."""
        if truncation is None:
            return None
        psi = float(truncation)
        if psi != psi or abs(psi) == float("inf"):
            raise SteerError(f"truncation psi must be a finite number, got {truncation!r}")
        return psi

    def _check_classes(self, classes):
        if self.num_classes and classes is None:
            raise SteerError(f"{self.name} is class-conditional: give classes")
        return None if classes is None or not self.num_classes else classes.to(self.device)

    def mapping_ws(self, z, classes=None, truncation: float | None = None, cutoff: int | None = None):
        psi = 1.0 if truncation is None else self.check_truncation(truncation)
        cutoff = self.truncation_cutoff if cutoff is None else cutoff
        return self._map(z.to(self.device), self._check_classes(classes), psi, cutoff)

    def synthesize(self, latent, classes=None, space: str | None = None, truncation: float | None = None):
        """-> images NCHW float32: the official raw output (about [-1, 1], not clamped)."""
        space = space or self.default_space
        self.check_space(space)
        if space == "z":
            ws = self.mapping_ws(latent, classes, truncation)
        elif space == "w":
            ws = latent.unsqueeze(1).repeat(1, self.num_ws, 1)
        else:
            ws = latent
        if tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise SteerError(f"{self.name}: latent in {space} has shape {tuple(latent.shape[1:])}; expected "
                             f"{(self.w_dim,) if space == 'w' else (self.num_ws, self.w_dim)}")
        return self.synthesize_ws(ws)

    def style_affines(self) -> list:
        """The optional hook SeFa reads: per w+ row, the effective weights [out, w_dim] of
        the style affines that read that row."""
        net = self._net[0] if hasattr(self, "_net") else self.synthesis
        return net.style_affines()

    def official_forward(self, z, classes=None, psi: float = 1.0, cutoff: int | None = None):
        """G_ema(z, c, truncation_psi, truncation_cutoff, noise_mode) as the official code computes it."""
        return self.synthesize_ws(self.mapping_ws(z, classes, psi, cutoff))

    def config(self) -> dict:
        return copy.deepcopy(self._config)


class NVlabsStyleGAN(StyleGANAdapter):
    """A G_ema of stylegan2-ada-pytorch or stylegan3: `mapping` and `synthesis` submodules,
    named as the official Generator's."""

    def _build_mapping(self, config):
        self.resolution = int(config["img_resolution"])
        self.num_classes = int(config["c_dim"])
        self.latent_dim = int(config["z_dim"])
        self.w_dim = int(config["w_dim"])
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(self.latent_dim, self.num_classes, self.w_dim, self.num_ws, **config["mapping"])

    def one_hot(self, classes):
        return None if classes is None else F.one_hot(classes.long(), self.num_classes).to(torch.float32)

    def _map(self, z, classes, psi, cutoff):
        return self.mapping(z, self.one_hot(classes), psi=psi, cutoff=cutoff)

    def tunable_parameters(self):
        return list(self.synthesis.parameters())


class StyleGAN2Generator(NVlabsStyleGAN):
    family = "stylegan2"

    def __init__(self, config: dict, name: str = "stylegan2"):
        super().__init__()
        self._setup(config, name)
        self.synthesis = SynthesisNetwork(int(config["w_dim"]), int(config["img_resolution"]),
                                          int(config["img_channels"]), config["blocks"])
        self._build_mapping(config)

    def synthesize_ws(self, ws):
        return self.synthesis(ws, noise_mode=self.noise_mode, generator=self._noise_generator())


class StyleGAN3Generator(NVlabsStyleGAN):
    """StyleGAN3-T and -R: StyleGAN-XL's synthesis network (the same StyleGAN3 layers) and
    the NVlabs mapping. No noise inputs: the noise mode is ignored, as officially."""

    family = "stylegan3"

    def __init__(self, config: dict, name: str = "stylegan3"):
        super().__init__()
        self._setup(config, name)
        self.synthesis = SG3SynthesisNetwork(int(config["w_dim"]), int(config["img_resolution"]),
                                             int(config["img_channels"]), config["input"], config["layers"],
                                             config.get("output_scale", 0.25))
        self._build_mapping(config)

    def set_impl(self, impl: str):
        """'fast' (default) or 'reference' (the official op order, for checking)."""
        for name in self.synthesis.layer_names:
            getattr(self.synthesis, name).impl = impl
        return self

    def synthesize_ws(self, ws):
        return self.synthesis(ws)


class RosinalityGenerator(StyleGANAdapter):
    """rosinality's g_ema with its official module names at the top level, plus `latent_avg`
    (the checkpoint's, or the mean of 8,192 seeded mapping outputs when it has none), the
    truncation target. Unconditional."""

    family = "rosinality"

    def __init__(self, config: dict, name: str = "rosinality"):
        super().__init__()
        self._setup(config, name)
        net = RosinalityNetwork(int(config["size"]), int(config["style_dim"]), int(config["n_mlp"]),
                                config["channels"], float(config.get("lr_mlp", 0.01)),
                                tuple(config.get("blur_kernel", (1, 3, 3, 1))))
        for child in ("style", "input", "conv1", "to_rgb1", "convs", "to_rgbs", "noises"):
            setattr(self, child, getattr(net, child))
        self._net = [net]  # kept out of the module tree: its children are ours
        self.resolution = int(config["size"])
        self.num_classes = 0
        self.latent_dim = self.w_dim = int(config["style_dim"])
        self.num_ws = net.n_latent
        self.register_buffer("latent_avg", torch.zeros(self.w_dim))

    @property
    def mapping(self):  # what inversion asks for the start latent: centre() -> latent_avg
        return self

    def centre(self, classes=None):
        return self.latent_avg.unsqueeze(0)

    @torch.no_grad()
    def mean_latent(self, n: int = 8192, seed: int = 0):
        """The mean of style(z) over n seeded z (the official mean_latent, made reproducible)."""
        z = torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed)).to(self.latent_avg)
        return self.style(z).mean(0)

    def _map(self, z, classes, psi, cutoff):
        w = self.style(z.to(torch.float32))
        ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
        if psi != 1:
            cutoff = self.num_ws if cutoff is None else int(cutoff)  # a cutoff is steer's addition
            head = self.latent_avg + psi * (ws[:, :cutoff] - self.latent_avg)
            ws = torch.cat([head, ws[:, cutoff:]], dim=1)
        return ws

    def synthesize_ws(self, ws):
        net = self._net[0]
        return net.synthesis(ws.to(torch.float32), noise_mode=self.noise_mode, generator=self._noise_generator())

    def tunable_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("style.")]
