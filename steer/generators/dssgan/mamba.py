"""Mamba (Gu & Dao) in plain PyTorch, with the parameter names of mamba-ssm's `Mamba`, so
official state_dicts load with strict=True. The selective scan (`scan.selective_scan`)
computes the reference maths:

    delta = softplus(dt + dt_bias);  h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t
    y_t = C_t . h_t + D u_t;         out = y * silu(z)

with steer's own chunked scan, or mamba-ssm's CUDA kernel (the `cuda` extra) for CUDA tensors
when it is installed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .scan import selective_scan

__all__ = ["Mamba", "MambaBlock", "selective_scan"]


class Mamba(nn.Module):
    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: float = 2,
                 dt_rank: int | str = "auto", conv_bias: bool = True, bias: bool = False):
        super().__init__()
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        # S4D-real initialisation: A = -(1..d_state) per channel, stored as its log
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def forward(self, hidden):
        """hidden: (batch, L, d_model) -> (batch, L, d_model)."""
        length = hidden.shape[1]
        x, z = self.in_proj(hidden).transpose(1, 2).chunk(2, dim=1)  # (batch, d_inner, L) each
        x = F.silu(self.conv1d(x)[..., :length])  # causal: keep the first L outputs
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (dt @ self.dt_proj.weight.T).transpose(1, 2)  # the bias goes in as delta_bias
        y = selective_scan(x, dt, -torch.exp(self.A_log.float()), B.transpose(1, 2), C.transpose(1, 2),
                           self.D, z=z, delta_bias=self.dt_proj.bias, delta_softplus=True)
        return self.out_proj(y.transpose(1, 2))


class MambaBlock(nn.Module):
    """Pre-norm residual Mamba: x + mamba(layernorm(x)) (official name RealVisionMambaBlock)."""

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: float = 2, dt_rank="auto"):
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(dim)
        self.mamba = Mamba(dim, d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank)

    def forward(self, x):
        return x + self.mamba(self.norm(x))
