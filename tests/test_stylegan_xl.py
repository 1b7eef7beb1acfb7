"""StyleGAN-XL: official pickles rebuilt as our network give the official ws and images, the
adapter's spaces and truncations behave, walks train through it, hostile pickles stay inert."""
import hashlib
import json
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from steer.errors import SteerError
from steer.generators.registry import load_generator
from steer.generators.safe_pickle import LazyTensor, PersistentStub, safe_load
from steer.generators.stylegan_xl import StyleGANXLGenerator, design_config
from steer.generators.stylegan_xl.official import generator_from_official
from steer.generators.stylegan_xl.ops import _downsample_2d, filtered_lrelu, upfirdn2d
from tests.conftest import REPO

FOLDER = REPO.parent / "shared" / "fixtures" / "stylegan_xl_official"
SNAPSHOT = FOLDER / "network-snapshot.pkl"
needs_fixture = pytest.mark.skipif(not FOLDER.is_dir(), reason="shared/fixtures is not beside the checkout")


@pytest.fixture(scope="module")
def fixture_G():
    return load_generator(SNAPSHOT, device="cpu")


@pytest.fixture(scope="module")
def inputs():
    data = np.load(FOLDER / "inputs.npz")
    return torch.from_numpy(data["z"]), torch.from_numpy(data["labels"])


@needs_fixture
def test_state_dict_keys_and_values_equal_the_official(fixture_G):
    reference = load_file(str(FOLDER / "state_dict.safetensors"))
    ours = fixture_G.state_dict()
    assert set(ours) == set(reference)
    for key, value in reference.items():
        assert torch.equal(ours[key], value), key


@needs_fixture
def test_config_read_from_recorded_attributes(fixture_G):
    modules = json.loads((FOLDER / "layer_attrs.json").read_text())["modules"]
    names = modules["synthesis"]["attrs"]["layer_names"]
    assert fixture_G.synthesis.layer_names == names and fixture_G.num_ws == 7
    for name in names:
        official, ours = modules[f"synthesis.{name}"]["attrs"], getattr(fixture_G.synthesis, name)
        assert ours.padding == official["padding"], name
        assert (ours.up_factor, ours.down_factor) == (official["up_factor"], official["down_factor"])
        assert ours.is_torgb == official["is_torgb"] and ours.conv_clamp == official["conv_clamp"]
    assert (fixture_G.synthesis.L5_32_3.up_filter, fixture_G.synthesis.L5_32_3.down_filter) == (None, None)


@needs_fixture
@pytest.mark.parametrize("psi, cutoff, key", [(1.0, None, "ws_psi_1_0"), (0.7, None, "ws_psi_0_7"),
                                              (0.5, 2, "ws_psi_0_5_cutoff_2")])
def test_mapping_matches_official_ws(fixture_G, inputs, psi, cutoff, key):
    z, labels = inputs
    expected = torch.from_numpy(np.load(FOLDER / "expected_ws.npz")[key])
    with torch.no_grad():
        ws = fixture_G.mapping(z, labels, psi=psi, cutoff=cutoff)
    assert (ws - expected).abs().max().item() < 1e-5


@needs_fixture
@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("psi, key", [(1.0, "images_psi_1_0"), (0.7, "images_psi_0_7")])
def test_images_match_official(fixture_G, inputs, impl, psi, key):
    z, labels = inputs
    expected = torch.from_numpy(np.load(FOLDER / "expected.npz")[key])
    fixture_G.set_impl(impl)
    try:
        with torch.no_grad():
            images = fixture_G.official_forward(z, labels, psi)
    finally:
        fixture_G.set_impl("fast")
    assert images.shape == (4, 3, 32, 32)
    assert (images - expected).abs().max().item() < 1e-4


@needs_fixture
def test_intermediates_match_layer_by_layer(fixture_G, inputs):
    z, labels = inputs
    data = np.load(FOLDER / "intermediates_psi_1_0.npz")
    with torch.no_grad():
        ws = fixture_G.mapping(z, labels).unbind(1)
        x = fixture_G.synthesis.input(ws[0])
        outputs = {"input": x}
        for name, w in zip(fixture_G.synthesis.layer_names, ws[1:]):
            x = getattr(fixture_G.synthesis, name)(x, w)
            outputs[name] = x
    for name, value in outputs.items():
        key = next(k for k in data.files if k.startswith(name) and not k.endswith("__stats"))
        official = torch.from_numpy(data[key])
        ours = value[0, : official.shape[0]] if official.ndim == 3 else value[0]
        scale = max(1.0, official.abs().max().item())
        assert (ours - official).abs().max().item() < 1e-4 * scale, name
        mean, std = data[f"{key}__stats"][:2]
        assert abs(value.double().mean().item() - mean) < 1e-4 * scale, name


