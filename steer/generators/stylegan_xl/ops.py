"""The StyleGAN3 layer maths in plain PyTorch: FIR resampling, filtered leaky ReLU and
modulated convolution, each in two forms that compute the same thing.

"reference" follows the official pure-PyTorch path step by step (zero insertion, pad or crop,
separable true convolution, then keep every `down`-th sample), so it is the form to trust
when something disagrees. "fast" gives the same numbers with less work: each axis's whole
resampling (zero insertion, padding, FIR taps, decimation) is one small matrix built from
the taps, so filtering is two BLAS matrix products per stage instead of depthwise
convolutions over mostly-zero or soon-discarded samples; and the modulated conv scales
activations instead of building one weight per sample, so the whole batch shares one
convolution.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMPLS = ("fast", "reference")


def _pad_or_crop(x, left, right, top, bottom):
    # F.pad crops where a pad is negative
    return F.pad(x, [left, right, top, bottom])


def _as_kernels(f, channels, dtype):
    """Depthwise conv weights for a 1-D filter (W pass, H pass) or a 2-D one (single pass)."""
    f = f.to(dtype)
    if f.ndim == 1:
        return [f.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1),
                f.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1)]
    return [f.reshape(1, 1, *f.shape).expand(channels, 1, -1, -1)]


def upfirdn2d(x, f, up: int = 1, down: int = 1, padding=(0, 0, 0, 0), gain: float = 1.0):
    """Upsample by zero insertion, pad (negative: crop) by [x0, x1, y0, y1], convolve with the
    FIR filter f (1-D: separable; 2-D; None: identity) scaled by gain, keep every down-th
    sample. The official reference order, unabridged."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = _pad_or_crop(x, *padding)
    if f is not None:
        f = f * gain ** (f.ndim / 2)
        # conv2d correlates: flip the taps for a true convolution
        for kernel in _as_kernels(f.flip(list(range(f.ndim))), c, x.dtype):
            x = F.conv2d(x, kernel, groups=c)
    return x[:, :, ::down, ::down]


def resample_matrix(f, size: int, up: int = 1, down: int = 1, pad0: int = 0, pad1: int = 0,
                    gain: float = 1.0):
    """upfirdn along one axis of length `size` as a [size, out] matrix M (out = x @ M): the
    reference steps applied to unit impulses, so its entries are exactly the scaled taps."""
    x = torch.eye(size, dtype=torch.float32, device=None if f is None else f.device)
    if up > 1:  # zero insertion
        x = F.pad(x.unsqueeze(-1), [0, up - 1]).reshape(size, size * up)
    x = F.pad(x, [pad0, pad1])  # negative pads crop
    if f is not None:
        x = F.conv1d(x.unsqueeze(1), (f.float() * gain).flip(0).reshape(1, 1, -1)).squeeze(1)
    elif gain != 1:
        x = x * gain
    return x[:, ::down]


def _matrices(cache, key, build):
    if cache is None:
        return build()
    if key not in cache:
        cache[key] = build()
    return cache[key]


def _filter_fast(x, up_filter, down_filter, up, down, padding, gain, slope, clamp, cache):
    """filtered_lrelu's resampling as matrix products along each axis: the inserted zeros and
    the discarded samples cost nothing, and the work is BLAS matrix multiplication."""
    n, c, h, w = x.shape
    x0, x1, y0, y1 = padding
    up_w, up_h = _matrices(cache, ("up", h, w, x.device, x.dtype), lambda: (
        resample_matrix(up_filter, w, up, 1, x0, x1, up).to(x),
        resample_matrix(up_filter, h, up, 1, y0, y1, up).to(x)))
    x = torch.matmul(up_h.t(), x @ up_w)
    # gain * clamp(lrelu(x), +-clamp/gain) == clamp(gain * lrelu(x), +-clamp): the gain rides
    # on the last matrix product instead of costing a pass over the upsampled tensor
    inplace = not (torch.is_grad_enabled() and x.requires_grad)
    if slope != 1:
        x = F.leaky_relu(x, slope, inplace=inplace)
    if clamp is not None:
        x = x.clamp_(-clamp / gain, clamp / gain) if inplace else x.clamp(-clamp / gain, clamp / gain)
    if down_filter is not None and down_filter.ndim == 2:  # a radial (non-separable) filter
        return _downsample_2d(x, down_filter, down) * gain
    th, tw = x.shape[2:]
    down_w, down_h = _matrices(cache, ("down", th, tw, gain, x.device, x.dtype), lambda: (
        resample_matrix(down_filter, tw, 1, down, gain=gain).to(x), resample_matrix(down_filter, th, 1, down).to(x)))
    return torch.matmul(down_h.t(), x @ down_w)


def _downsample_2d(x, f, down):
    """upfirdn2d(x, f, down=down) for a 2-D filter, as one strided depthwise convolution."""
    c = x.shape[1]
    kernel = f.flip([0, 1]).to(x.dtype).reshape(1, 1, *f.shape).expand(c, 1, -1, -1)
    return F.conv2d(x, kernel, stride=down, groups=c)


def filtered_lrelu(x, up_filter, down_filter, bias, up: int, down: int, padding, gain: float,
                   slope: float, clamp: float | None, impl: str = "fast", cache: dict | None = None):
    """Bias, upsample (gain up**2), leaky ReLU times gain, clamp to +-clamp, downsample.
    `cache` (a dict) keeps the fast path's resampling matrices between calls."""
    x = x + bias.to(x.dtype).reshape(1, -1, 1, 1)
    if impl == "fast":
        return _filter_fast(x, up_filter, down_filter, up, down, padding, gain, slope, clamp, cache)
    x = upfirdn2d(x, up_filter, up=up, padding=padding, gain=up ** 2)
    if slope != 1:
        x = F.leaky_relu(x, slope)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return upfirdn2d(x, down_filter, down=down)


def bias_lrelu(x, bias=None, slope: float = 0.2, gain: float = math.sqrt(2)):
    """Add bias, leaky ReLU, scale: StyleGAN's 'lrelu' activation."""
    if bias is not None:
        x = x + bias
    return F.leaky_relu(x, slope) * gain


def modulated_conv2d(x, weight, styles, demodulate: bool, padding: int, input_gain=None,
                     impl: str = "fast"):
    """StyleGAN3's modulated convolution. With demodulation, weights and styles are first
    normalised (styles by their mean square over the whole batch, as the official code does)."""
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if demodulate:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    if impl == "reference":
        w = weight.unsqueeze(0) * styles.reshape(n, 1, in_ch, 1, 1)
        if demodulate:
            w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(n, out_ch, 1, 1, 1)
        if input_gain is not None:
            w = w * input_gain.expand(n, in_ch).reshape(n, 1, in_ch, 1, 1)
        out = F.conv2d(x.reshape(1, n * in_ch, *x.shape[2:]), w.reshape(n * out_ch, in_ch, kh, kw),
                       padding=padding, groups=n)
        return out.reshape(n, out_ch, *out.shape[2:])
    # the same sums with one shared weight: scale the inputs by the style, the outputs by
    # the demodulation coefficient
    scale_in = styles
    if input_gain is not None:
        scale_in = scale_in * input_gain.expand(n, in_ch)
    out = F.conv2d(x * scale_in.reshape(n, in_ch, 1, 1).to(x.dtype), weight.to(x.dtype), padding=padding)
    if demodulate:
        # sum over i,k of (w[o,i,k] s[n,i])^2 = (s^2) @ (sum_k w^2)^T
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
        out = out * dcoefs.reshape(n, out_ch, 1, 1).to(out.dtype)
    return out
