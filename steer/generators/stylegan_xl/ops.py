"""The StyleGAN3 layer maths in plain PyTorch: FIR resampling, filtered leaky ReLU and
modulated convolution, each in two forms that compute the same thing.

"reference" follows the official pure-PyTorch path step by step (zero insertion, pad or crop,
separable true convolution, then keep every `down`-th sample), so it is the form to trust
when something disagrees. "fast" gives the same numbers with less work: upsampling is a
transposed convolution (it never multiplies the inserted zeros), downsampling is a strided
convolution (it never computes the samples it would throw away), and the modulated conv
scales activations instead of building one weight per sample, so the whole batch shares one
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


def _upsample_fast(x, f, up, padding):
    """upfirdn2d(x, f, up, padding=padding, gain=up**2) as transposed convolutions."""
    c = x.shape[1]
    x0, x1, y0, y1 = padding
    if f is None:  # identity filter: only zero insertion and padding
        return upfirdn2d(x, None, up=up, padding=padding)
    f = f * float(up ** 2) ** (f.ndim / 2)
    k = f.shape[-1]
    kernels = _as_kernels(f, c, x.dtype)
    if len(kernels) == 2:
        x = F.conv_transpose2d(x, kernels[0], stride=(1, up), groups=c)
        x = F.conv_transpose2d(x, kernels[1], stride=(up, 1), groups=c)
    else:
        x = F.conv_transpose2d(x, kernels[0], stride=up, groups=c)
    # the full transposed output starts k-1 samples before the first padded sample
    return _pad_or_crop(x, x0 - (k - 1), x1 + up - k, y0 - (k - 1), y1 + up - k)


def _downsample_fast(x, f, down):
    """upfirdn2d(x, f, down=down) as strided convolutions."""
    if f is None:
        return x[:, :, ::down, ::down]
    c = x.shape[1]
    kernels = _as_kernels(f.flip(list(range(f.ndim))), c, x.dtype)
    if len(kernels) == 2:
        x = F.conv2d(x, kernels[0], stride=(1, down), groups=c)
        return F.conv2d(x, kernels[1], stride=(down, 1), groups=c)
    return F.conv2d(x, kernels[0], stride=down, groups=c)


def filtered_lrelu(x, up_filter, down_filter, bias, up: int, down: int, padding, gain: float,
                   slope: float, clamp: float | None, impl: str = "fast"):
    """Bias, upsample (gain up**2), leaky ReLU times gain, clamp to +-clamp, downsample."""
    x = x + bias.to(x.dtype).reshape(1, -1, 1, 1)
    if impl == "reference":
        x = upfirdn2d(x, up_filter, up=up, padding=padding, gain=up ** 2)
    else:
        x = _upsample_fast(x, up_filter, up, padding)
    if slope != 1:
        x = F.leaky_relu(x, slope)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    if impl == "reference":
        return upfirdn2d(x, down_filter, down=down)
    return _downsample_fast(x, down_filter, down)


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
