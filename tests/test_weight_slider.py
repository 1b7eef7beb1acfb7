"""Weight-space sliders: the hooked offset is exactly a low-rank change of each layer's weight,
it starts as the identity, it learns a zoom on a bundled model better than no offset, and its
file is checked like any walk file."""
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from steer.directions.weight_slider import WeightSlider, layer_spec, make_weight_slider, slider_layers
from steer.edits import get_edit
from steer.errors import SteerError
from steer.fit import FitConfig, evaluate_walk, fit_walk
from steer.steering import Steering
from steer.walks import LinearWalk, load, save
from tests.conftest import assert_user_error, run_steer


class Toy(nn.Module):
    """Enough of a generator for the hooks: named torch layers and a name."""
    name = "toy"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(5, 7)
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1)


def randomised(slider, seed=1):
    """The slider with a non-zero up factor (a fresh one is exactly the identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in slider.up.values():
            p.copy_(torch.randn(p.shape, generator=gen))
    return slider


def test_offset_is_a_low_rank_weight_change_for_every_layer_type():
    toy = Toy()
    specs = [layer_spec(n, getattr(toy, n)) for n in ("fc", "conv", "up")]
    slider = randomised(WeightSlider((5,), specs, sliders=1, rank=2))
    t = torch.tensor([[0.7], [-1.3]])
    x_fc, x_conv, x_up = torch.randn(2, 5), torch.randn(2, 3, 8, 8), torch.randn(2, 4, 4, 4)
    with slider.attached(toy, t):
        got = toy.fc(x_fc), toy.conv(x_conv), toy.up(x_up)
    A, B = slider.down["fc"], slider.up["fc"][0]  # (r, in), (out, r)
    for i in range(2):
        # each sample's layer is the same layer with W + t_i B A
        w = toy.fc.weight + t[i, 0] * B @ A
        assert torch.allclose(got[0][i], F.linear(x_fc[i], w, toy.fc.bias), atol=1e-5)
        dw = torch.einsum("or,rikl->oikl", slider.up["conv"][0], slider.down["conv"])
        want = F.conv2d(x_conv[i:i + 1], toy.conv.weight + t[i, 0] * dw, toy.conv.bias, stride=2, padding=1)
        assert torch.allclose(got[1][i:i + 1], want, atol=1e-5)
        dw = torch.einsum("irkl,or->iokl", slider.down["up"], slider.up["up"][0])
        want = F.conv_transpose2d(x_up[i:i + 1], toy.up.weight + t[i, 0] * dw, toy.up.bias, stride=2, padding=1)
        assert torch.allclose(got[2][i:i + 1], want, atol=1e-5)
    # outside the block the layers are themselves again
    assert torch.equal(toy.fc(x_fc), F.linear(x_fc, toy.fc.weight, toy.fc.bias))


def test_a_fresh_slider_leaves_the_generator_unchanged(bundled_generator):
    G = bundled_generator
    edit = get_edit("zoom")
    slider = make_weight_slider(G, edit, "z", rank=3)
    names = [s["name"] for s in slider.modules_spec]
    assert names[0] == "fc" and "to_rgb" not in names and len(names) == len(slider_layers(G))
    steering = Steering(G, slider, edit)
    latent, classes = steering.sample(3, seed=0)
    walked = steering.walked(latent, classes, steering.alpha(2.0, 3))
    assert torch.equal(walked, steering.synthesize(latent, classes))


def test_slider_learns_a_zoom_better_than_no_offset_and_round_trips(bundled_generator, tmp_path):
    G = bundled_generator
    edit = get_edit("zoom")
    torch.manual_seed(0)
    slider = make_weight_slider(G, edit, "z", rank=4)
    config = FitConfig(steps=60, batch=8, lr=5e-3, seed=0)
    fit_walk(G, slider, edit, config, progress=False)
    learned = evaluate_walk(G, slider, edit, config)
    zero = evaluate_walk(G, LinearWalk(G.latent_shape("z"), init_std=0.0), edit, config)
    assert learned < 0.7 * zero, (learned, zero)
    path = tmp_path / "slider.safetensors"
    steering = Steering(G, slider, edit)
    steering.save(path, method="learned")
    again, meta = Steering.load(path, model=G)
    assert meta["walk"] == "weight_slider"
    latent, classes = steering.sample(2, seed=5)
    a = steering.alpha(0.5, 2)
    assert torch.allclose(again.walked(latent, classes, a), steering.walked(latent, classes, a), atol=1e-6)


def test_slider_file_is_checked_against_its_settings_and_its_model(bundled_generator, tiny_generator, tmp_path):
    G = bundled_generator
    edit = get_edit("zoom")
    slider = make_weight_slider(G, edit, "z", rank=2)
    path = tmp_path / "s.safetensors"
    save(slider, path, {"edit": "zoom", "space": "z"})
    # a tensor of another shape than the settings give is refused before anything is built
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.startswith("up."))
    tensors[key] = torch.zeros(1, 3, 3)
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, str(bad), metadata=metadata)
    with pytest.raises(SteerError, match="do not match its settings"):
        load(bad)
    # a slider used on a model without its layers: one clear error, not a crash in a hook
    walk, _ = load(path)
    with pytest.raises(SteerError, match="shape"):
        Steering(tiny_generator, walk, edit)  # the latent differs
    same_latent = WeightSlider(tiny_generator.latent_shape("z"), walk.modules_spec, rank=2)
    tiny = Steering(tiny_generator, same_latent, edit)
    latent, classes = tiny.sample(2, seed=0)
    with pytest.raises(SteerError, match="trained on another model"):
        tiny.walked(latent, classes, tiny.alpha(2.0, 2))


@pytest.mark.slow
def test_cli_slider_walk_then_render(tmp_path):
    out = tmp_path / "slider"
    r = run_steer("walk", "--model", "dcgan-shapes32", "--edit", "zoom", "--walk", "slider", "--rank", "2",
                  "--steps", "6", "--batch", "4", "--out", str(out), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "zero walk" in r.stdout
    meta = json.loads(json.dumps(load(out / "walk.safetensors")[1]))
    assert meta["walk"] == "weight_slider" and meta["settings"]["rank"] == 2
    r = run_steer("render", "--walk", str(out / "walk.safetensors"), "--out", str(tmp_path / "render"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "render" / "strip.png").is_file()


def test_cli_slider_user_errors(tmp_path):
    assert_user_error(run_steer("walk", "--model", "dcgan-shapes32", "--rank", "2", "--steps", "1"),
                      "--walk slider")
    assert_user_error(run_steer("walk", "--model", "dcgan-shapes32", "--walk", "slider", "--slider-layers", "nope",
                                "--steps", "1", "--out", str(tmp_path / "x")), "matches none")
