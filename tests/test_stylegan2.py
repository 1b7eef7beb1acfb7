"""StyleGAN2-ADA, StyleGAN3 (T, R, --cfg stylegan2) and rosinality StyleGAN2: official files
load with a strict key match and give the official ws, images and intermediates; hostile
variants of each format are refused or stay inert, and nothing in them runs; each format
goes through the commands."""
import json
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from steer.errors import SteerError
from steer.generators.registry import _load_weights_only as load_weights_only, load_generator
from tests.conftest import FIXTURES, REPO, run_steer

NVLABS = {
    "ada_cond": FIXTURES / "stylegan2_ada_official" / "cond" / "network-snapshot-000200.pkl",
    "ada_uncond": FIXTURES / "stylegan2_ada_official" / "uncond" / "network-snapshot-000200.pkl",
    "sg3_t": FIXTURES / "stylegan3_official" / "t" / "network-snapshot-000160.pkl",
    "sg3_r_cond": FIXTURES / "stylegan3_official" / "r_cond" / "network-snapshot-000160.pkl",
    "sg3_sg2_cond": FIXTURES / "stylegan3_official" / "sg2_cond" / "network-snapshot-000160.pkl",
}
FAMILY_OF = {"ada_cond": "stylegan2", "ada_uncond": "stylegan2", "sg3_t": "stylegan3", "sg3_r_cond": "stylegan3",
             "sg3_sg2_cond": "stylegan2"}
ROS = FIXTURES / "rosinality_stylegan2"
ROS_FILES = {"converted": ROS / "stylegan2-fixture-converted.pt", "train": ROS / "040000.pt"}
needs = pytest.mark.skipif(not (FIXTURES / "stylegan2_ada_official").is_dir() or not ROS.is_dir()
                           or not (FIXTURES / "stylegan3_official").is_dir(),
                           reason="shared/fixtures is not beside the checkout")


def _max(a, b):
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())


@pytest.fixture(scope="module")
def nvlabs_models():
    return {key: load_generator(path, device="cpu") for key, path in NVLABS.items()}


@pytest.fixture(scope="module")
def ros_models():
    return {key: load_generator(path, device="cpu") for key, path in ROS_FILES.items()}


def _rows(folder):
    inputs = np.load(folder / "inputs.npz")
    labels = torch.from_numpy(inputs["labels"]) if "labels" in inputs.files else None
    rows = []
    for psi, cutoff in zip(inputs["truncation_psi"], inputs["truncation_cutoff"]):
        cutoff = None if cutoff < 0 else int(cutoff)
        tag = f"psi_{str(float(psi)).replace('.', '_')}" + ("" if cutoff is None else f"_cutoff_{cutoff}")
        rows.append((tag, float(psi), cutoff))
    return torch.from_numpy(inputs["z"]), labels, rows, inputs


# ---- NVlabs pickles --------------------------------------------------------------------------

@needs
@pytest.mark.parametrize("key", sorted(NVLABS))
def test_nvlabs_state_dict_keys_and_values_equal_the_official(nvlabs_models, key):
    G = nvlabs_models[key]
    assert G.family == FAMILY_OF[key]
    reference = load_file(str(NVLABS[key].parent / "state_dict.safetensors"))
    ours = G.state_dict()
    assert set(ours) == set(reference)
    for name, value in reference.items():
        assert torch.equal(ours[name], value), name


@needs
@pytest.mark.parametrize("key", sorted(NVLABS))
def test_nvlabs_config_read_from_recorded_attributes(nvlabs_models, key):
    G = nvlabs_models[key]
    modules = json.loads((NVLABS[key].parent / "layer_attrs.json").read_text())
    root = modules["<root>"]["attrs"]
    assert (G.latent_dim, G.w_dim, G.num_classes, G.resolution, G.num_ws) == (
        root["z_dim"], root["w_dim"], root["c_dim"], root["img_resolution"], root["num_ws"])
    assert G.mapping.num_layers == modules["mapping"]["attrs"]["num_layers"]
    if G.family == "stylegan2":
        for res in modules["synthesis"]["attrs"]["block_resolutions"]:
            official, ours = modules[f"synthesis.b{res}"]["attrs"], getattr(G.synthesis, f"b{res}")
            assert (ours.architecture, ours.use_fp16, ours.num_conv, ours.num_torgb, ours.is_last) == (
                official["architecture"], official["use_fp16"], official["num_conv"], official["num_torgb"],
                official["is_last"])
            assert ours.conv1.conv_clamp == modules[f"synthesis.b{res}.conv1"]["attrs"]["conv_clamp"]
    else:
        assert G.synthesis.layer_names == modules["synthesis"]["attrs"]["layer_names"]
        for name in G.synthesis.layer_names:
            official, ours = modules[f"synthesis.{name}"]["attrs"], getattr(G.synthesis, name)
            assert ours.padding == official["padding"] and ours.conv_kernel == official["conv_kernel"]
            radial = ours.down_filter is not None and ours.down_filter.ndim == 2
            assert radial == official["down_radial"], name


