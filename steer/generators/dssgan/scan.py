"""Mamba's selective scan: steer's exact chunked CPU/GPU scan, a plain reference, and dispatch.

The maths is that of mamba-ssm's reference scan (`selective_scan_ref`). With u, delta, z of
shape (batch, d_inner, L), A (d_inner, d_state), B, C (batch, d_state, L), D, delta_bias
(d_inner,):

    delta = softplus(delta + delta_bias)                       (softplus if delta_softplus)
    h_t   = exp(delta_t A) * h_{t-1} + delta_t B_t u_t        (h_{-1} = 0, h_t: (d_inner, d_state))
    y_t   = <h_t, C_t> + D u_t;     out = y * silu(z)

computed in float32 (float64 inputs stay float64), returned in u's dtype.

`selective_scan` picks a backend:
- "auto" (default): mamba-ssm's CUDA kernel when the tensors are on CUDA and `mamba_ssm`
  imports (looked up once, lazily), otherwise steer's scan;
- "steer": steer's scan, on any device;
- "reference": `selective_scan_reference`, the slow direct transcription (an oracle for tests).
The module-level `BACKEND` is the default for calls that pass no `backend=`.

Steer's scan runs the linear recurrence in a custom autograd Function over chunks of the
sequence, in the layout (L, batch, d_inner, d_state), so every time step is one contiguous
in-place `addcmul_`. Forward keeps only the state at each chunk boundary; backward recomputes a
chunk's states from its start state, runs the reverse recurrence
g_t = C_t dy_t + exp(delta_{t+1} A) g_{t+1}, and turns it into gradients with batched matmuls.
The states take three chunk buffers of T steps and one saved state per chunk, (3 T + L / T)
steps' worth of batch * d_inner * d_state elements with T >= sqrt(L / 3) (`default_chunk_len`),
not the L steps' worth that the reference (or autograd through any plain loop) holds. It is
plain PyTorch, so it runs on GPUs too (one small kernel per time step there, so slower than
mamba-ssm's fused kernel, which "auto" prefers when it is installed).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BACKENDS = ("auto", "steer", "reference")
BACKEND = "auto"
# target elements of one (chunk, batch, d_inner, d_state) buffer, per device type; the chunk
# length follows from it. On CPU a buffer that fits in L2 (256K fp32 = 1 MiB) was fastest in
# experiments/bench/mamba_scan.py; on GPUs bigger chunks mean fewer, fuller kernels.
CHUNK_ELEMENTS = {"cpu": 1 << 18, "cuda": 1 << 22}
_DEFAULT_CHUNK_ELEMENTS = 1 << 20
_LOG2E = 1.4426950408889634  # log2(e)

_UNSET = object()
_mamba_ssm_fn = _UNSET


def _mamba_ssm_scan():
    """mamba-ssm's `selective_scan_fn`, or None when it cannot be imported. Cached."""
    global _mamba_ssm_fn
    if _mamba_ssm_fn is _UNSET:
        try:
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        except Exception:  # not installed, or a build that fails to load its CUDA extension
            selective_scan_fn = None
        _mamba_ssm_fn = selective_scan_fn
    return _mamba_ssm_fn


def resolve_backend(backend: str | None = None, is_cuda: bool = False) -> str:
    """The backend a call runs on: "mamba_ssm", "steer" or "reference"."""
    backend = BACKEND if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown selective scan backend {backend!r}; expected one of {BACKENDS}")
    if backend == "auto":
        return "mamba_ssm" if is_cuda and _mamba_ssm_scan() is not None else "steer"
    return backend


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True, *,
                   backend: str | None = None, chunk_len: int | None = None):
    """Mamba's selective scan (see the module docstring); returns (batch, d_inner, L) in u's dtype.

    backend: "auto" | "steer" | "reference" (None: the module's BACKEND). chunk_len: time steps
    per chunk of steer's scan (None: from CHUNK_ELEMENTS)."""
    name = resolve_backend(backend, u.is_cuda)
    if name == "mamba_ssm":
        return _mamba_ssm_scan()(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias,
                                 delta_softplus=delta_softplus)
    if name == "reference":
        return selective_scan_reference(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias,
                                        delta_softplus=delta_softplus)
    return _steer_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_len)