@needs_fixture
def test_adapter_spaces_agree(fixture_G, inputs):
    z, labels = inputs
    G = fixture_G
    with torch.no_grad():
        from_z = G.synthesize(z, labels, "z")
        w = G.to_space(z, labels, "w")
        wplus = G.to_space(z, labels, "w+")
        assert w.shape == (4, 96) and wplus.shape == (4, 7, 96)
        assert torch.allclose(G.synthesize(w, labels, "w"), from_z, atol=1e-6)
        assert torch.allclose(G.synthesize(wplus, labels, "w+"), from_z, atol=1e-6)
        # psi 0 puts every sample of a class on that class's w_avg
        w0 = G.to_space(z, labels, "w", truncation=0.0)
        assert torch.allclose(w0, G.mapping.w_avg[labels])
    with pytest.raises(SteerError, match="class-conditional"):
        G.to_space(z, None, "w")
    with pytest.raises(SteerError, match="expected"):
        G.synthesize(torch.zeros(2, 5), labels[:2], "w")


@needs_fixture
def test_multimodal_truncation_pulls_toward_the_nearest_centroid(fixture_G, inputs, tmp_path):
    z, labels = inputs
    G = fixture_G
    with torch.no_grad():
        w = G.to_space(z, labels, "w")
    centroids = torch.stack([w[2] + 0.01, -w[2], w[0] * 3])  # sample 2 is nearest the first
    path = tmp_path / "centroids.npy"
    np.save(path, centroids.numpy())
    try:
        G.set_centroids(str(path))
        with torch.no_grad():
            pulled = G.to_space(z, labels, "w+", truncation=0.0)
            half = G.to_space(z, labels, "w", truncation=0.5)
    finally:
        G.set_centroids(None)
    nearest = torch.cdist(w, centroids).argmin(1)
    assert torch.allclose(pulled, centroids[nearest].unsqueeze(1).expand(-1, 7, -1), atol=1e-6)
    assert torch.allclose(half, 0.5 * (w + centroids[nearest]), atol=1e-5)
    assert nearest[2] == 0
    np.save(tmp_path / "bad.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(SteerError, match="centroids must be"):
        G.set_centroids(str(tmp_path / "bad.npy"))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SteerError, match="cannot read centroids"):
        G.set_centroids(str(tmp_path / "objects.npy"))


@needs_fixture
def test_only_g_ema_is_materialised():
    snapshot = safe_load(SNAPSHOT)
    training_copy = snapshot["G"].state["_modules"]["synthesis"].state["_modules"]["L0_36_32"].state
    assert isinstance(training_copy["_parameters"]["weight"], LazyTensor)
    generator_from_official(snapshot["G_ema"])
    assert training_copy["_parameters"]["weight"].storage._storage is None  # never decoded
    assert int(snapshot["progress"]["cur_nimg"].materialize()) == 10_000_000


@needs_fixture
def test_real_dill_embedding_pickle_loads():
    from steer.generators.safe_pickle import module_state_dict
    embed = safe_load(FOLDER / "tf_efficientnet_lite0.pkl")["embed"]
    weight = module_state_dict(embed)["weight"]
    assert weight.shape == (1000, 320) and weight.dtype == torch.float32 and weight.std() > 0


@pytest.mark.parametrize("up, down, padding", [(2, 2, [9, 8, 9, 8]), (4, 2, [-6, -9, -6, -9]),
                                               (2, 1, [-3, -2, 3, 0]), (1, 1, [0, 0, 0, 0])])
def test_fast_filtered_lrelu_equals_reference(up, down, padding):
    gen = torch.Generator().manual_seed(up)
    x = torch.randn(2, 3, 20, 20, generator=gen) * 30
    bias = torch.randn(3, generator=gen)
    fu = torch.randn(6 * up, generator=gen) if up > 1 else None
    fd = torch.randn(12, generator=gen) if down > 1 else None
    args = (x, fu, fd, bias, up, down, padding, 2 ** 0.5, 0.2, 64.0)
    ref = filtered_lrelu(*args, impl="reference")
    cache = {}
    fast = filtered_lrelu(*args, impl="fast", cache=cache)
    assert ref.abs().max() >= 64 and len(cache) == 2  # the clamp binds; matrices were kept
    # random taps cancel a lot: compare against the output's scale (float32 rounding ~1e-7)
    tolerance = 1e-5 * ref.abs().max().item()
    torch.testing.assert_close(fast, ref, rtol=0, atol=tolerance)
    torch.testing.assert_close(filtered_lrelu(*args, impl="fast", cache=cache), ref, rtol=0, atol=tolerance)


def test_radial_down_filter():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 30, 30, generator=gen)
    radial = torch.randn(12, 12, generator=gen)  # a 2-D (stylegan3-r) down filter
    torch.testing.assert_close(_downsample_2d(x, radial, 2), upfirdn2d(x, radial, down=2), rtol=1e-5, atol=1e-4)


def test_random_design_config_fast_equals_reference():
    torch.manual_seed(0)
    G = StyleGANXLGenerator(design_config(z_dim=32, w_dim=64, c_dim=5, img_resolution=64, channel_base=2048,
                                          channel_max=64, num_layers=6))
    z, c = G.sample(3, seed=1)
    with torch.no_grad():
        fast = G.synthesize(z, c, "z")
        ref = G.set_impl("reference").synthesize(z, c, "z")
    assert fast.shape == (3, 3, 64, 64) and fast.abs().max() > 0
    assert (fast - ref).abs().max().item() < 1e-4


