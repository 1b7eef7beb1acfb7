"""The FLOP count and matmul ceiling the benchmarks print GFLOP/s against, and their child timer."""
import subprocess

import pytest
import torch

from steer.bench import counted_gflop, matmul_peak_gflops, steer_wall_seconds


def test_counted_gflop_is_two_per_multiply_add_of_convolutions_and_products():
    conv = torch.nn.Conv2d(3, 8, 3)
    x = torch.randn(2, 3, 10, 10)
    a, b = torch.randn(5, 7), torch.randn(7, 11)
    flops = counted_gflop(lambda: (conv(x), a @ b, torch.exp(x))) * 1e9  # exp is not counted
    assert round(flops) == 2 * (2 * 8 * 8 * 8 * 3 * 9) + 2 * 5 * 7 * 11


def test_matmul_peak_is_a_positive_rate():
    assert matmul_peak_gflops(size=128, repeats=2) > 0.01


def test_steer_wall_seconds_times_a_real_child_and_raises_on_its_failure():
    assert 0 < steer_wall_seconds(["--help"]) < 60
    with pytest.raises(subprocess.CalledProcessError):
        steer_wall_seconds(["no-such-command"])