def _check_shapes(u, delta, A, B, C):
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must both be (batch, d_inner, L); got {tuple(u.shape)}, {tuple(delta.shape)}")
    batch, dim, length = u.shape
    if A.dim() != 2 or A.shape[0] != dim or A.is_complex():
        raise ValueError(f"A must be a real (d_inner, d_state) = ({dim}, n) tensor; got {tuple(A.shape)} {A.dtype}")
    expected = (batch, A.shape[1], length)
    if tuple(B.shape) != expected or tuple(C.shape) != expected:
        raise ValueError(f"B and C must be (batch, d_state, L) = {expected}; got {tuple(B.shape)}, {tuple(C.shape)}")


def _compute_dtype(dtype):
    return torch.promote_types(dtype, torch.float32)  # float32, or float64 for float64 inputs


def _discretise_inputs(u, delta, delta_bias, delta_softplus):
    cdt = _compute_dtype(u.dtype)
    u, delta = u.to(cdt), delta.to(cdt)
    if delta_bias is not None:
        delta = delta + delta_bias.to(cdt)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return u, delta


def _skip_and_gate(y, u, D, z, dtype_in):
    if D is not None:
        y = y + u * D.to(y.dtype)[:, None]
    if z is not None:
        y = y * F.silu(z)
    return y.to(dtype_in)