@needs_fixture
@pytest.mark.parametrize("edit_name, space, layers", [("colour", "w", None), ("zoom", "w", None),
                                                      ("colour", "w+", (0, 3))])
def test_walks_train_through_the_generator(fixture_G, edit_name, space, layers):
    from steer.edits import get_edit
    from steer.fit import FitConfig, evaluate_walk, fit_walk
    from steer.walks import make_walk
    G, edit = fixture_G, get_edit(edit_name)
    z, c = G.sample(1, seed=0)
    shape = tuple(G.to_space(z, c, space).shape[1:])
    walk = make_walk("linear", edit, shape, G.resolution, layers=layers)
    start = walk.directions.detach().clone()
    config = FitConfig(steps=30, batch=4, lr=edit.lr, space=space)
    before = evaluate_walk(G, walk, edit, config, batches=2)
    result = fit_walk(G, walk, edit, config, progress=False)
    assert len(result.history) == 30 and all(np.isfinite(result.history))
    assert (walk.directions - start).abs().max() > 0  # gradients reached the walk
    assert evaluate_walk(G, walk, edit, config, batches=2) < before
    if layers:
        latent = G.to_space(*G.sample(2, seed=3), space)
        moved = walk.move(latent, torch.ones(2, edit.sliders))
        assert torch.equal(moved[:, 3:], latent[:, 3:]) and not torch.equal(moved[:, :3], latent[:, :3])


def _install_fake_persistence(monkeypatch):
    """A stand-in for the official torch_utils.persistence, only so pickle can name it."""
    package = types.ModuleType("torch_utils")
    module = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("never called")

    _reconstruct_persistent_obj.__module__ = module.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)
    return _reconstruct_persistent_obj


class _Persistent:
    def __init__(self, reconstruct, meta):
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self):
        return (self.reconstruct, (self.meta,))


class _Calls:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def test_embedded_source_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    source = f"import os\nos.system('touch {marker}')\nopen({str(marker)!r}, 'w').write('x')\n"
    reconstruct = _install_fake_persistence(monkeypatch)
    meta = {"type": "class", "version": 6, "module_src": source, "class_name": "Generator",
            "state": {"z_dim": 8, "_init_kwargs": {"z_dim": 8}}}
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Persistent(reconstruct, meta)}, protocol=4))
    monkeypatch.delitem(sys.modules, "torch_utils.persistence")
    loaded = safe_load(path)["G_ema"]
    assert isinstance(loaded, PersistentStub) and loaded.class_name == "Generator"
    assert loaded.source_sha256 == hashlib.sha256(source.encode()).hexdigest()
    assert loaded.init_kwargs == {"z_dim": 8}
    assert not marker.exists()


def test_forbidden_global_inside_a_snapshot_is_refused(tmp_path, monkeypatch):
    import os
    marker = tmp_path / "ran"
    reconstruct = _install_fake_persistence(monkeypatch)
    meta = {"type": "class", "version": 6, "module_src": "", "class_name": "Generator",
            "state": {"hook": _Calls(os.system, f"touch {marker}")}}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Persistent(reconstruct, meta)}, protocol=4))
    with pytest.raises(SteerError, match="asks to run code"):
        load_generator(path, device="cpu")
    from tests.conftest import run_steer
    result = run_steer("models", "--model", str(path))
    assert result.returncode == 2 and "asks to run code" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


@pytest.mark.slow
@needs_fixture
def test_cli_models_sample_walk_render(tmp_path):
    from tests.conftest import run_steer
    result = run_steer("models", "--model", str(SNAPSHOT))
    assert result.returncode == 0 and "stylegan_xl" in result.stdout and "z, w, w+" in result.stdout
    assert "w+: 7 layers x 96" in result.stdout
    out = tmp_path / "s.png"
    result = run_steer("sample", "--model", str(SNAPSHOT), "-n", "4", "--class", "388", "--truncation", "0.7",
                       "--out", str(out), "--device", "cpu")
    assert result.returncode == 0 and out.is_file()
    walk_dir = tmp_path / "walk"
    result = run_steer("walk", "--model", str(SNAPSHOT), "--edit", "zoom", "--steps", "3", "--batch", "2",
                       "--space", "w+", "--layers", "0:4", "--truncation", "0.7", "--out", str(walk_dir),
                       "--device", "cpu")
    assert result.returncode == 0, result.stderr
    from steer.walks import load
    walk, meta = load(walk_dir / "walk.safetensors")
    assert walk.layers == (0, 4) and meta["space"] == "w+" and meta["truncation"] == 0.7
    result = run_steer("render", "--walk", str(walk_dir / "walk.safetensors"), "--model", str(SNAPSHOT),
                       "--out", str(tmp_path / "render"), "--device", "cpu")
    assert result.returncode == 0 and (tmp_path / "render" / "strip.png").is_file()
    result = run_steer("walk", "--model", str(SNAPSHOT), "--space", "w+", "--layers", "5:9", "--steps", "1",
                       "--out", str(tmp_path / "bad"), "--device", "cpu")
    assert result.returncode == 2 and "outside" in result.stderr
