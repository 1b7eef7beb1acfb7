"""The DSS-GAN subvector probe on generators whose answers are known."""
import math

import pytest
import torch

from steer.generators.base import Generator
from steer.generators.dssgan.configs import small_config
from steer.generators.dssgan.generator import DSSGANGenerator, init_for_training
from steer.probe import ORIENTATIONS, orientation_shares, perturbation_probe, routing_probe, run_probe


def lines(kind: str, size: int = 32, period: float = 8.0):
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    phase = {"horizontal": y, "vertical": x, "slash": x + y, "backslash": x - y}
    return torch.cos(2 * math.pi * phase[kind] / period).expand(1, 3, size, size)


@pytest.mark.parametrize("kind", ORIENTATIONS)
def test_orientation_shares_name_the_lines(kind):
    shares = orientation_shares(lines(kind))[0]
    assert shares.sum().item() == pytest.approx(1.0)
    assert shares[ORIENTATIONS.index(kind)] > 0.99, shares


class StripesGenerator(Generator):
    """z = [z_base (4) | row_fwd (4) | col_fwd (4)]. row_fwd only changes horizontal
    stripes; z_base and col_fwd change the same isotropic Gaussian blobs."""

    name, resolution, latent_dim, num_classes = "stripes", 32, 12, 0

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a device to report
        y, x = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
        self.register_buffer("y", y)
        self.register_buffer("x", x)
        centres = torch.rand(8, 2, generator=torch.Generator().manual_seed(1)) * 24 + 4
        self.register_buffer("centres", centres)

    def latent_layout(self):
        return {"z_base": slice(0, 4), "row_fwd": slice(4, 8), "col_fwd": slice(8, 12)}

    def blobs(self, w, offset):
        out = 0
        for i in range(4):
            cy, cx = self.centres[offset + i]
            bump = torch.exp(-((self.y - cy) ** 2 + (self.x - cx) ** 2) / 8.0)
            out = out + w[:, i, None, None] * bump
        return out

    def synthesize(self, latent, classes=None, space=None):
        stripes = sum(latent[:, 4 + k, None, None] * torch.cos(2 * math.pi * (k + 2) * self.y / 32)
                      for k in range(4))
        image = 0.1 * (stripes + self.blobs(latent[:, :4], 0) + self.blobs(latent[:, 8:], 0))
        return torch.tanh(image)[:, None].expand(-1, 3, -1, -1)


def test_probe_finds_the_horizontal_subvector_and_nothing_else():
    G = StripesGenerator()
    z, _ = G.sample(48, seed=0)
    result = perturbation_probe(G, z, None, sigma=1.0, seed=0)
    row, col = result["scores"]["row_fwd"], result["scores"]["col_fwd"]
    assert row["orientation"] == "horizontal" and col["orientation"] == "vertical"
    assert row["vs_z_base"]["score"] > 0.5 and row["vs_z_base"]["ci95"][0] > 0.4, row
    # the spread control moves row_fwd's chunk too, so it is striped itself: a smaller lead
    assert 0 < row["vs_all_directions"]["ci95"][0] < row["vs_all_directions"]["score"] < 0.5, row
    for control in ("vs_z_base", "vs_all_directions"):
        assert row[control]["p_permutation"] < 0.01
    # col_fwd moves the same blobs as z_base: no vertical specialisation against z_base
    assert abs(col["vs_z_base"]["score"]) < 0.05 and col["vs_z_base"]["ci95"][0] < 0 < col["vs_z_base"]["ci95"][1]
    assert col["vs_z_base"]["p_permutation"] > 0.05
    assert result["mean_shares"]["row_fwd"][0] > 0.95  # horizontal
    # each of row_fwd's coordinates is a horizontal stripe of its own
    assert all(shares[0] > 0.99 for shares in result["coordinates"]["row_fwd"])


def small_dssgan(directions=("row_fwd", "col_fwd", "diag_left")):
    torch.manual_seed(0)
    G = init_for_training(DSSGANGenerator(small_config(16, 4, channels=[16, 8], d_state=4, directions=directions)))
    return G.eval().requires_grad_(False)


