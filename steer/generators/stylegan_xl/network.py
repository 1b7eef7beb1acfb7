"""StyleGAN-XL's generator: the class-conditional mapping network and the StyleGAN3-T
synthesis network, written for steer. Module and parameter names equal the official
modules', so an official G_ema state_dict loads with strict=True.

Everything the forward pass needs that is not a tensor (sizes, sampling factors, paddings,
clamps, gains) comes from a plain JSON config read off the checkpoint's recorded attributes,
so the same code runs the base generator and every super-resolution stage: a stage is just
more entries in `layers`. Filters are the stored float32 taps, never redesigned.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base import run_layer
from .ops import bias_lrelu, filtered_lrelu, modulated_conv2d


def _rsqrt_mean_square(x, eps: float = 1e-8):
    return x * (x.square().mean(1, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """y = x W^T * weight_gain + b * bias_gain, then 'linear' or 'lrelu'. The gains carry
    StyleGAN's equalised learning rate (lr_multiplier / sqrt(in_features), lr_multiplier)."""

    def __init__(self, in_features: int, out_features: int, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"unsupported activation {activation}")
        self.in_features, self.out_features, self.activation = in_features, out_features, activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_multiplier))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype)
        if self.bias_gain != 1:
            b = b * self.bias_gain
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_lrelu(x.matmul(w.t()), b)


class MappingNetwork(nn.Module):
    """z (normalised) and, for conditional models, the projected class embedding (normalised)
    -> num_layers lrelu FCs -> w, broadcast to num_ws and truncated toward w_avg (per class)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 2,
                 lr_multiplier: float = 0.01, embed_num: int = 1000, embed_dim: int = 320):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, c_dim, w_dim, num_ws, num_layers
        # the official module always holds the pretrained class table, conditional or not
        self.embed = nn.Embedding(embed_num, embed_dim)
        self.embed_proj = FullyConnectedLayer(embed_dim, z_dim, activation="lrelu") if c_dim > 0 else None
        features = [z_dim * (2 if c_dim > 0 else 1)] + [w_dim] * num_layers
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], "lrelu", lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([c_dim, w_dim] if c_dim > 0 else [w_dim]))

    def centre(self, classes):
        """The w each sample is truncated toward: its class's w_avg, or the global one."""
        if self.c_dim > 0:
            return self.w_avg[classes]
        return self.w_avg.unsqueeze(0)

    def forward(self, z, classes=None, psi: float = 1.0, cutoff: int | None = None, centre=None):
        """-> ws [N, num_ws, w_dim]. `centre` ([N, w_dim]) replaces w_avg as the truncation
        target (multimodal truncation)."""
        x = _rsqrt_mean_square(z.to(torch.float32))
        if self.c_dim > 0:
            if classes is None:
                raise ValueError("this generator is class-conditional: pass classes")
            y = _rsqrt_mean_square(self.embed_proj(self.embed(classes)))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if psi != 1:
            target = self.centre(classes) if centre is None else centre
            cutoff = self.num_ws if cutoff is None else cutoff
            head = target.unsqueeze(1).lerp(ws[:, :cutoff], psi)
            ws = torch.cat([head, ws[:, cutoff:]], dim=1)
        return ws


