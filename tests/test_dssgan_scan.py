"""steer's chunked selective scan against the direct reference loop: values, gradients, dispatch."""
import pytest
import torch
import torch.nn.functional as F

from steer.generators.dssgan import scan
from steer.generators.dssgan.scan import selective_scan, selective_scan_reference

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(batch, dim, dstate, length, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = {
        "u": torch.randn(batch, dim, length, generator=g),
        "delta": torch.randn(batch, dim, length, generator=g),
        "A": -(0.1 + 2 * torch.rand(dim, dstate, generator=g)),
        "B": torch.randn(batch, dstate, length, generator=g),
        "C": torch.randn(batch, dstate, length, generator=g),
        "D": torch.randn(dim, generator=g),
        "z": torch.randn(batch, dim, length, generator=g),
        "delta_bias": 0.5 * torch.randn(dim, generator=g),
    }
    return {k: v.to(dtype) for k, v in x.items()}


def call(fn, x, use_z=True, use_D=True, use_bias=True, **kwargs):
    return fn(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"] if use_D else None,
              z=x["z"] if use_z else None, delta_bias=x["delta_bias"] if use_bias else None, **kwargs)


def leaves(x):
    return {k: v.detach().clone().requires_grad_() for k, v in x.items()}


def grads(fn, x, weight, **kwargs):
    x = leaves(x)
    out = call(fn, x, **kwargs)
    (out * weight).sum().backward()
    return out.detach(), {k: (v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in x.items()}


def test_reference_matches_a_scalar_loop():
    """The oracle itself, against the recurrence written out one channel and one step at a time."""
    x = make_inputs(2, 3, 4, 6)
    out = selective_scan_reference(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], z=x["z"],
                                   delta_bias=x["delta_bias"])
    expected = torch.empty(2, 3, 6)
    for b in range(2):
        for c in range(3):
            h = torch.zeros(4)
            for t in range(6):
                step = F.softplus(x["delta"][b, c, t] + x["delta_bias"][c])
                h = torch.exp(step * x["A"][c]) * h + step * x["B"][b, :, t] * x["u"][b, c, t]
                y = (h * x["C"][b, :, t]).sum() + x["D"][c] * x["u"][b, c, t]
                expected[b, c, t] = y * F.silu(x["z"][b, c, t])
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("shape, chunk_len", [
    ((2, 5, 4, 23), 4),     # L not a multiple of the chunk
    ((3, 7, 3, 16), 16),    # one chunk exactly
    ((1, 4, 6, 9), 1),      # one step per chunk
    ((2, 6, 5, 40), None),  # the default chunk length
    ((1, 3, 2, 1), 3),      # L = 1
])
@pytest.mark.parametrize("use_z, use_D, use_bias", [(True, True, True), (False, False, False), (True, False, True)])
def test_forward_and_gradients_match_the_reference(shape, chunk_len, use_z, use_D, use_bias):
    x = make_inputs(*shape, seed=sum(shape))
    flags = dict(use_z=use_z, use_D=use_D, use_bias=use_bias)
    weight = torch.randn(shape[0], shape[1], shape[3], generator=torch.Generator().manual_seed(7))
    out, g = grads(selective_scan, x, weight, backend="steer", chunk_len=chunk_len, **flags)
    ref_out, ref_g = grads(selective_scan_reference, x, weight, **flags)
    assert out.shape == ref_out.shape and out.dtype == ref_out.dtype
    assert torch.allclose(out, ref_out, atol=1e-5, rtol=1e-5)
    for name in NAMES:
        scale = ref_g[name].abs().max().clamp_min(1.0)
        assert torch.allclose(g[name], ref_g[name], atol=1e-5 * scale, rtol=1e-4), name
    if use_z and use_D and use_bias and shape[3] > 1:  # (at L = 1 the decay, so A, has no effect)
        assert all(ref_g[name].abs().max() > 0 for name in NAMES)  # every input is really tested


def test_without_softplus_and_with_transposed_layouts():
    """delta_softplus=False, and inputs stored (batch, L, channels) as in Mamba's projections."""
    x = make_inputs(2, 6, 3, 11, seed=3)
    x["delta"] = x["delta"].abs() + 0.05  # a positive step without softplus
    x = {k: (v.transpose(1, 2).contiguous().transpose(1, 2) if v.dim() == 3 else v) for k, v in x.items()}
    weight = torch.randn(2, 6, 11)
    out, g = grads(selective_scan, x, weight, backend="steer", chunk_len=4, delta_softplus=False)
    ref_out, ref_g = grads(selective_scan_reference, x, weight, delta_softplus=False)
    assert torch.allclose(out, ref_out, atol=1e-5)
    for name in NAMES:
        assert torch.allclose(g[name], ref_g[name], atol=1e-4, rtol=1e-4), name


def test_gradcheck_float64():
    x = make_inputs(2, 3, 2, 7, seed=11, dtype=torch.float64)
    x = leaves(x)

    def fn(u, delta, A, B, C, D, z, delta_bias):
        return selective_scan(u, delta, A, B, C, D, z=z, delta_bias=delta_bias, backend="steer", chunk_len=3)

    assert fn(*(x[k] for k in NAMES)).dtype == torch.float64
    assert torch.autograd.gradcheck(fn, tuple(x[k] for k in NAMES), eps=1e-6, atol=1e-6)


def test_results_do_not_depend_on_the_chunk_length():
    x = make_inputs(2, 4, 3, 30, seed=5)
    weight = torch.randn(2, 4, 30)
    out0, g0 = grads(selective_scan, x, weight, backend="steer", chunk_len=30)
    for chunk_len in (1, 2, 7, 29, 100):
        out, g = grads(selective_scan, x, weight, backend="steer", chunk_len=chunk_len)
        assert torch.allclose(out, out0, atol=1e-6), chunk_len
        for name in NAMES:
            assert torch.allclose(g[name], g0[name], atol=1e-5, rtol=1e-5), (chunk_len, name)


def test_low_precision_inputs_come_back_in_their_dtype():
    x = make_inputs(2, 4, 3, 10, seed=2)
    x16 = {k: (v.to(torch.bfloat16) if k in ("u", "delta", "B", "C", "z") else v) for k, v in x.items()}
    out = call(selective_scan, x16, backend="steer", chunk_len=4)
    ref = call(selective_scan_reference, x16)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), ref.float(), atol=1e-2, rtol=1e-2)