def test_routing_reports_uniform_for_uniform_routing_and_the_softmax_otherwise():
    G = small_dssgan()
    for module in G.modules():  # no z or class dependence: routing is softmax(base_weights / T)
        if hasattr(module, "class_routing_proj"):
            module.class_routing_proj.weight.zero_()
            module.direction_weighting.z_to_weights.weight.zero_()  # Xavier after init_for_training
    z, classes = G.sample(16, seed=0)
    report = routing_probe(G, z, classes)
    assert set(report) == {"mamba_8x8.0", "mamba_8x8.1"}
    for entry in report.values():
        assert entry["entropy"] == pytest.approx(1.0, abs=1e-6)
        assert entry["max_deviation_from_uniform"] == pytest.approx(0.0, abs=1e-6)
        assert entry["mean_weights"] == pytest.approx([1 / 3] * 3, abs=1e-6)
    G.mamba_8x8[1].direction_weighting.base_weights.copy_(torch.tensor([3.0, 0.0, 0.0]))
    expected = torch.softmax(torch.tensor([3.0, 0.0, 0.0]) / G.temperature, 0)
    entry = routing_probe(G, z, classes)["mamba_8x8.1"]
    assert entry["mean_weights"] == pytest.approx(expected.tolist(), abs=1e-6)
    assert entry["max_deviation_from_uniform"] == pytest.approx((expected - 1 / 3).abs().max().item(), abs=1e-6)
    assert entry["entropy"] < 0.9 and set(entry["per_class"]) <= {"0", "1", "2", "3"}


def test_one_direction_routing_has_no_entropy_to_report():
    """The one-direction baseline: its softmax is 1 whatever it sees, so the normalised entropy
    (0 / log 1) is reported as undefined rather than as a number."""
    G = small_dssgan(("row_fwd",))
    z, classes = G.sample(8, seed=0)
    for entry in routing_probe(G, z, classes).values():
        assert entry["entropy"] is None and entry["mean_weights"] == pytest.approx([1.0])
        assert entry["max_deviation_from_uniform"] == pytest.approx(0.0)


def test_full_probe_on_a_small_dssgan_covers_every_part():
    G = small_dssgan(("row_fwd", "col_fwd"))
    result = run_probe(G, samples=8, sigma=1.0, seed=0)
    assert set(result["perturbation"]["scores"]) == {"row_fwd", "col_fwd"}
    assert set(result["scales"]["mean_shares"]) == {"8"}
    assert set(result["class_override"]) == {"row_fwd", "col_fwd", "row_fwd+col_fwd"}
    # the all-directions override is the reference of the pixel movement
    assert result["class_override"]["row_fwd+col_fwd"]["pixel_movement"] == pytest.approx(1.0)
    # the per-stage latent only reaches that stage: feeding the unperturbed z changes nothing
    z, classes = G.sample(2, seed=1)
    same = G.synthesize(z, classes, stage_latents={8: z})
    assert torch.equal(same, G.synthesize(z, classes))
    moved = G.synthesize(z, classes, stage_latents={8: z + 1})
    assert not torch.allclose(moved, same)


def test_probe_command_writes_json_and_figures(tmp_path):
    import json

    from steer.generators.registry import save_generator
    from tests.conftest import assert_user_error, run_steer

    save_generator(small_dssgan(("row_fwd", "col_fwd")), tmp_path / "tiny", "# tiny\n")
    result = run_steer("probe", "--model", str(tmp_path / "tiny"), "--samples", "6", "--out", str(tmp_path / "p"),
                       "--device", "cpu")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "p" / "probe.json").read_text())
    assert set(report["perturbation"]["scores"]) == {"row_fwd", "col_fwd"} and "routing" in report
    for name in ("orientations", "examples", "routing", "class_override"):
        assert (tmp_path / "p" / f"{name}.png").stat().st_size > 1000
    assert "row_fwd" in result.stdout and "routing mamba_8x8.0" in result.stdout
    assert_user_error(run_steer("probe", "--model", "dcgan-shapes32", "--out", str(tmp_path / "q")), "not a DSS-GAN")