class SynthesisInput(nn.Module):
    """Fourier features on a grid, rotated and translated by an affine of w[0] (composed with
    the stored user transform), band-limited, then mixed by a learned channel matrix."""

    def __init__(self, w_dim: int, channels: int, size, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.w_dim, self.channels = w_dim, channels
        self.size = [int(s) for s in size]  # [width, height]
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():  # starts as the identity transform: cos 1, sin 0, no shift
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        # frequencies drawn inside the disc of radius `bandwidth`, random phases
        freqs = torch.randn(channels, 2)
        radii = freqs.norm(dim=1, keepdim=True)
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * self.bandwidth
        self.register_buffer("transform", torch.eye(3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", torch.rand(channels) - 0.5)

    def forward(self, w):
        n = w.shape[0]
        t = self.affine(w)  # (cos, sin, tx, ty), unnormalised
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        eye = torch.eye(3, device=w.device, dtype=w.dtype)
        rotation = eye.repeat(n, 1, 1)
        rotation[:, 0, 0], rotation[:, 0, 1] = t[:, 0], -t[:, 1]
        rotation[:, 1, 0], rotation[:, 1, 1] = t[:, 1], t[:, 0]
        translation = eye.repeat(n, 1, 1)
        translation[:, 0, 2], translation[:, 1, 2] = -t[:, 2], -t[:, 3]
        transforms = rotation @ translation @ self.transform.unsqueeze(0)
        freqs = self.freqs.unsqueeze(0)
        phases = self.phases.unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        # fade out frequencies the user transform pushed past the band
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth)
                      / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        width, height = self.size
        theta = torch.zeros(1, 2, 3, device=w.device, dtype=w.dtype)
        theta[0, 0, 0] = 0.5 * width / self.sampling_rate
        theta[0, 1, 1] = 0.5 * height / self.sampling_rate
        grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False)  # [1, H, W, 2]
        x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)
        x = torch.sin((x + phases.unsqueeze(1).unsqueeze(2)) * (2 * math.pi))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2).contiguous()


class SynthesisLayer(nn.Module):
    """Modulated conv (demodulated, input scaled by the magnitude EMA) then filtered leaky
    ReLU; ToRGB: unnormalised modulation and a linear, unresampled output."""

    def __init__(self, w_dim: int, in_channels: int, out_channels: int, conv_kernel: int, is_torgb: bool,
                 up_factor: int, down_factor: int, up_taps: int, down_taps: int, padding,
                 conv_clamp: float | None = 256, down_radial: bool = False):
        super().__init__()
        self.w_dim, self.in_channels, self.out_channels = w_dim, in_channels, out_channels
        self.conv_kernel, self.is_torgb = conv_kernel, bool(is_torgb)
        self.up_factor, self.down_factor = int(up_factor), int(down_factor)
        self.padding = [int(p) for p in padding]
        self.conv_clamp = None if conv_clamp is None else float(conv_clamp)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, conv_kernel, conv_kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("magnitude_ema", torch.ones([]))
        # official layers keep None for a 1-tap (identity) filter: absent from the state_dict
        self.register_buffer("up_filter", torch.zeros(up_taps) if up_taps > 1 else None)
        down_shape = [down_taps, down_taps] if down_radial else [down_taps]
        self.register_buffer("down_filter", torch.zeros(down_shape) if down_taps > 1 else None)
        self.impl = "fast"
        self._resample_cache = {}  # the fast path's resampling matrices, per input size

    def _apply(self, fn, *args, **kwargs):
        self._resample_cache = {}  # moved or cast: rebuild the matrices from the new taps
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs):
        self._resample_cache = {}
        return super()._load_from_state_dict(*args, **kwargs)

    def design_filters(self, in_cutoff, out_cutoff, in_half_width, out_half_width, tmp_rate):
        """Kaiser low-pass taps by the StyleGAN3 rule, for freshly built layers; checkpoints
        bring their stored taps instead."""
        from scipy.signal import firwin

        for name, cutoff, half_width in (("up_filter", in_cutoff, in_half_width),
                                         ("down_filter", out_cutoff, out_half_width)):
            taps = getattr(self, name)
            if taps is not None and taps.ndim == 1:
                taps.copy_(torch.as_tensor(firwin(taps.numel(), cutoff, width=half_width * 2, fs=tmp_rate)))
        self._resample_cache = {}

    def forward(self, x, w):
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        x = modulated_conv2d(x, self.weight, styles, demodulate=not self.is_torgb,
                             padding=self.conv_kernel - 1, input_gain=self.magnitude_ema.rsqrt(), impl=self.impl)
        gain, slope = (1.0, 1.0) if self.is_torgb else (math.sqrt(2), 0.2)
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, self.up_factor, self.down_factor,
                              self.padding, gain, slope, self.conv_clamp, impl=self.impl,
                              cache=self._resample_cache)


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, input_config: dict, layers: list,
                 output_scale: float = 0.25):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.output_scale = float(output_scale)
        self.input = SynthesisInput(w_dim=w_dim, **input_config)
        self.layer_names = []
        for spec in layers:
            spec = dict(spec)
            name, design = spec.pop("name"), spec.pop("_filter", None)
            layer = SynthesisLayer(w_dim=w_dim, **spec)
            if design is not None:
                layer.design_filters(**design)
            setattr(self, name, layer)
            self.layer_names.append(name)
        self.num_ws = len(self.layer_names) + 1
        self.checkpoint_layers = False  # Generator.set_gradient_checkpointing

    def style_affines(self) -> list:
        """Per w+ row, the effective weights [out, w_dim] of the affines that read it (SeFa)."""
        layers = [self.input] + [getattr(self, name) for name in self.layer_names]
        return [[layer.affine.weight * layer.affine.weight_gain] for layer in layers]

    def forward(self, ws):
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = run_layer(getattr(self, name), x, w, checkpointed=self.checkpoint_layers)
        return x * self.output_scale if self.output_scale != 1 else x


