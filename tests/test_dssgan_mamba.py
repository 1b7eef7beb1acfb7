"""steer's Mamba against the official DSS-GAN token stage (fixture made by the official code)."""
import numpy as np
import torch
from safetensors.torch import load_file

from steer.generators.dssgan import MambaBlock, selective_scan
from tests.test_safe_pickle import FIXTURES, needs_fixtures


@needs_fixtures
def test_token_stage_mamba_blocks_match_official():
    folder = FIXTURES / "dssgan_official"
    state = load_file(str(folder / "state_dict.safetensors"))
    intermediates = np.load(folder / "intermediates.npz")
    x = torch.from_numpy(intermediates["tok.pos_enc_out"])
    for i in range(2):
        prefix = f"mamba_tokens.{i}."
        block = MambaBlock(24, d_state=8, d_conv=4, expand=2)
        block.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
        with torch.no_grad():
            x = block(x)
        expected = torch.from_numpy(intermediates[f"tok.mamba_tokens.{i}.out"])
        assert (x - expected).abs().max() < 1e-5


def test_selective_scan_matches_a_direct_loop():
    torch.manual_seed(0)
    b, d, n, length = 2, 3, 4, 5
    u, delta, z = torch.randn(b, d, length), torch.randn(b, d, length), torch.randn(b, d, length)
    A, B, C = -torch.rand(d, n), torch.randn(b, n, length), torch.randn(b, n, length)
    D, bias = torch.randn(d), torch.randn(d)
    out = selective_scan(u, delta, A, B, C, D, z=z, delta_bias=bias)
    expected = torch.empty(b, d, length)
    for i in range(b):
        for c in range(d):
            h = torch.zeros(n)
            for t in range(length):
                step = torch.nn.functional.softplus(delta[i, c, t] + bias[c])
                h = torch.exp(step * A[c]) * h + step * B[i, :, t] * u[i, c, t]
                y = (h * C[i, :, t]).sum() + D[c] * u[i, c, t]
                expected[i, c, t] = y * torch.nn.functional.silu(z[i, c, t])
    assert torch.allclose(out, expected, atol=1e-5)


def test_mamba_is_causal_and_differentiable():
    torch.manual_seed(0)
    block = MambaBlock(8, d_state=4, d_conv=3, expand=1.5)
    x = torch.randn(2, 10, 8, requires_grad=True)
    y = block(x)
    y[:, 4].sum().backward()
    assert x.grad[:, 5:].abs().max() == 0 and x.grad[:, :5].abs().max() > 0