@needs
@pytest.mark.parametrize("key", sorted(NVLABS))
def test_nvlabs_ws_and_images_match_the_official(nvlabs_models, key):
    G, folder = nvlabs_models[key], NVLABS[key].parent
    z, labels, rows, inputs = _rows(folder)
    expected, expected_ws = np.load(folder / "expected.npz"), np.load(folder / "expected_ws.npz")
    assert any(cutoff is not None for _, _, cutoff in rows)
    with torch.no_grad():
        for tag, psi, cutoff in rows:
            ws = G.mapping_ws(z, labels, psi, cutoff)
            assert _max(ws, expected_ws[f"ws_{tag}"]) < 1e-5, tag
            assert _max(G.synthesize_ws(ws), expected[f"images_{tag}"]) < 1e-4, tag
            assert _max(G.official_forward(z, labels, psi, cutoff), expected[f"images_{tag}"]) < 1e-4, tag
        # a direct W+ input far from w_avg: values in the hundreds, where the clamps act
        probe, want = G.synthesize_ws(torch.from_numpy(inputs["ws_probe"])), expected["images_ws_probe"]
        assert _max(probe, want) <= 1e-5 * float(np.abs(want).max())
        # the adapter's own path: truncation as an argument, the cutoff as a setting
        tag, psi, cutoff = rows[-1]
        G.truncation_cutoff = cutoff
        try:
            w_plus = G.to_space(z, labels, "w+", truncation=psi)
            assert _max(G.synthesize(w_plus, labels, "w+"), expected[f"images_{tag}"]) < 1e-4
            assert _max(G(z, labels, "z", truncation=psi), expected[f"images_{tag}"]) < 1e-4
        finally:
            G.truncation_cutoff = None
        w = G.to_space(z, labels, "w")
        assert _max(G.synthesize(w, labels, "w"), expected["images_psi_1_0"]) < 1e-4


def _hook_outputs(G, names, run):
    outputs, handles = {}, []
    for name in names:
        def hook(module, args, output, name=name):
            outputs[name] = output
        handles.append(G.get_submodule(name).register_forward_hook(hook))
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def _check_intermediates(G, folder, run):
    stored = np.load(folder / "intermediates.npz")
    names = sorted({k.split("__")[0] for k in stored.files})
    outputs = _hook_outputs(G, names, run)
    checked = 0
    for key in stored.files:
        name, _, rest = key.partition("__")
        out = outputs[name]
        if rest.startswith("out"):
            out, rest = out[int(rest[3])], rest[5:]
        if rest.startswith("_"):
            rest = rest[1:]
        if rest == "stats":
            continue
        if rest == "sample0":
            out = out[:1]
        elif rest == "sample0_ch0to3":
            out = out[:1, :4]
        elif rest:
            raise AssertionError(f"unknown entry {key}")
        want = stored[key]
        assert tuple(out.shape) == want.shape, key
        assert _max(out, want) <= 1e-4 * max(1.0, float(np.abs(want).max())), key
        stats = stored[f"{name}__{key.split('__')[1]}__stats" if "__out" in key else f"{name}__stats"]
        full = out if rest == "" else None
        if full is not None:
            assert abs(float(full.double().mean()) - stats[0]) < 1e-4 * max(1.0, abs(stats[2])), key
            assert abs(float(full.double().abs().max()) - stats[2]) < 1e-4 * max(1.0, abs(stats[2])), key
        checked += 1
    return checked


@needs
@pytest.mark.parametrize("key", sorted(NVLABS))
def test_nvlabs_intermediates_match_layer_by_layer(nvlabs_models, key):
    G, folder = nvlabs_models[key], NVLABS[key].parent
    z, labels, _, _ = _rows(folder)
    assert _check_intermediates(G, folder, lambda: G.official_forward(z, labels)) >= 7


