"""Hand-computed checks of the image edits and their alpha conventions (steer.edits)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from steer.edits import EDITS, brightness, colour, get_edit, rotate, shift_x, shift_y, zoom
from steer.errors import SteerError

S = 32
TOL = 1e-5


def _image(n=2, size=S, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=gen) * 2 - 1


def _ramp_fn(size=S):
    """An image linear in x (column) and y (row), different per channel, in (-1, 1)."""
    cx = torch.tensor([0.020, -0.015, 0.010]).reshape(1, 3, 1, 1)
    cy = torch.tensor([0.010, 0.020, -0.025]).reshape(1, 3, 1, 1)
    c0 = torch.tensor([-0.3, -0.2, 0.4]).reshape(1, 3, 1, 1)

    def at(xs, ys):
        """The ramp evaluated at (possibly fractional) column coords xs and row coords ys."""
        return c0 + cx * xs.reshape(1, 1, 1, -1) + cy * ys.reshape(1, 1, -1, 1)

    grid = torch.arange(size, dtype=torch.float32)
    return at(grid, grid), at


# --------------------------------------------------------------------------- shifts

@pytest.mark.parametrize("k", [1, 3, 7, 16, -1, -5, -16])
def test_shift_x_moves_content_by_whole_pixels(k):
    x = _image()
    out, mask = shift_x(x, float(k))
    assert out.shape == x.shape and mask.shape == (2, 1, S, S)
    if k > 0:  # content moves right: out[..., j] = x[..., j - k]
        torch.testing.assert_close(out[..., k:], x[..., :S - k], atol=TOL, rtol=0)
        assert torch.all(mask[..., :k] == 0)
        assert torch.all(mask[..., k:] == 1)
    else:
        m = -k
        torch.testing.assert_close(out[..., :S - m], x[..., m:], atol=TOL, rtol=0)
        assert torch.all(mask[..., S - m:] == 0)
        assert torch.all(mask[..., :S - m] == 1)
    assert mask.sum().item() == 2 * S * (S - abs(k))


@pytest.mark.parametrize("k", [1, 4, 16, -2, -9, -16])
def test_shift_y_moves_content_by_whole_pixels(k):
    x = _image()
    out, mask = shift_y(x, float(k))
    if k > 0:  # content moves down: out[..., i, :] = x[..., i - k, :]
        torch.testing.assert_close(out[..., k:, :], x[..., :S - k, :], atol=TOL, rtol=0)
        assert torch.all(mask[..., :k, :] == 0)
        assert torch.all(mask[..., k:, :] == 1)
    else:
        m = -k
        torch.testing.assert_close(out[..., :S - m, :], x[..., m:, :], atol=TOL, rtol=0)
        assert torch.all(mask[..., S - m:, :] == 0)
        assert torch.all(mask[..., :S - m, :] == 1)
    assert mask.sum().item() == 2 * S * (S - abs(k))


def test_shift_of_a_single_marker_pixel():
    x = -torch.ones(1, 3, S, S)
    x[..., 10, 12] = 1.0
    out, _ = shift_x(x, 5.0)
    assert out[0, :, 10, 17].min() > 1 - TOL
    assert (out[0, :, 10, 12] < -1 + TOL).all()
    out, _ = shift_y(x, -4.0)
    assert out[0, :, 6, 12].min() > 1 - TOL
    assert (out[0, :, 10, 12] < -1 + TOL).all()


# --------------------------------------------------------------------------- zoom

def test_zoom_in_by_2_maps_centre_quarter_onto_image():
    x = _image()
    out, mask = zoom(x, 2.0)
    ref = F.interpolate(x[..., 8:24, 8:24], scale_factor=2, mode="bilinear", align_corners=False)
    # F.interpolate clamps at the crop border, the warp reads the real neighbours: compare
    # the interior only
    torch.testing.assert_close(out[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=TOL, rtol=0)
    assert torch.all(mask == 1)


def test_zoom_in_by_2_exact_on_linear_image():
    img, at = _ramp_fn()
    out, mask = zoom(img, 2.0)
    # destination pixel p reads source coordinate c + (p - c) / 2 with c = 15.5
    src = 15.5 + (torch.arange(S, dtype=torch.float32) - 15.5) / 2
    torch.testing.assert_close(out, at(src, src), atol=TOL, rtol=0)
    assert torch.all(mask == 1)


@pytest.mark.parametrize("a", [1.3, 2.0, 3.7])
def test_zoom_in_mask_all_ones(a):
    _, mask = zoom(_image(), a)
    assert torch.all(mask == 1)


def test_zoom_out_by_half_mask_and_content():
    img, at = _ramp_fn()
    out, mask = zoom(img, 0.5)
    expected_mask = torch.zeros(1, 1, S, S)
    expected_mask[..., 8:24, 8:24] = 1
    assert torch.equal(mask, expected_mask)
    # the 16x16 block is the 2x downsampled image: destination i reads source 2i - 15.5
    block = out[..., 8:24, 8:24]
    torch.testing.assert_close(block, F.avg_pool2d(img, 2), atol=TOL, rtol=0)
    src = 2 * torch.arange(8, 24, dtype=torch.float32) - 15.5
    torch.testing.assert_close(block, at(src, src), atol=TOL, rtol=0)
    # and on a random image too (bilinear at half-pixel offsets averages a 2x2 block)
    x = _image()
    out, _ = zoom(x, 0.5)
    torch.testing.assert_close(out[..., 8:24, 8:24], F.avg_pool2d(x, 2), atol=TOL, rtol=0)


def test_zoom_rejects_non_positive():
    with pytest.raises(ValueError):
        zoom(_image(), 0.0)
    with pytest.raises(ValueError):
        zoom(_image(), torch.tensor([1.0, -1.0]))


# --------------------------------------------------------------------------- identities, rotation

@pytest.mark.parametrize("fn,alpha", [(zoom, 1.0), (shift_x, 0.0), (shift_y, 0.0), (rotate, 0.0),
                                      (colour, [0.0, 0.0, 0.0]), (brightness, 0.0)])
def test_identity_alphas(fn, alpha):
    x = _image()
    out, mask = fn(x, alpha)
    torch.testing.assert_close(out, x, atol=TOL, rtol=0)
    assert mask.shape == (2, 1, S, S)
    assert torch.all(mask == 1)


def test_rotate_90_is_rot90_counter_clockwise():
    x = _image()
    out, mask = rotate(x, 90.0)
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(-2, -1)), atol=3e-5, rtol=0)
    assert torch.all(mask == 1)
    # clockwise would be far off
    assert (out - torch.rot90(x, -1, dims=(-2, -1))).abs().max() > 0.5
    # counter-clockwise as seen: the top-right corner goes to the top-left
    m = -torch.ones(1, 3, S, S)
    m[..., 0, S - 1] = 1.0
    out, _ = rotate(m, 90.0)
    assert out[0, :, 0, 0].min() > 1 - 1e-4
    out, _ = rotate(m, -90.0)  # and clockwise to the bottom-right
    assert out[0, :, S - 1, S - 1].min() > 1 - 1e-4


def test_rotate_45_masks_corners():
    _, mask = rotate(_image(), 45.0)
    for i, j in [(0, 0), (0, S - 1), (S - 1, 0), (S - 1, S - 1)]:
        assert mask[0, 0, i, j] == 0
    assert mask[0, 0, 15, 15] == 1 and mask[0, 0, 16, 16] == 1
    # everything well inside the inscribed circle is defined
    yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    inside = ((xx - 15.5) ** 2 + (yy - 15.5) ** 2) < 14 ** 2
    assert torch.all(mask[0, 0][inside] == 1)
    assert 0 < mask.mean() < 1


# --------------------------------------------------------------------------- per-sample alphas

@pytest.mark.parametrize("fn,alphas", [
    (zoom, [0.5, 1.7, 3.0]),
    (shift_x, [-4.0, 2.0, 7.0]),
    (shift_y, [5.0, -3.0, 0.0]),
    (rotate, [-30.0, 12.0, 90.0]),
    (brightness, [-0.4, 0.1, 0.6]),
    (colour, [[0.1, -0.2, 0.3], [0.0, 0.5, -0.5], [0.9, 0.9, -0.9]]),
])
def test_per_sample_alphas_equal_separate_application(fn, alphas):
    x = _image(n=3, seed=1)
    out, mask = fn(x, torch.tensor(alphas))
    for i, a in enumerate(alphas):
        o, m = fn(x[i:i + 1], torch.tensor(a))
        torch.testing.assert_close(out[i:i + 1], o, atol=1e-6, rtol=0)
        assert torch.equal(mask[i:i + 1], m)
    # the samples really were treated differently
    assert not torch.allclose(out[0], fn(x[0:1], torch.tensor(alphas[1]))[0][0], atol=1e-3)


# --------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("fn,alpha", [(zoom, 1.6), (zoom, 0.6), (shift_x, 3.0), (shift_y, -2.0),
                                      (rotate, 30.0)])
def test_geometric_edits_backpropagate_the_adjoint(fn, alpha):
    """A geometric edit is linear in the image: the gradient of <w, A x> is A^T w, so
    <grad, v> must equal <w, A v> for any v."""
    x = _image(seed=2).requires_grad_(True)
    w = torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(3))
    out, _ = fn(x, alpha)
    (out * w).sum().backward()
    grad = x.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    for seed in (4, 5):
        v = torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(seed))
        lhs = (grad * v).sum()
        rhs = (fn(v, alpha)[0] * w).sum()
        assert torch.allclose(lhs, rhs, rtol=1e-4, atol=1e-3), (lhs.item(), rhs.item())


def test_shift_gradient_is_shifted_back():
    x = _image(seed=2).requires_grad_(True)
    w = torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(3))
    out, _ = shift_x(x, 3.0)
    (out * w).sum().backward()
    # out[..., j] = x[..., j-3], so d/dx[..., i] = w[..., i+3]; the last 3 columns are lost
    torch.testing.assert_close(x.grad[..., :S - 3], w[..., 3:], atol=TOL, rtol=1e-5)
    torch.testing.assert_close(x.grad[..., S - 3:], torch.zeros(2, 3, S, 3), atol=TOL, rtol=0)


@pytest.mark.parametrize("fn,alpha", [(colour, [0.1, -0.1, 0.05]), (brightness, 0.1)])
def test_colour_edits_backpropagate(fn, alpha):
    x = (_image(seed=2) * 0.5).requires_grad_(True)  # inside (-0.5, 0.5): nothing clips
    w = torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(3))
    out, _ = fn(x, alpha)
    (out * w).sum().backward()
    torch.testing.assert_close(x.grad, w, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- colour, brightness

def test_colour_adds_per_channel_offsets_and_clips():
    x = torch.tensor([0.0, 0.5, -0.5]).reshape(1, 3, 1, 1).expand(2, 3, 2, 2).clone()
    out, mask = colour(x, [0.2, 0.7, -0.7])  # one offset triple for the whole batch
    expected = torch.tensor([0.2, 1.0, -1.0]).reshape(1, 3, 1, 1).expand(2, 3, 2, 2)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert torch.all(mask == 1) and mask.shape == (2, 1, 2, 2)
    # one triple per sample
    out, _ = colour(x, torch.tensor([[0.2, 0.7, -0.7], [-0.3, -0.25, 0.1]]))
    torch.testing.assert_close(out[1, :, 0, 0], torch.tensor([-0.3, 0.25, -0.4]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.2, 1.0, -1.0]), atol=1e-6, rtol=0)
    assert out.min() >= -1 and out.max() <= 1


def test_brightness_adds_same_offset_to_all_channels_and_clips():
    x = torch.tensor([0.0, 0.5, -0.5]).reshape(1, 3, 1, 1).expand(2, 3, 2, 2).clone()
    out, mask = brightness(x, 0.3)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.3, 0.8, -0.2]), atol=1e-6, rtol=0)
    out, _ = brightness(x, torch.tensor([0.7, -0.7]))
    torch.testing.assert_close(out[0, :, 1, 1], torch.tensor([0.7, 1.0, 0.2]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1, :, 1, 1], torch.tensor([-0.7, -0.2, -1.0]), atol=1e-6, rtol=0)
    assert torch.all(mask == 1)
    # a random image: brightness(x, a) == clip(x + a)
    y = _image()
    torch.testing.assert_close(brightness(y, -0.45)[0], (y - 0.45).clamp(-1, 1), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- registry

def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_registry_names_and_get_edit():
    for name in ["zoom", "shift_x", "shift_y", "rotate", "colour", "brightness"]:
        assert get_edit(name) is EDITS[name] and EDITS[name].name == name
    assert get_edit("color") is EDITS["colour"]
    with pytest.raises(SteerError):
        get_edit("nope")


def test_sample_train_zoom_log_uniform_in_range():
    a = EDITS["zoom"].sample_train(2000, _gen(), S)
    assert a.shape == (2000,)
    assert a.min() >= 0.25 and a.max() <= 4.0
    # log-uniform: log alpha is roughly uniform on [log 1/4, log 4], half below 1
    assert 0.4 < (a < 1).float().mean() < 0.6
    assert a.min() < 0.3 and a.max() > 3.5
    assert abs(torch.log(a).mean().item()) < 0.15


@pytest.mark.parametrize("name", ["shift_x", "shift_y"])
@pytest.mark.parametrize("size", [16, 32])
def test_sample_train_shift_whole_pixels(name, size):
    a = EDITS[name].sample_train(2000, _gen(1), size)
    assert a.shape == (2000,)
    assert torch.equal(a, a.round())
    mag = a.abs()
    assert mag.min() >= 1 and mag.max() <= size // 2
    assert mag.min() == 1 and mag.max() == size // 2  # both ends are drawn
    assert (a > 0).any() and (a < 0).any()
    assert not (a == 0).any()


def test_sample_train_rotate():
    a = EDITS["rotate"].sample_train(3000, _gen(2), S)
    assert a.shape == (3000,)
    assert torch.equal(a, a.round())
    assert a.abs().min() == 1 and a.abs().max() == 45
    assert (a > 0).any() and (a < 0).any() and not (a == 0).any()


def test_sample_train_colour_and_brightness():
    c = EDITS["colour"].sample_train(500, _gen(3), S)
    assert c.shape == (500, 3)
    assert c.min() >= -0.5 and c.max() <= 0.5
    assert c.min() < -0.45 and c.max() > 0.45
    # independent per channel
    assert not torch.allclose(c[:, 0], c[:, 1])
    b = EDITS["brightness"].sample_train(500, _gen(3), S)
    assert b.shape == (500,) and b.min() >= -0.5 and b.max() <= 0.5


def test_sample_train_is_seeded():
    for name in ["zoom", "shift_x", "rotate", "colour"]:
        a = EDITS[name].sample_train(16, _gen(7), S)
        b = EDITS[name].sample_train(16, _gen(7), S)
        c = EDITS[name].sample_train(16, _gen(8), S)
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_walk_input_conventions():
    t = EDITS["zoom"].walk_input(torch.tensor([0.25, 1.0, 2.0, 4.0]), S)
    assert t.shape == (4, 1)
    torch.testing.assert_close(t[:, 0], torch.tensor([-math.log(4), 0.0, math.log(2), math.log(4)]))
    for name in ["shift_x", "shift_y"]:
        t = EDITS[name].walk_input(torch.tensor([-16.0, 4.0, 8.0]), 32)
        assert t.shape == (3, 1)
        torch.testing.assert_close(t[:, 0], torch.tensor([-1.0, 0.25, 0.5]))
        t = EDITS[name].walk_input(torch.tensor([4.0]), 16)
        torch.testing.assert_close(t[:, 0], torch.tensor([0.5]))
    t = EDITS["rotate"].walk_input(torch.tensor([45.0, -9.0]), S)
    assert t.shape == (2, 1)
    torch.testing.assert_close(t[:, 0], torch.tensor([1.0, -0.2]))
    c = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.4, -0.5]])
    t = EDITS["colour"].walk_input(c, S)
    assert t.shape == (2, 3)
    torch.testing.assert_close(t, c)


@pytest.mark.parametrize("name,bad", [
    ("zoom", 0.0), ("zoom", -1.0), ("zoom", 1000.0), ("zoom", float("nan")),
    ("shift_x", 1000.0), ("shift_y", -1000.0), ("shift_x", float("inf")),
    ("rotate", 720.0), ("colour", 5.0), ("brightness", -3.0),
])
def test_check_alphas_rejects_out_of_range(name, bad):
    with pytest.raises(SteerError):
        EDITS[name].check_alphas([1.0 if name == "zoom" else 0.0, bad], S)


@pytest.mark.parametrize("name", ["zoom", "shift_x", "shift_y", "rotate", "colour", "brightness"])
def test_check_alphas_accepts_sweep_and_identity(name):
    edit = EDITS[name]
    edit.check_alphas(edit.test_alphas(S), S)
    edit.check_alphas(edit.show_alphas(S), S)
    edit.check_alphas([edit.identity], S)
    edit.check_alphas(np.asarray(edit.test_alphas(S)), S)
    # and each identity alpha really is the identity
    x = _image(n=1)
    alpha = [edit.identity] * edit.sliders if edit.sliders > 1 else edit.identity
    torch.testing.assert_close(edit(x, alpha)[0], x, atol=TOL, rtol=0)