def test_default_chunk_length():
    assert scan.default_chunk_len(8, 128, 16, 1024) == max(scan.CHUNK_ELEMENTS["cpu"] // (8 * 128 * 16), 18)
    # one step bigger than the target: the sqrt(L / 3) floor bounds the saved chunk-boundary states
    assert scan.default_chunk_len(64, 168, 48, 16384) == 73


def test_shape_errors_are_clear():
    x = make_inputs(2, 3, 4, 5)
    with pytest.raises(ValueError, match="B and C"):
        selective_scan(x["u"], x["delta"], x["A"], x["B"][:, :2], x["C"], backend="steer")
    with pytest.raises(ValueError, match="backend"):
        selective_scan(x["u"], x["delta"], x["A"], x["B"], x["C"], backend="triton")


def test_dispatch_picks_steer_on_cpu(monkeypatch):
    calls = []

    def fake_kernel(*args, **kwargs):
        calls.append(kwargs)
        return args[0]

    monkeypatch.setattr(scan, "_mamba_ssm_fn", fake_kernel)  # as if mamba-ssm were installed
    assert scan.resolve_backend("auto", is_cuda=False) == "steer"
    assert scan.resolve_backend("auto", is_cuda=True) == "mamba_ssm"
    assert scan.resolve_backend("reference", is_cuda=True) == "reference"
    x = make_inputs(2, 3, 4, 5)
    out = call(selective_scan, x)  # CPU tensors: never the CUDA kernel, even when it imports
    assert not calls
    assert torch.allclose(out, call(selective_scan_reference, x), atol=1e-5)
    monkeypatch.setattr(scan, "BACKEND", "reference")  # the module-level default
    assert scan.resolve_backend(None, is_cuda=True) == "reference"
    monkeypatch.setattr(scan, "_mamba_ssm_fn", None)  # mamba-ssm missing: steer on CUDA too
    assert scan.resolve_backend("auto", is_cuda=True) == "steer"


def test_mamba_ssm_is_looked_up_lazily_and_once(monkeypatch):
    import builtins
    real_import, seen = builtins.__import__, []

    def tracking_import(name, *args, **kwargs):
        if name.startswith("mamba_ssm"):
            seen.append(name)
            raise ImportError("no mamba_ssm here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(scan, "_mamba_ssm_fn", scan._UNSET)
    monkeypatch.setattr(builtins, "__import__", tracking_import)
    assert scan.resolve_backend("steer", is_cuda=True) == "steer" and not seen  # not needed: not imported
    assert scan._mamba_ssm_scan() is None and scan._mamba_ssm_scan() is None
    assert len(seen) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_steer_scan_on_cuda_matches_the_reference():
    x = {k: v.cuda() for k, v in make_inputs(2, 16, 8, 100, seed=4).items()}
    weight = torch.randn(2, 16, 100, generator=torch.Generator().manual_seed(3)).cuda()
    out, g = grads(selective_scan, x, weight, backend="steer", chunk_len=32)
    ref_out, ref_g = grads(selective_scan_reference, x, weight)
    assert out.is_cuda and torch.allclose(out, ref_out, atol=1e-5, rtol=1e-5)
    for name in NAMES:
        scale = ref_g[name].abs().max().clamp_min(1.0)
        assert g[name].is_cuda and torch.allclose(g[name], ref_g[name], atol=1e-5 * scale, rtol=1e-4), name


def test_without_gradients_the_scan_keeps_one_start_state_and_agrees():
    x = make_inputs(2, 4, 3, 40, seed=3)
    with torch.no_grad():
        out = call(selective_scan, x, backend="steer", chunk_len=7)  # six chunk boundaries, one slot
    assert torch.allclose(out, call(selective_scan_reference, x), atol=1e-5)
    assert torch.equal(out, call(selective_scan, leaves(x), backend="steer", chunk_len=7).detach())