def selective_scan_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=True):
    """The selective scan written out directly: discretise the whole sequence, then step through
    it, slicing time step i out of the (batch, d_inner, L, d_state) tensors. Slow (its backward
    is quadratic in L); it is the oracle for tests and the baseline of the benchmark."""
    _check_shapes(u, delta, A, B, C)
    dtype_in = u.dtype
    u, delta = _discretise_inputs(u, delta, delta_bias, delta_softplus)
    cdt = u.dtype
    A, B, C = A.to(cdt), B.to(cdt), C.to(cdt)
    batch, dim, length = u.shape
    decay = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    drive = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    state = A.new_zeros(batch, dim, A.shape[1])
    ys = []
    for i in range(length):
        state = decay[:, :, i] * state + drive[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", state, C[:, :, i]))
    y = torch.stack(ys, dim=2) if ys else u.new_zeros(batch, dim, 0)
    return _skip_and_gate(y, u, D, z, dtype_in)


def default_chunk_len(batch: int, dim: int, dstate: int, length: int, device_type: str = "cpu") -> int:
    """Time steps per chunk of steer's scan: a chunk buffer of about CHUNK_ELEMENTS elements, but
    at least sqrt(L / 3) steps. Backward holds three chunk buffers and forward keeps one state per
    chunk, about (3 T + L / T) * batch * d_inner * d_state elements in all; the floor keeps that
    near its minimum (T = sqrt(L / 3)) when a single step is already bigger than the target."""
    target = CHUNK_ELEMENTS.get(device_type, _DEFAULT_CHUNK_ELEMENTS)
    return max(1, target // max(1, batch * dim * dstate), math.isqrt(length // 3))


def _steer_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_len):
    _check_shapes(u, delta, A, B, C)
    dtype_in = u.dtype
    u, delta = _discretise_inputs(u, delta, delta_bias, delta_softplus)
    cdt = u.dtype
    batch, dim, length = u.shape
    n = A.shape[1]
    if chunk_len is None:
        chunk_len = default_chunk_len(batch, dim, n, length, u.device.type)
    chunk_len = max(1, min(int(chunk_len), max(1, length)))
    y = _ChunkedScan.apply(u, delta, A.to(cdt), B.to(cdt), C.to(cdt), chunk_len)
    return _skip_and_gate(y, u, D, z, dtype_in)


def _time_major(x):
    """(b, c, L) -> contiguous (L, b, c).

    On CPU a 3-d permuted copy from L-contiguous storage is several times slower than torch's
    blockwise copy of a transposed 2-d matrix, so such tensors are transposed one batch element
    at a time and then moved as whole rows."""
    b, c, length = x.shape
    if _rows(x) or x.is_cuda or c == 1 or length == 1:  # rows of c already contiguous
        return x.permute(2, 0, 1).contiguous()
    x = x.contiguous()
    rows = x.new_empty(b, length, c)
    for i in range(b):
        rows[i].copy_(x[i].t())
    return rows.transpose(0, 1).contiguous()


def _batch_major(xt, rows: bool):
    """(L, b, c) contiguous -> (b, c, L), stored as (b, L, c) rows if `rows`, else contiguous."""
    length, b, c = xt.shape
    rows_t = xt.transpose(0, 1).contiguous()  # (b, L, c)
    if rows:
        return rows_t.transpose(1, 2)
    if xt.is_cuda or c == 1 or length == 1:
        return rows_t.transpose(1, 2).contiguous()
    out = xt.new_empty(b, c, length)
    for i in range(b):
        out[i].copy_(rows_t[i].t())
    return out


def _rows(x):
    """Whether a (b, c, L) tensor is stored time-major within each batch element, as (b, L, c)."""
    return x.stride(1) == 1 and x.shape[1] > 1


def _states(decay, states, start):
    """In place: states[t] = decay[t] * states[t-1] + states[t] (states[-1] = start; None = 0).
    On entry `states` holds the drive delta_t B_t u_t; on exit the hidden states h_t."""
    dec, st = decay.unbind(0), states.unbind(0)
    if start is not None:
        st[0].addcmul_(dec[0], start)
    for t in range(1, len(st)):
        st[t].addcmul_(dec[t], st[t - 1])


def _fill_chunk(decay, drive, delta_c, du_c, A_log2e, B_c):
    """decay = exp(delta A), drive = delta u B for one chunk, written into (T, b, d, n) buffers.
    The decay is exp2(delta * A log2(e)), as in mamba-ssm's CUDA kernel: exp2 is about twice as
    fast as exp on CPU, and agrees with it to float rounding."""
    torch.mul(delta_c.unsqueeze(-1), A_log2e, out=decay)
    decay.exp2_()
    torch.mul(du_c.unsqueeze(-1), B_c.unsqueeze(2), out=drive)


def _chunks(length, chunk_len):
    return [(s, min(s + chunk_len, length)) for s in range(0, length, chunk_len)]


class _ChunkedScan(torch.autograd.Function):
    """y_t = <h_t, C_t> with h_t = exp(delta_t A) h_{t-1} + delta_t u_t B_t, h_{-1} = 0.
    u, delta: (b, d, L); A: (d, n); B, C: (b, n, L); all one floating dtype."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, chunk_len):
        b, d, length = u.shape
        n = A.shape[1]
        # time-major copies: a chunk is a contiguous block, a step a contiguous (b, d, n) slab
        delta_t, u_t = _time_major(delta), _time_major(u)  # (L, b, d)
        B_t, C_t = _time_major(B), _time_major(C)  # (L, b, n)
        du_t = delta_t * u_t
        A_log2e = A * _LOG2E
        y_t = u.new_empty(length, b, d)
        chunks = _chunks(length, chunk_len)
        # the state before each chunk, kept for backward (the first is never read: chunk 0 starts
        # from zero); without gradients one slot, overwritten chunk by chunk, is enough
        keep_starts = any(ctx.needs_input_grad[:5])
        starts = u.new_empty(max(1, len(chunks)) if keep_starts else 1, b, d, n)
        T = min(chunk_len, length)
        decay, hidden = u.new_empty(T, b, d, n), u.new_empty(T, b, d, n)
        for k, (s, e) in enumerate(chunks):
            t = e - s
            dec, hid = decay[:t], hidden[:t]
            _fill_chunk(dec, hid, delta_t[s:e], du_t[s:e], A_log2e, B_t[s:e])
            _states(dec, hid, starts[k if keep_starts else 0] if k else None)
            # y_t = <h_t, C_t>, as (1, n) @ (n, d) products (much faster than (d, n) @ (n, 1) on CPU)
            torch.bmm(C_t[s:e].view(t * b, 1, n), hid.view(t * b, d, n).transpose(1, 2),
                      out=y_t[s:e].view(t * b, 1, d))
            if k + 1 < len(chunks):
                starts[k + 1 if keep_starts else 0].copy_(hid[t - 1])
        ctx.chunk_len = chunk_len
        ctx.layouts = (_rows(u), _rows(delta), _rows(B), _rows(C))  # gradients come back alike
        ctx.save_for_backward(delta_t, u_t, du_t, A, B_t, C_t, starts)
        return _batch_major(y_t, _rows(u))

    @staticmethod
    def backward(ctx, dy):
        delta_t, u_t, du_t, A, B_t, C_t, starts = ctx.saved_tensors
        chunk_len = ctx.chunk_len
        length, b, d = delta_t.shape
        n = A.shape[1]
        need_u, need_delta, need_A, need_B, need_C = ctx.needs_input_grad[:5]
        dy_t = _time_major(dy.to(delta_t.dtype))  # (L, b, d)
        g_du = torch.empty_like(delta_t)  # dLoss / d(delta u)
        g_delta = torch.empty_like(delta_t)  # the part through exp(delta A)
        g_B = torch.empty_like(B_t) if need_B else None
        g_C = torch.empty_like(C_t) if need_C else None
        g_A = A.new_zeros(d * n)
        A_log2e = A * _LOG2E
        T = min(chunk_len, length)
        decay, hidden, grad = (delta_t.new_empty(T, b, d, n) for _ in range(3))
        carry = None  # exp(delta_{s'} A) g_{s'} at the first step s' of the chunk after this one
        chunks = _chunks(length, chunk_len)
        for k in range(len(chunks) - 1, -1, -1):
            s, e = chunks[k]
            t = e - s
            dec, hid, g = decay[:t], hidden[:t], grad[:t]
            start = starts[k] if k else None
            _fill_chunk(dec, hid, delta_t[s:e], du_t[s:e], A_log2e, B_t[s:e])
            _states(dec, hid, start)
            if need_C:  # dC_t = sum_d dy_t h_t
                torch.bmm(dy_t[s:e].view(t * b, 1, d), hid.view(t * b, d, n), out=g_C[s:e].view(t * b, 1, n))
            # g_t = C_t dy_t + decay_{t+1} g_{t+1}, run backwards through the chunk
            torch.mul(dy_t[s:e].unsqueeze(-1), C_t[s:e].unsqueeze(2), out=g)
            if carry is not None:
                g[t - 1].add_(carry)
            dec_steps, g_steps = dec.unbind(0), g.unbind(0)
            for i in range(t - 2, -1, -1):
                g_steps[i].addcmul_(dec_steps[i + 1], g_steps[i + 1])
            # through the drive delta u B: d(delta u) = sum_n g B, dB = sum_d g delta u
            torch.bmm(B_t[s:e].view(t * b, 1, n), g.view(t * b, d, n).transpose(1, 2),
                      out=g_du[s:e].view(t * b, 1, d))
            if need_B:
                torch.bmm(du_t[s:e].view(t * b, 1, d), g.view(t * b, d, n), out=g_B[s:e].view(t * b, 1, n))
            # through the decay: q_t = g_t * h_{t-1} * exp(delta_t A) = dLoss / d(delta_t A)
            q = dec.mul_(g)
            if k:
                carry = q[0].clone()
            q[1:].mul_(hid[:-1])
            if start is None:
                q[0].zero_()
            else:
                q[0].mul_(start)
            torch.sum(torch.mul(q, A, out=hid), dim=-1, out=g_delta[s:e])  # hid is free now
            if need_A:
                g_A += q.mul_(delta_t[s:e].unsqueeze(-1)).view(t * b, d * n).sum(0)
        u_rows, delta_rows, B_rows, C_rows = ctx.layouts
        grad_u = grad_delta = grad_A = grad_B = grad_C = None
        if need_delta:
            grad_delta = _batch_major(g_delta.addcmul_(g_du, u_t), delta_rows)
        if need_u:
            grad_u = _batch_major(g_du.mul_(delta_t), u_rows)
        if need_B:
            grad_B = _batch_major(g_B, B_rows)
        if need_C:
            grad_C = _batch_major(g_C, C_rows)
        if need_A:
            grad_A = g_A.view(d, n)
        return grad_u, grad_delta, grad_A, grad_B, grad_C, None