@needs
def test_noise_modes_and_fp16_flags():
    G = load_generator(NVLABS["ada_cond"], device="cpu")
    z, labels, _, _ = _rows(NVLABS["ada_cond"].parent)
    with torch.no_grad():
        const = G(z, labels)
        G.set_noise("none")
        none = G(z, labels)
        G.set_noise("random", seed=3)
        random_a, random_b = G(z, labels), G(z, labels)
        G.set_noise("random", seed=4)
        random_c = G(z, labels)
    assert not torch.equal(const, none) and torch.equal(random_a, random_b) and not torch.equal(random_a, random_c)
    assert [getattr(G.synthesis, f"b{r}").use_fp16 for r in (4, 8, 16, 32)] == [False, True, True, True]
    assert all(p.dtype == torch.float32 for p in G.parameters())  # fp16 blocks run in fp32
    with pytest.raises(SteerError, match="noise mode"):
        G.set_noise("loud")


# ---- rosinality ------------------------------------------------------------------------------

@needs
@pytest.mark.parametrize("key", sorted(ROS_FILES))
def test_rosinality_loads_strictly_and_matches(ros_models, key):
    G = ros_models[key]
    assert G.family == "rosinality" and (G.resolution, G.latent_dim, G.num_ws) == (32, 64, 8)
    reference = load_file(str(ROS / "state_dict.safetensors"))
    ours = {k: v for k, v in G.state_dict().items() if k != "latent_avg"}
    assert set(ours) == set(reference)
    for name, value in reference.items():
        assert torch.equal(ours[name], value), name
    inputs, expected, expected_ws = (np.load(ROS / f) for f in ("inputs.npz", "expected.npz", "expected_ws.npz"))
    latent_avg = torch.from_numpy(inputs["latent_avg"])
    if key == "converted":
        assert G.latent_avg_source == "checkpoint" and torch.equal(G.latent_avg, latent_avg)
    else:  # a training checkpoint has no latent_avg: a seeded mean of style(z), close to it
        assert G.latent_avg_source.startswith("mean") and _max(G.latent_avg, latent_avg) < 0.1
    z, z2 = torch.from_numpy(inputs["z"]), torch.from_numpy(inputs["z2_mix"])
    saved = G.latent_avg.clone()
    G.latent_avg.copy_(latent_avg)
    try:
        with torch.no_grad():
            assert _max(G.style(z), expected_ws["styles_z"]) < 1e-5
            for tag, psi in (("psi_1_0", 1.0), ("psi_0_7", 0.7)):
                ws = G.mapping_ws(z, None, psi)
                assert _max(ws, expected_ws[f"latents_{tag}"]) < 1e-5
                assert _max(G.synthesize_ws(ws), expected[f"images_{tag}"]) < 1e-4
                assert _max(G(z, None, "z", truncation=psi), expected[f"images_{tag}"]) < 1e-4
            k = int(inputs["inject_index"])  # style mixing is a w+ latent
            mixed = torch.cat([G.to_space(z, None, "w+")[:, :k], G.to_space(z2, None, "w+")[:, k:]], dim=1)
            assert _max(mixed, expected_ws["latents_mix"]) < 1e-5
            assert _max(G.synthesize(mixed, None, "w+"), expected["images_mix"]) < 1e-4
            G.set_noise("none")
            assert _max(G.synthesize_ws(G.mapping_ws(z)), expected["images_zero_noise"]) < 1e-4
    finally:
        G.set_noise("const")
        G.latent_avg.copy_(saved)
    assert _check_intermediates(G, ROS, lambda: G.synthesize_ws(G.mapping_ws(z))) >= 10


@needs
def test_rosinality_read_as_weights_only_where_the_file_allows():
    assert isinstance(load_weights_only(ROS_FILES["converted"]), dict)
    assert load_weights_only(ROS_FILES["train"]) is None  # argparse.Namespace: the restricted unpickler


# ---- hostile variants ------------------------------------------------------------------------

def write_marker(path):  # what a hostile file would like to call
    open(path, "w").write("ran")


class _Calls:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


class _Persistent:
    def __init__(self, reconstruct, meta):
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self):
        return (self.reconstruct, (self.meta,))


def _fake_persistence(monkeypatch):
    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("never called")

    _reconstruct_persistent_obj.__module__ = module.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)
    return _reconstruct_persistent_obj


