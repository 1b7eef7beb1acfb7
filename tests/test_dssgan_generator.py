"""steer's DSS-GAN generator against the official one (fixture made by the official code)."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from steer import load_generator
from steer.errors import SteerError
from steer.generators.dssgan.configs import official_config, small_config
from steer.generators.dssgan.generator import DIRECTIONS, DSSGANGenerator, scan, scan_indices, unscan
from tests.conftest import run_steer
from tests.test_safe_pickle import FIXTURES, needs_fixtures

OFFICIAL = FIXTURES / "dssgan_official"


def fixture_generator():
    config = json.loads((OFFICIAL / "config.json").read_text())["generator"]
    G = DSSGANGenerator(config).eval()
    G.load_state_dict(load_file(str(OFFICIAL / "state_dict.safetensors")), strict=True)
    return G


def fixture_inputs():
    inputs = np.load(OFFICIAL / "inputs.npz")
    return torch.from_numpy(inputs["z"]), torch.from_numpy(inputs["y"])


@pytest.fixture(scope="module")
def official_run():
    """Our generator on the fixture inputs, with the intermediates the fixture records."""
    G = fixture_generator()
    seen = {}

    def keep(name):
        return lambda module, args, out: seen.__setitem__(name, out.detach())

    for size in (8, 16, 32, 64, 128):
        for i, block in enumerate(getattr(G, f"mamba_{size}x{size}")):
            prefix = f"stage{size}x{size}.block{i}"
            block.register_forward_hook(keep(f"{prefix}.out"))
            block.direction_weighting.register_forward_hook(keep(f"{prefix}.dir_weights_softmax"))
            for direction, mlp in block.z_projections.items():
                mlp.register_forward_hook(keep(f"{prefix}.zproj_raw.{direction}"))
        # the stage output after its +0.3 residual is what the next upsample receives
        getattr(G, f"up_{size}_to_{2 * size}").register_forward_pre_hook(
            lambda m, args, name=f"stage{size}x{size}.stage_out_after_residual": seen.__setitem__(name, args[0]))
    G.mamba_8x8[0].register_forward_pre_hook(lambda m, args: seen.__setitem__("token_stage_out_BCHW", args[0]))
    G.style_refine_256.register_forward_hook(keep("style_refine_256.out"))
    G.to_rgb.register_forward_hook(keep("to_rgb_pre_tanh"))
    z, y = fixture_inputs()
    with torch.no_grad():
        images = G.synthesize(z, y)
    return G, images, seen


@needs_fixtures
def test_state_dict_keys_match_the_official_module():
    ours = DSSGANGenerator(json.loads((OFFICIAL / "config.json").read_text())["generator"]).state_dict()
    official = load_file(str(OFFICIAL / "state_dict.safetensors"))
    assert set(ours) == set(official)
    for key, value in official.items():
        assert ours[key].shape == value.shape and ours[key].dtype == value.dtype, key
        if key.endswith("_indices"):  # the diagonal orders are computed, not learned
            assert torch.equal(ours[key], value), key


@needs_fixtures
def test_output_matches_the_official_generator(official_run):
    _, images, _ = official_run
    expected = torch.from_numpy(np.load(OFFICIAL / "expected.npz")["x"])
    assert images.shape == (4, 3, 256, 256)
    assert (images - expected).abs().max() < 1e-4


@needs_fixtures
def test_intermediates_match_the_official_generator(official_run):
    _, _, seen = official_run
    recorded = np.load(OFFICIAL / "intermediates.npz")
    checked = 0
    for key in recorded.files:
        name, _, crop = key.partition("__")
        if name not in seen:
            continue
        ours = seen[name]
        if crop:
            ours = ours[:1]
            if crop.endswith("topleft32"):
                ours = ours[..., :32, :32]
            elif crop.endswith("bottomright32"):
                ours = ours[..., -32:, -32:]
        expected = torch.from_numpy(recorded[key])
        assert ours.shape == expected.shape, key
        assert (ours - expected).abs().max() < 1e-4, key
        checked += 1
    assert checked >= 30  # weights, DLR MLPs, block and stage outputs, top block, pre-tanh


@needs_fixtures
def test_official_pickle_loads_without_running_it_and_gives_the_official_images():
    G = load_generator(str(OFFICIAL / "generator_full_ema.pt"), device="cpu")
    assert not G.training  # the file was saved in training mode; the random rotation is off
    z, y = fixture_inputs()
    expected = torch.from_numpy(np.load(OFFICIAL / "expected.npz")["x"])
    assert (G.synthesize(z, y) - expected).abs().max() < 1e-4
    assert G.scan_directions == ["row_fwd", "col_fwd", "diag_left"]
    assert [b.routing_clip for b in (G.mamba_8x8[0], G.mamba_32x32[0], G.mamba_128x128[0])] == [0.8, 0.5, 0.2]


@needs_fixtures
def test_cli_takes_an_official_checkpoint(tmp_path):
    path = str(OFFICIAL / "generator_full_ema.pt")
    result = run_steer("models", "--model", path)
    assert result.returncode == 0, result.stderr
    assert "row_fwd" in result.stdout and "z[16:24]" in result.stdout and "dssgan" in result.stdout
    out = tmp_path / "grid.png"
    result = run_steer("sample", "--model", path, "-n", "2", "--out", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 1000


@pytest.mark.parametrize("shape", [(8, 8), (5, 7), (16, 3)])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_unscan_inverts_scan(direction, shape):
    x = torch.randn(2, 3, *shape)
    seq = scan(x, direction)
    assert seq.shape == (2, shape[0] * shape[1], 3)
    assert torch.equal(unscan(seq, direction, *shape), x)


def test_scan_orders_follow_the_official_definitions():
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6)
    raster = lambda t: t.flatten(2).transpose(1, 2)
    assert torch.equal(scan(x, "row_fwd"), raster(x))
    assert torch.equal(scan(x, "row_bwd"), raster(x.flip(3)))  # each row reversed, rows in order
    assert torch.equal(scan(x, "col_fwd"), raster(x.transpose(2, 3)))
    assert torch.equal(scan(x, "col_bwd"), raster(x.flip(2).transpose(2, 3)))
    # diagonals: anti-diagonals i+j = k from the top-left corner; diag_left walks i downward
    height, width = 4, 6
    left, right = [], []
    for k in range(height + width - 1):
        rows = range(max(0, k - width + 1), min(k, height - 1) + 1)
        left += [i * width + k - i for i in reversed(rows)]
        right += [i * width + k - i for i in rows]
    assert scan_indices(height, width, "diag_left")[0].tolist() == left
    assert scan_indices(height, width, "diag_right")[0].tolist() == right
    # rot180 then a raster scan is the reversed raster: the rotation flips the causal order
    assert torch.equal(scan(torch.rot90(x, 2, (2, 3)), "row_fwd"), raster(x).flip(1))


@needs_fixtures
def test_diagonal_orders_equal_the_official_buffers_at_every_size():
    official = load_file(str(OFFICIAL / "state_dict.safetensors"))
    for size in (8, 16, 32, 64, 128):
        for direction in ("diag_left", "diag_right"):
            stored = official[f"mamba_{size}x{size}.0.{direction}_indices"]
            assert torch.equal(scan_indices(size, size, direction)[0], stored)


@needs_fixtures
def test_rotation_is_training_only_and_changes_the_image():
    G = fixture_generator()
    z, y = fixture_inputs()
    with torch.no_grad():
        plain = G.synthesize(z, y)
        G.train()
        G.rotation_modes = ["none"]
        assert torch.allclose(G.synthesize(z, y), plain, atol=1e-6)
        G.rotation_modes = ["rot180"]
        rotated = G.synthesize(z, y)
    assert (rotated - plain).abs().mean() > 3e-3  # the fixture notes a mean change of 0.014


def tiny_generator(directions=("row_fwd", "col_bwd", "diag_right")):
    torch.manual_seed(0)
    G = DSSGANGenerator(small_config(resolution=16, num_classes=3, channels=(8, 6), d_state=4,
                                     directions=directions, z_base=6, z_per_direction=4))
    with torch.no_grad():  # wake up the zero- and small-initialised routing and styles
        for name, p in G.named_parameters():
            if "z_to_weights" in name or "class_routing_proj" in name or "routing_alpha" in name:
                p.normal_(0, 1)
    return G.eval()


def test_latent_layout_names_each_direction_slice():
    G = tiny_generator()
    layout = G.latent_layout()
    assert list(layout) == ["z_base", "row_fwd", "col_bwd", "diag_right"]
    assert [(s.start, s.stop) for s in layout.values()] == [(0, 6), (6, 10), (10, 14), (14, 18)]
    z, y = G.sample(2, seed=1)
    tokens = {}
    G.mamba_8x8[0].register_forward_pre_hook(lambda m, args: tokens.__setitem__("t", args[0].clone()))
    base = G.synthesize(z, y)
    base_tokens = tokens["t"]
    for name, span in layout.items():
        moved = z.clone()
        moved[:, span] += 1.0
        out = G.synthesize(moved, y)
        assert (out - base).abs().max() > 1e-4, name
        # only z_base feeds the token stage; direction chunks act inside the DLR blocks
        assert torch.equal(tokens["t"], base_tokens) == (name != "z_base"), name


def test_class_override_per_direction():
    G = tiny_generator()
    z, _ = G.sample(2, seed=3)
    y = torch.tensor([0, 0])
    base = G.synthesize(z, y)
    same = G.synthesize(z, y, direction_classes=torch.tensor([[0, 0, 0], [0, 0, 0]]))
    assert torch.equal(same, base)
    one = G.synthesize(z, y, direction_classes=torch.tensor([0, 2, 0]))  # broadcast over the batch
    every = G.synthesize(z, y, direction_classes=torch.tensor([2, 2, 2]))
    other_class = G.synthesize(z, torch.tensor([2, 2]))
    assert (one - base).abs().max() > 1e-4
    assert not torch.allclose(one, every)
    # the override leaves the token-stage class and the top block's class style alone
    assert not torch.allclose(every, other_class)


def test_official_configs_build_the_official_module_tree():
    # parameter counts of the official modules built from the official configs
    expected = {128: 6_464_256, 256: 7_232_872, 512: 5_381_878}
    for resolution, count in expected.items():
        G = DSSGANGenerator(official_config(resolution))
        assert sum(p.numel() for p in G.parameters()) == count
        names = {name.split(".")[0] for name, _ in G.named_parameters()}
        assert f"style_refine_{resolution}" in names
        assert ("mamba_128x128" in names) == (resolution > 128)
        assert ("mamba_256x256" in names) == (resolution == 512)


def test_unsupported_options_are_refused():
    config = small_config(resolution=16, channels=(8, 6))
    with pytest.raises(SteerError, match="use_blur_upsample"):
        DSSGANGenerator({**config, "use_blur_upsample": True})
    with pytest.raises(SteerError, match="power of two"):
        DSSGANGenerator({**config, "resolution": 24})
    with pytest.raises(SteerError, match="unknown scan direction"):
        scan(torch.zeros(1, 1, 2, 2), "spiral")


def test_small_model_round_trips_through_a_model_folder(tmp_path):
    from steer.generators.registry import save_generator
    G = tiny_generator()
    save_generator(G, tmp_path / "m", card="# tiny\n")
    loaded = load_generator(str(tmp_path / "m"), device="cpu")
    z, y = G.sample(3, seed=0)
    with torch.no_grad():
        assert torch.allclose(loaded.synthesize(z, y), G.synthesize(z, y), atol=1e-6)
    assert loaded.latent_layout() == G.latent_layout()


def test_walk_command_learns_on_a_dssgan_model(tmp_path):
    from steer.generators.registry import save_generator
    save_generator(tiny_generator(), tmp_path / "tiny-dss", card="# tiny\n")
    out = tmp_path / "walk"
    result = run_steer("walk", "--model", str(tmp_path / "tiny-dss"), "--edit", "zoom", "--steps", "20",
                       "--batch", "4", "--out", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    history = json.loads((out / "loss.json").read_text())["loss"]
    assert len(history) == 20 and np.isfinite(history).all()
    from steer.edits import get_edit
    from steer.walks import make_walk
    learned = load_file(str(out / "walk.safetensors"))
    initial = make_walk("linear", get_edit("zoom"), (18,), 16, seed=0).state_dict()
    # gradients reached the walk through the generator's Mamba scans
    assert set(learned) == set(initial)
    assert all((learned[k] - initial[k]).abs().max() > 1e-6 for k in initial)


@needs_fixtures
def test_checkpoint_written_on_a_gpu_loads_on_the_cpu(tmp_path):
    """Official checkpoints from GPU training tag every storage 'cuda:0'."""
    import zipfile
    source = zipfile.ZipFile(OFFICIAL / "generator_full_ema.pt")
    path = tmp_path / "G_full_ema_epoch_001.pt"
    with zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):
                assert data.count(b"X\x03\x00\x00\x00cpu") == 1  # memoised after its first use
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            target.writestr(info, data)
    G = load_generator(str(path), device="cpu")
    z, y = fixture_inputs()
    expected = torch.from_numpy(np.load(OFFICIAL / "expected.npz")["x"])
    assert (G.synthesize(z, y) - expected).abs().max() < 1e-4


@needs_fixtures
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_official_checkpoint_on_cuda_gives_the_official_images():
    G = load_generator(str(OFFICIAL / "generator_full_ema.pt"), device="cuda")
    z, y = fixture_inputs()
    expected = torch.from_numpy(np.load(OFFICIAL / "expected.npz")["x"])
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions alone move the output by ~1e-3
    try:
        with torch.no_grad():
            images = G.synthesize(z.cuda(), y.cuda()).cpu()
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    assert (images - expected).abs().max() < 1e-4