def design_config(z_dim=64, w_dim=512, c_dim=0, img_resolution=32, img_channels=3, channel_base=32768,
                  channel_max=512, num_layers=14, num_critical=2, first_cutoff=2, first_stopband=2 ** 2.1,
                  last_stopband_rel=2 ** 0.3, margin_size=10, conv_kernel=3, filter_size=6,
                  lrelu_upsampling=2, mapping_layers=2, conv_clamp=256):
    """The config the official StyleGAN3-T design rule gives for these settings (cutoffs and
    stopbands in geometric progression, sampling rates the next power of two). For benchmarks
    and tests with random weights; real checkpoints carry their own config."""
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    last_cutoff = img_resolution / 2
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_cutoff * last_stopband_rel / first_stopband) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    layers = []
    for idx in range(num_layers + 1):
        prev = max(idx - 1, 0)
        torgb = idx == num_layers
        tmp_rate = max(rates[prev], rates[idx]) * (1 if torgb else lrelu_upsampling)
        up, down = int(round(tmp_rate / rates[prev])), int(round(tmp_rate / rates[idx]))
        up_taps = filter_size * up if up > 1 and not torgb else 1
        down_taps = filter_size * down if down > 1 and not torgb else 1
        kernel = 1 if torgb else conv_kernel
        pad_total = (sizes[idx] - 1) * down + 1 - (sizes[prev] + kernel - 1) * up + up_taps + down_taps - 2
        pad_lo = (pad_total + up) // 2
        pad_hi = pad_total - pad_lo
        layers.append({"name": f"L{idx}_{int(sizes[idx])}_{int(channels[idx])}",
                       "in_channels": int(channels[prev]), "out_channels": int(channels[idx]),
                       "conv_kernel": kernel, "is_torgb": torgb, "up_factor": up, "down_factor": down,
                       "up_taps": up_taps, "down_taps": down_taps, "conv_clamp": conv_clamp,
                       "padding": [int(pad_lo), int(pad_hi), int(pad_lo), int(pad_hi)],
                       # kept for designing filters in benchmarks (official: Kaiser via firwin)
                       "_filter": {"in_cutoff": float(cutoffs[prev]), "out_cutoff": float(cutoffs[idx]),
                                   "in_half_width": float(half_widths[prev]),
                                   "out_half_width": float(half_widths[idx]), "tmp_rate": float(tmp_rate)}})
    return {"family": "stylegan_xl", "z_dim": z_dim, "w_dim": w_dim, "c_dim": c_dim,
            "img_resolution": img_resolution, "img_channels": img_channels,
            "mapping": {"num_layers": mapping_layers, "lr_multiplier": 0.01, "embed_num": 1000, "embed_dim": 320},
            "input": {"channels": int(channels[0]), "size": [int(sizes[0])] * 2, "sampling_rate": float(rates[0]),
                      "bandwidth": float(cutoffs[0])},
            "layers": layers, "output_scale": 0.25}