@needs
@pytest.mark.parametrize("key", ["ada_cond", "sg3_r_cond"])
def test_nvlabs_embedded_source_is_never_run(key, tmp_path):
    """The real fixture with code in place of its source placeholder: the official loader
    would exec it; steer loads the file and the code never runs."""
    data = NVLABS[key].read_bytes()
    placeholder = b"# source elided from fixture: training/networks" + (b".py" if key == "ada_cond" else b"_stylegan3.py")
    code = b"import os;os.system('touch ran');open('ran2','w')"
    assert len(code) <= len(placeholder) and data.count(placeholder) == 1
    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(data.replace(placeholder, code.ljust(len(placeholder), b"#")))
    result = run_steer("models", "--model", str(hostile), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert FAMILY_OF[key] in result.stdout
    assert not (tmp_path / "ran").exists() and not (tmp_path / "ran2").exists()


@pytest.mark.parametrize("payload", ["os.system", "eval", "marker"])
def test_hostile_nvlabs_snapshot_is_refused_or_inert(payload, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    reconstruct = _fake_persistence(monkeypatch)
    call = {"os.system": _Calls(os.system, f"touch {marker}"),
            "eval": _Calls(eval, f"open({str(marker)!r}, 'w')"),
            "marker": _Calls(write_marker, str(marker))}[payload]
    meta = {"type": "class", "version": 6, "module_src": f"open({str(marker)!r}, 'w')\n", "class_name": "Generator",
            "state": {"z_dim": 8, "_modules": {}, "hook": call, "_init_kwargs": {"z_dim": 8}}}
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(pickle.dumps({"training_set_kwargs": {}, "G_ema": _Persistent(reconstruct, meta)}, protocol=4))
    monkeypatch.delitem(sys.modules, "torch_utils.persistence")
    result = run_steer("models", "--model", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = "asks to run code" if payload != "marker" else "not a generator checkpoint"
    assert expected in result.stderr
    assert not marker.exists()


@needs
@pytest.mark.parametrize("payload", ["os.system", "marker"])
def test_hostile_rosinality_checkpoint_is_refused_or_inert(payload, tmp_path):
    marker = tmp_path / "ran"
    state = load_file(str(ROS / "state_dict.safetensors"))
    call = _Calls(os.system, f"touch {marker}") if payload == "os.system" else _Calls(write_marker, str(marker))
    path = tmp_path / "stylegan2-hostile.pt"
    torch.save({"g_ema": state, "latent_avg": torch.zeros(64), "args": call}, path)
    if payload == "os.system":
        with pytest.raises(SteerError, match="asks to run code"):
            load_generator(path, device="cpu")
    else:  # an unknown callable is recorded as an inert stub, never called: the file loads
        G = load_generator(path, device="cpu")
        assert G.family == "rosinality"
    assert not marker.exists()


def test_configs_no_official_code_makes_are_refused(tmp_path, monkeypatch):
    from steer.generators.safe_pickle import PersistentStub
    from steer.generators.stylegan2.official import read_nvlabs
    G = load_generator(NVLABS["ada_uncond"], device="cpu") if NVLABS["ada_uncond"].is_file() else None
    if G is None:
        pytest.skip("fixture missing")
    from steer.generators.safe_pickle import safe_load
    snapshot = safe_load(NVLABS["ada_uncond"])
    stub = snapshot["G_ema"]
    assert isinstance(stub, PersistentStub)
    block = stub.state["_modules"]["synthesis"].state["_modules"]["b16"]
    block.state["architecture"] = "fancy"
    with pytest.raises(SteerError, match="architecture 'fancy'"):
        read_nvlabs(snapshot, "x", "stylegan2")
    block.state["architecture"] = "skip"
    fc = stub.state["_modules"]["mapping"].state["_modules"]["fc1"]
    fc.state["weight_gain"] = 1.0
    with pytest.raises(SteerError, match="lr multiplier"):
        read_nvlabs(snapshot, "x", "stylegan2")


# ---- the commands ----------------------------------------------------------------------------

def ok(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@needs
def test_steer_models_routes_each_format():
    for path, family, spaces in ((NVLABS["ada_cond"], "stylegan2", "w+: 8 layers x 128"),
                                 (NVLABS["sg3_t"], "stylegan3", "w+: 16 layers x 256"),
                                 (ROS_FILES["converted"], "rosinality", "w+: 8 layers x 64")):
        result = ok(run_steer("models", "--model", str(path)))
        assert family in result.stdout and "z, w, w+" in result.stdout and spaces in result.stdout


def _flow(model, tmp_path, klass=None):
    walk_dir = tmp_path / "walk"
    args = ["walk", "--model", str(model), "--edit", "zoom", "--steps", "2", "--batch", "2",
            "--truncation", "0.7", "--out", str(walk_dir), "--device", "cpu"]
    ok(run_steer(*args))
    walk = walk_dir / "walk.safetensors"
    ok(run_steer("render", "--walk", str(walk), "--seeds", "0,1", "--alphas", "0.5,2", "--out", str(tmp_path / "r")))
    assert (tmp_path / "r" / "strip.png").is_file()
    ok(run_steer("quantify", "--walk", str(walk), "--samples", "4", "--alphas", "0.5,1,2", "--data", "none",
                 "--features", "none", "--out", str(tmp_path / "q")))
    assert (tmp_path / "q" / "quantify.json").is_file()
    invert = ["invert", "--image", str(REPO / "assets" / "zoom_strip.png"), "--walk", str(walk), "--allow-l2",
              "--project-steps", "3", "--tune-steps", "2", "--out", str(tmp_path / "inv")]
    ok(run_steer(*(invert + (["--class", str(klass)] if klass is not None else []))))
    ok(run_steer("edit", "--inversion", str(tmp_path / "inv"), "--walk", str(walk), "--alphas", "0.5,2",
                 "--out", str(tmp_path / "edit")))
    assert (tmp_path / "edit" / "strip.png").is_file()


@needs
@pytest.mark.parametrize("key", ["ada_cond"] + [  # five commands in subprocesses: about 50 s each on one core
    pytest.param(key, marks=pytest.mark.slow) for key in ("sg3_t", "sg3_r_cond", "rosinality")])
@pytest.mark.slow
def test_flow_walk_render_quantify_invert_edit(key, tmp_path):
    model = ROS_FILES["converted"] if key == "rosinality" else NVLABS[key]
    _flow(model, tmp_path, klass=1 if key.endswith("cond") else None)


# ---- peer direction files --------------------------------------------------------------------

@needs
def test_peer_direction_files_import_and_export(nvlabs_models, tmp_path):
    from steer.peer_directions import export_direction, import_direction
    from steer.walks import load, save
    G = nvlabs_models["ada_uncond"]  # w_dim 96, 8 ws
    rng = np.random.RandomState(0)
    boundary = rng.randn(1, 96).astype(np.float32)
    boundary /= np.linalg.norm(boundary)
    np.save(tmp_path / "smile_w.npy", boundary)
    walk, meta = import_direction(tmp_path / "smile_w.npy", G, "interfacegan", space="w")
    assert walk.latent_shape == (96,) and np.allclose(walk.directions.detach().numpy(), boundary)
    z, _ = G.sample(2, seed=0)
    w = G.to_space(z, None, "w")
    moved = walk.move(w, torch.full((2, 1), 3.0))
    assert torch.allclose(moved, w + 3 * torch.from_numpy(boundary), atol=1e-6)
    save(walk, tmp_path / "smile.safetensors", dict(meta, edit="brightness", model=str(NVLABS["ada_uncond"])))
    assert load(tmp_path / "smile.safetensors")[1]["peer"]["format"] == "interfacegan"
    export_direction(walk, tmp_path / "back.npy", "interfacegan")
    assert np.allclose(np.load(tmp_path / "back.npy"), boundary, atol=1e-6)
    np.save(tmp_path / "other_model.npy", boundary[:, :50])
    with pytest.raises(SteerError, match="does not fit"):
        import_direction(tmp_path / "other_model.npy", G, "interfacegan", space="w")

    # GANSpace components, scaled by their stdev; SeFa rows applied to w+ layers 0:4
    comps = rng.randn(5, 1, 96).astype(np.float32)
    np.savez(tmp_path / "ganspace.npz", lat_comp=comps, lat_stdev=np.arange(1, 6, dtype=np.float32),
             lat_mean=np.zeros(96, np.float32))
    walk, _ = import_direction(tmp_path / "ganspace.npz", G, "ganspace", space="w", index=2)
    assert np.allclose(walk.directions.detach().numpy()[0], comps[2, 0] * 3)
    export_direction(walk, tmp_path / "gs_back.npz", "ganspace")
    again, _ = import_direction(tmp_path / "gs_back.npz", G, "ganspace", space="w", index=0)
    assert torch.allclose(again.directions, walk.directions, atol=1e-5)
    sefa = rng.randn(4, 96).astype(np.float32)
    np.save(tmp_path / "sefa.npy", sefa)
    walk, _ = import_direction(tmp_path / "sefa.npy", G, "sefa", space="w+", index=1, layers=(0, 4))
    w_plus = G.to_space(z, None, "w+")
    moved = walk.move(w_plus, torch.ones(2, 1))
    assert torch.allclose(moved[:, :4], w_plus[:, :4] + torch.from_numpy(sefa[1]), atol=1e-5)
    assert torch.equal(moved[:, 4:], w_plus[:, 4:])
    export_direction(walk, tmp_path / "sefa_back.npy", "sefa")
    back = np.load(tmp_path / "sefa_back.npy")
    assert back.shape == (1, 8 * 96) and np.allclose(back.reshape(8, 96)[4:], 0)
    # a pickled array is refused, never unpickled
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SteerError, match="pickled arrays are refused"):
        import_direction(tmp_path / "pickled.npy", G, "interfacegan")
