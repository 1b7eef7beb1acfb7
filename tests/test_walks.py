"""Linear and nonlinear walks, and their files (steer.walks)."""
import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from steer.edits import EDITS
from steer.errors import SteerError
from steer.walks import LinearWalk, NonlinearWalk, load, make_walk, read_meta, save

EPS = 1.41


def _z(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- linear

def test_linear_walk_moves_by_sum_of_alpha_times_directions():
    walk = LinearWalk((4,), sliders=3)
    with torch.no_grad():
        walk.directions.copy_(torch.tensor([[1.0, 0.0, 0.0, 2.0],
                                            [0.0, 1.0, 0.0, -1.0],
                                            [0.0, 0.0, 3.0, 0.0]]))
    z = torch.tensor([[0.5, 0.5, 0.5, 0.5], [1.0, -1.0, 0.0, 2.0]])
    alpha = torch.tensor([[0.1, 0.2, 0.3], [-0.5, 0.0, 1.0]])
    out = walk.apply(z, alpha, EDITS["colour"], 32)
    expected = torch.tensor([
        [0.5 + 0.1, 0.5 + 0.2, 0.5 + 0.9, 0.5 + 0.2 - 0.2],
        [1.0 - 0.5, -1.0, 3.0, 2.0 - 1.0],
    ])
    torch.testing.assert_close(out, expected)


def test_linear_walk_uses_the_edit_walk_input():
    walk = LinearWalk((3,), sliders=1)
    w = torch.tensor([1.0, -2.0, 0.5])
    with torch.no_grad():
        walk.directions.copy_(w[None])
    z = _z((2, 3))
    # zoom: the walk sees log(alpha)
    out = walk.apply(z, torch.tensor([2.0, 0.5]), EDITS["zoom"], 32)
    torch.testing.assert_close(out, z + torch.tensor([[math.log(2)], [-math.log(2)]]) * w)
    # zoom 1 is the identity
    torch.testing.assert_close(walk.apply(z, 1.0, EDITS["zoom"], 32), z)
    # shift: alpha / (S/2)
    out = walk.apply(z, torch.tensor([8.0, -16.0]), EDITS["shift_x"], 32)
    torch.testing.assert_close(out, z + torch.tensor([[0.5], [-1.0]]) * w)
    # rotation: alpha / 45
    out = walk.apply(z, torch.tensor([9.0, 45.0]), EDITS["rotate"], 32)
    torch.testing.assert_close(out, z + torch.tensor([[0.2], [1.0]]) * w)


def test_linear_walk_on_wplus_shaped_latents():
    walk = LinearWalk((4, 8), sliders=1, seed=3)
    z = _z((3, 4, 8), seed=1)
    t = torch.tensor([[0.5], [-1.0], [2.0]])
    out = walk.move(z, t)
    assert out.shape == (3, 4, 8)
    w = walk.directions.detach().reshape(4, 8)
    for i in range(3):
        torch.testing.assert_close(out[i], z[i] + t[i, 0] * w)
    # every layer of w+ moves by its own part of the direction
    assert not torch.allclose(out[0, 0] - z[0, 0], out[0, 1] - z[0, 1])


def test_linear_walk_is_seeded_and_differentiable():
    a, b, c = LinearWalk((8,), seed=1), LinearWalk((8,), seed=1), LinearWalk((8,), seed=2)
    assert torch.equal(a.directions, b.directions) and not torch.equal(a.directions, c.directions)
    out = a.apply(_z((4, 8)), torch.tensor([2.0, 0.5, 3.0, 1.5]), EDITS["zoom"], 32)
    out.square().sum().backward()
    assert a.directions.grad is not None and a.directions.grad.abs().sum() > 0


# --------------------------------------------------------------------------- nonlinear

def _nonlinear(shape=(8,), renorm="sphere", seed=0, **kw):
    return NonlinearWalk(shape, eps=EPS, max_steps=4, step_mode="multiply", renorm=renorm, seed=seed, **kw)


def _manual_steps(net, z, n, renorm="sphere", centre=None, psi=1.0):
    """n steps z <- z + net(z), renormalised to the original norm (hand-written reference)."""
    flat = z.reshape(z.shape[0], -1)
    norm = flat.norm(dim=1, keepdim=True)
    with torch.no_grad():
        for _ in range(n):
            flat = flat + net(flat)
            if renorm == "sphere":
                flat = flat / flat.norm(dim=1, keepdim=True) * norm
            elif renorm == "truncate":
                flat = centre + psi * (flat - centre)
    return flat.reshape(z.shape)


@pytest.mark.parametrize("steps", [-4, -2, -1, 1, 3, 4])
def test_nonlinear_sphere_keeps_each_latent_norm(steps):
    walk = _nonlinear()
    z = _z((5, 8)) * torch.tensor([[0.5], [1.0], [2.0], [3.0], [10.0]])
    with torch.no_grad():
        out = walk.move(z, steps)
    torch.testing.assert_close(out.norm(dim=1), z.norm(dim=1), rtol=1e-5, atol=1e-5)
    assert (out - z).abs().max() > 1e-3  # it did move


def test_nonlinear_sphere_keeps_norm_for_wplus_shape():
    walk = _nonlinear(shape=(4, 8))
    z = _z((3, 4, 8))
    with torch.no_grad():
        out = walk.move(z, 2)
    assert out.shape == z.shape
    torch.testing.assert_close(out.reshape(3, -1).norm(dim=1), z.reshape(3, -1).norm(dim=1), rtol=1e-5, atol=1e-5)


def test_nonlinear_zero_steps_is_identity():
    walk = _nonlinear()
    z = _z((4, 8))
    assert torch.equal(walk.move(z, 0), z)
    # alpha 1 is 0 zoom steps
    assert torch.equal(walk.apply(z, torch.ones(4), EDITS["zoom"], 32), z)


def test_nonlinear_apply_forward_two_steps_uses_forward_net():
    walk = _nonlinear(seed=1)
    z = _z((3, 8), seed=2)
    with torch.no_grad():
        out = walk.apply(z, torch.full((3,), EPS**2), EDITS["zoom"], 32)
    torch.testing.assert_close(out, _manual_steps(walk.forward_net, z, 2))
    assert not torch.allclose(out, _manual_steps(walk.forward_net, z, 1))
    # a nearby alpha rounds to the same whole number of steps
    with torch.no_grad():
        near = walk.apply(z, torch.full((3,), EPS**2.3), EDITS["zoom"], 32)
    torch.testing.assert_close(near, out)
    # the backward net plays no part
    with torch.no_grad():
        for p in walk.backward_net.parameters():
            p.add_(1.0)
        again = walk.apply(z, torch.full((3,), EPS**2), EDITS["zoom"], 32)
    torch.testing.assert_close(again, out)


def test_nonlinear_apply_negative_uses_backward_net():
    walk = _nonlinear(seed=1)
    z = _z((3, 8), seed=2)
    with torch.no_grad():
        out = walk.apply(z, torch.full((3,), 1 / EPS), EDITS["zoom"], 32)
    torch.testing.assert_close(out, _manual_steps(walk.backward_net, z, 1))
    assert not torch.allclose(out, _manual_steps(walk.forward_net, z, 1))
    with torch.no_grad():
        out3 = walk.apply(z, torch.full((3,), EPS**-3), EDITS["zoom"], 32)
    torch.testing.assert_close(out3, _manual_steps(walk.backward_net, z, 3))
    with torch.no_grad():
        for p in walk.forward_net.parameters():
            p.add_(1.0)
        again = walk.apply(z, torch.full((3,), 1 / EPS), EDITS["zoom"], 32)
    torch.testing.assert_close(again, out)


def test_nonlinear_apply_per_sample_step_counts():
    walk = _nonlinear(seed=4)
    z = _z((4, 8), seed=5)
    alpha = torch.tensor([EPS**2, 1 / EPS, 1.0, EPS**4])
    with torch.no_grad():
        out = walk.apply(z, alpha, EDITS["zoom"], 32)
    torch.testing.assert_close(out[0:1], _manual_steps(walk.forward_net, z[0:1], 2))
    torch.testing.assert_close(out[1:2], _manual_steps(walk.backward_net, z[1:2], 1))
    assert torch.equal(out[2], z[2])
    torch.testing.assert_close(out[3:4], _manual_steps(walk.forward_net, z[3:4], 4))


def test_nonlinear_additive_steps_for_shift():
    edit = EDITS["shift_x"]
    walk = make_walk("nonlinear", edit, (8,), 32, seed=2)
    assert walk.eps == pytest.approx(3.2) and walk.step_mode == "add"
    z = _z((2, 8), seed=3)
    with torch.no_grad():
        out = walk.apply(z, torch.tensor([6.4, -3.0]), edit, 32)  # 2 forward, 1 backward
    torch.testing.assert_close(out[0:1], _manual_steps(walk.forward_net, z[0:1], 2))
    torch.testing.assert_close(out[1:2], _manual_steps(walk.backward_net, z[1:2], 1))


def test_nonlinear_truncate_mode():
    centre = torch.linspace(-1, 1, 8)
    walk = _nonlinear(renorm="truncate", centre=centre, psi=0.7, seed=3)
    z = _z((2, 8), seed=6)
    with torch.no_grad():
        out = walk.move(z, 2)
    torch.testing.assert_close(out, _manual_steps(walk.forward_net, z, 2, "truncate", centre, 0.7))


def test_nonlinear_sample_alpha_is_a_whole_step_target():
    walk = make_walk("nonlinear", EDITS["zoom"], (8,), 32)
    for seed in range(10):
        a = walk.sample_alpha(EDITS["zoom"], 4, torch.Generator().manual_seed(seed), 32)
        assert a.shape == (4,) and torch.all(a == a[0])
        k = math.log(a[0].item()) / math.log(EPS)
        assert abs(k - round(k)) < 1e-4 and 1 <= abs(round(k)) <= walk.max_steps


# --------------------------------------------------------------------------- files

META = {"model": "dcgan-shapes32", "space": "z", "edit": "zoom", "history": [0.5, 0.25]}


def test_linear_save_load_round_trip(tmp_path):
    walk = LinearWalk((4, 8), sliders=1, seed=5)
    path = tmp_path / "walk.safetensors"
    save(walk, path, META)
    loaded, meta = load(path)
    assert isinstance(loaded, LinearWalk)
    assert torch.equal(loaded.directions, walk.directions)
    assert not torch.equal(LinearWalk((4, 8), sliders=1).directions, walk.directions)  # not the default init
    z = _z((3, 4, 8))
    alpha = torch.tensor([0.5, 2.0, 3.0])
    assert torch.equal(loaded.apply(z, alpha, EDITS["zoom"], 32), walk.apply(z, alpha, EDITS["zoom"], 32))
    for key, value in META.items():
        assert meta[key] == value
    assert meta["walk"] == "linear"
    assert meta["settings"] == {"latent_shape": [4, 8], "sliders": 1}
    assert read_meta(path) == meta
    # an ordinary safetensors file with the settings as JSON metadata
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == {"directions"}
        assert json.loads(f.metadata()["steer"]) == meta


def test_colour_linear_save_load_round_trip(tmp_path):
    walk = LinearWalk((8,), sliders=3, seed=6)
    path = tmp_path / "colour.safetensors"
    save(walk, path, dict(META, edit="colour"))
    loaded, meta = load(path)
    assert loaded.sliders == 3 and meta["edit"] == "colour"
    z = _z((2, 8))
    alpha = torch.tensor([[0.1, -0.2, 0.3], [0.5, 0.0, -0.5]])
    assert torch.equal(loaded.apply(z, alpha, EDITS["colour"], 32), walk.apply(z, alpha, EDITS["colour"], 32))


@pytest.mark.parametrize("renorm", ["sphere", "truncate"])
def test_nonlinear_save_load_round_trip(tmp_path, renorm):
    centre = torch.linspace(-1, 1, 32)
    walk = NonlinearWalk((4, 8), eps=EPS, max_steps=3, step_mode="multiply", renorm=renorm,
                         centre=centre, psi=0.7, hidden=16, seed=7)
    path = tmp_path / "nl.safetensors"
    save(walk, path, META)
    loaded, meta = load(path)
    assert isinstance(loaded, NonlinearWalk)
    assert meta["walk"] == "nonlinear"
    assert meta["settings"] == {"latent_shape": [4, 8], "eps": EPS, "max_steps": 3, "step_mode": "multiply",
                                "renorm": renorm, "psi": 0.7, "hidden": 16}
    for key, value in META.items():
        assert meta[key] == value
    assert torch.equal(loaded.centre, centre)
    for (k1, v1), (k2, v2) in zip(loaded.state_dict().items(), walk.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    z = _z((4, 4, 8), seed=8)
    alpha = torch.tensor([EPS**2, 1 / EPS, 1.0, EPS**3])
    with torch.no_grad():
        a = loaded.apply(z, alpha, EDITS["zoom"], 32)
        b = walk.apply(z, alpha, EDITS["zoom"], 32)
        fresh = NonlinearWalk((4, 8), eps=EPS, max_steps=3, step_mode="multiply", renorm=renorm,
                              psi=0.7, hidden=16).apply(z, alpha, EDITS["zoom"], 32)
    assert torch.equal(a, b)
    assert not torch.allclose(a, fresh)  # the weights came from the file


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "walk.safetensors"
    save(LinearWalk((8,), seed=1), path, META)
    second = LinearWalk((8,), seed=2)
    save(second, path, dict(META, history=[1.0]))
    loaded, meta = load(path)
    assert torch.equal(loaded.directions, second.directions) and meta["history"] == [1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.safetensors"]  # no temp left


def test_load_text_file_raises(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("this is not a walk\n")
    with pytest.raises(SteerError):
        load(path)


def test_load_random_bytes_raises(tmp_path):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                   dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(SteerError):
        load(path)


def test_load_plain_safetensors_without_walk_metadata_raises(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"directions": torch.zeros(1, 8)}, str(path), metadata={"other": "x"})
    with pytest.raises(SteerError):
        load(path)


def test_load_missing_file_raises(tmp_path):
    with pytest.raises(SteerError):
        load(tmp_path / "absent.safetensors")


def test_load_unknown_edit_raises(tmp_path):
    path = tmp_path / "walk.safetensors"
    save(LinearWalk((8,)), path, dict(META, edit="nope"))
    with pytest.raises(SteerError):
        load(path)


def test_make_walk_unknown_kind():
    with pytest.raises(SteerError):
        make_walk("curved", EDITS["zoom"], (8,), 32)


def test_nonlinear_apply_accepts_one_alpha_for_the_batch():
    from steer.edits import EDITS
    from steer.walks import NonlinearWalk
    torch.manual_seed(0)
    walk = NonlinearWalk((8,), eps=1.41, max_steps=4, step_mode="multiply")
    z = torch.randn(4, 8)
    shared = walk.apply(z, 1.41**2, EDITS["zoom"], 32)
    per_sample = walk.apply(z, torch.full((4,), 1.41**2), EDITS["zoom"], 32)
    assert torch.equal(shared, per_sample) and not torch.equal(shared, z)
    colour = NonlinearWalk((8,), eps=0.1, max_steps=5, step_mode="add")
    z3 = torch.randn(3, 8)
    # a shared RGB triple is one alpha for every sample, not one channel per sample
    out = colour.apply(z3, [0.2, 0.2, 0.2], EDITS["colour"], 32)
    assert torch.allclose(out, colour.move(z3, 2))


def test_incomplete_walk_metadata_is_refused(tmp_path):
    import json

    from safetensors.torch import save_file

    from steer.errors import SteerError
    from steer.walks import load
    path = tmp_path / "partial.safetensors"
    save_file({"directions": torch.zeros(1, 8)}, str(path), metadata={"steer": json.dumps({"edit": "zoom"})})
    with pytest.raises(SteerError, match="lacks"):
        load(path)


def test_layer_range_walks_move_only_those_rows(tmp_path):
    latent = _z((3, 7, 5))
    for walk in (LinearWalk((7, 5), sliders=2, seed=1, layers=(2, 5)),
                 NonlinearWalk((7, 5), eps=0.2, max_steps=3, step_mode="add", layers=(2, 5))):
        moved = walk.move(latent, torch.ones(3, 2)) if isinstance(walk, LinearWalk) else walk.move(latent, 2)
        assert torch.equal(moved[:, :2], latent[:, :2]) and torch.equal(moved[:, 5:], latent[:, 5:])
        assert not torch.allclose(moved[:, 2:5], latent[:, 2:5])
        path = tmp_path / f"{walk.kind}.safetensors"
        save(walk, path, META)
        loaded, meta = load(path)
        assert loaded.layers == (2, 5) and meta["settings"]["layers"] == [2, 5]
    with pytest.raises(SteerError, match="outside"):
        LinearWalk((7, 5), layers=(5, 9))
    with pytest.raises(SteerError, match="needs a latent with layers"):
        LinearWalk((16,), layers=(0, 2))


def test_atomic_write_gives_files_the_usual_permissions(tmp_path):
    import os

    from steer.checkpoint import atomic_write
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "f.bin", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644
