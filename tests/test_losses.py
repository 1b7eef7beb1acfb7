"""Masked L2 and masked LPIPS (steer.losses)."""
import pytest
import torch

from steer.errors import SteerError
from steer.losses import MaskedLPIPS, masked_l2, masked_l2_per_sample


def _pair(n=2, c=3, size=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=gen) * 2 - 1, torch.rand(n, c, size, size, generator=gen) * 2 - 1


# --------------------------------------------------------------------------- masked L2

def test_masked_l2_hand_computed_single_channel():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    b = torch.tensor([[0.0, 1.0], [1.0, -6.0]]).reshape(1, 1, 2, 2)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]]).reshape(1, 1, 2, 2)
    # (1^2 + 1^2 + 2^2) / 3; the masked pixel (diff 10) does not count
    assert masked_l2(a, b, mask).item() == pytest.approx(6.0 / 3.0)
    assert masked_l2_per_sample(a, b, mask).tolist() == pytest.approx([2.0])


def test_masked_l2_hand_computed_three_channels():
    a = torch.zeros(1, 3, 2, 2)
    b = torch.zeros(1, 3, 2, 2)
    b[0, 0] = 1.0          # channel 0 differs by 1 everywhere
    b[0, 2, 0, 0] = 3.0    # channel 2 differs by 3 at (0, 0)
    b[0, 1, 1, 1] = 100.0  # channel 1 differs at the masked pixel only
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]]).reshape(1, 1, 2, 2)
    # the (N,1,H,W) mask covers every channel: 3 pixels x 3 channels = 9 terms
    expected = (3 * 1.0 + 9.0) / 9.0
    assert masked_l2(a, b, mask).item() == pytest.approx(expected)


def test_masked_l2_full_mask_is_mse():
    a, b = _pair()
    full = torch.ones(2, 1, 8, 8)
    torch.testing.assert_close(masked_l2(a, b, full), torch.nn.functional.mse_loss(a, b))
    torch.testing.assert_close(masked_l2_per_sample(a, b, full), (a - b).square().mean((1, 2, 3)))


def test_masked_l2_ignores_masked_pixels_completely():
    a, b = _pair()
    mask = torch.ones(2, 1, 8, 8)
    mask[..., :, :3] = 0
    mask[1, :, 5:, :] = 0
    base = masked_l2(a, b, mask)
    base_per = masked_l2_per_sample(a, b, mask)
    a2, b2 = a.clone(), b.clone()
    off = (mask == 0).expand_as(a)
    a2[off] = 37.0
    b2[off] = -12.0
    assert masked_l2(a2, b2, mask).item() == pytest.approx(base.item(), rel=1e-6)
    torch.testing.assert_close(masked_l2_per_sample(a2, b2, mask), base_per)
    # it is the mean over exactly the unmasked pixels
    on = (mask == 1).expand_as(a)
    assert base.item() == pytest.approx((a - b).square()[on].mean().item(), rel=1e-6)
    # while a change inside the mask does change it
    a3 = a.clone()
    a3[0, 0, 4, 4] += 1.0
    assert masked_l2(a3, b, mask).item() != pytest.approx(base.item(), rel=1e-6)


def test_masked_l2_per_sample_hand_computed():
    a = torch.zeros(2, 1, 2, 2)
    b = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[2.0, 2.0], [2.0, 5.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[1.0, 1.0], [1.0, 0.0]]]])
    per = masked_l2_per_sample(a, b, mask)
    assert per.shape == (2,)
    assert per.tolist() == pytest.approx([1.0, 4.0])
    # the batch value weights every unmasked pixel equally, not every sample
    assert masked_l2(a, b, mask).item() == pytest.approx((1.0 + 3 * 4.0) / 4.0)


def test_masked_l2_backpropagates_only_through_unmasked_pixels():
    a, b = _pair()
    a.requires_grad_(True)
    mask = torch.ones(2, 1, 8, 8)
    mask[..., :2] = 0
    masked_l2(a, b, mask).backward()
    assert torch.all(a.grad[..., :2] == 0)
    n = mask.expand_as(a).sum()
    torch.testing.assert_close(a.grad[..., 2:], (2 * (a - b) / n)[..., 2:].detach())


# --------------------------------------------------------------------------- masked LPIPS

@pytest.fixture(scope="module")
def random_lpips():
    torch.manual_seed(0)
    return MaskedLPIPS(backbone="random")


def test_lpips_random_identical_zero_different_positive(random_lpips):
    a, b = _pair(size=32, seed=1)
    same = random_lpips(a, a.clone())
    assert same.dim() == 0
    assert same.item() == pytest.approx(0.0, abs=1e-7)
    assert random_lpips(a, b).item() > 1e-4


def test_lpips_random_ignores_masked_out_differences(random_lpips):
    a, b = _pair(size=32, seed=2)
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    b_same_inside = a.clone()
    b_same_inside[(mask == 0).expand_as(a)] = b[(mask == 0).expand_as(a)]
    # unmasked: the border differences count
    assert random_lpips(a, b_same_inside).item() > 1e-4
    # masked: a and b agree wherever the mask is 1
    assert random_lpips(a, b_same_inside, mask).item() == pytest.approx(0.0, abs=1e-7)
    # and a masked loss does not move when pixels outside the mask change
    base = random_lpips(a, b, mask)
    b2 = b.clone()
    b2[(mask == 0).expand_as(b)] = 0.9
    assert random_lpips(a, b2, mask).item() == pytest.approx(base.item(), rel=1e-6, abs=1e-8)
    assert base.item() > 1e-4


def test_lpips_random_backpropagates_to_input(random_lpips):
    a, b = _pair(size=32, seed=3)
    a.requires_grad_(True)
    mask = torch.ones(2, 1, 32, 32)
    mask[..., :, :4] = 0
    random_lpips(a, b, mask).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    assert a.grad.abs().sum() > 0
    assert torch.all(a.grad[..., :4] == 0)  # masked pixels get no gradient
    # the network itself stays frozen
    assert all(not p.requires_grad for p in random_lpips.parameters())


def test_lpips_pretrained_missing_weights_names_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(SteerError) as info:
        MaskedLPIPS(backbone="pretrained")
    assert "alexnet-owt-7be5be79.pth" in str(info.value)
    assert str(tmp_path) in str(info.value)  # says where the file goes
    assert list(tmp_path.rglob("*.pth")) == []  # nothing was downloaded


def test_lpips_unknown_network():
    with pytest.raises(SteerError):
        MaskedLPIPS(net="squeezenet", backbone="random")
