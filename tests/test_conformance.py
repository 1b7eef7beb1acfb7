"""The generator contract, checked for every family the registry lists (timm-style: one
parametrised suite, so a new family is tested the moment it is registered)."""
import pytest
import torch

from steer import Steering
from steer.edits import get_edit
from steer.fit import FitConfig, fit_walk
from steer.generators.base import FirstLayer, Generator
from steer.generators.registry import FAMILY_MODULES, family, load_generator, save_generator
from steer.walks import LinearWalk

FAMILIES = sorted(FAMILY_MODULES)


@pytest.fixture(params=FAMILIES)
def small(request):
    fam = family(request.param)
    return fam, fam.small(0).eval().requires_grad_(False)


def images_of(G, seed=0, n=2, truncation=None):
    z, c = G.sample(n, seed=seed, truncation=truncation)
    with torch.no_grad():
        return G(z, c, truncation=truncation)


def test_every_registered_family_declares_itself():
    for name in FAMILIES:
        fam = family(name)
        assert fam.name == name
        assert isinstance(fam.small(0), Generator) and fam.small(0).family == name


def test_every_registered_family_declares_a_config_schema():
    """issue 19: the registry checks each family's recorded config against a declared schema
    before anything is built, so a family without check_config would let any config.json
    (or official file's settings) reach its constructors. Its own small model's config passes."""
    for name in FAMILIES:
        fam = family(name)
        assert callable(fam.check_config), f"family {name} declares no check_config"
        if name != "biggan-deep":  # its random model is slow to make; tests/test_biggan.py checks its schema
            config = fam.small(0).config()
            assert fam.check_config(config, name) == config


def test_shapes_dtype_and_range(small):
    _, G = small
    z, c = G.sample(3, seed=1)
    assert z.shape == (3, G.latent_dim) and z.dtype == torch.float32
    assert (c is None) == (G.num_classes == 0)
    if c is not None:
        assert c.dtype == torch.int64 and 0 <= int(c.min()) and int(c.max()) < G.num_classes
    for space in G.spaces:
        latent = G.to_space(z, c, space)
        assert tuple(latent.shape[1:]) == tuple(G.latent_shape(space))
        with torch.no_grad():
            x = G.synthesize(latent, c, space)
        assert x.shape == (3, 3, G.resolution, G.resolution) and x.dtype == torch.float32
        assert torch.isfinite(x).all()
        # [-1, 1]; StyleGAN's official raw output is not clamped, so allow a little beyond
        assert x.abs().max() <= (1.0 + 1e-6 if G.family != "stylegan_xl" else 3.0)
        assert x.std() > 1e-4  # not a constant image


def test_same_seed_same_images(small):
    _, G = small
    assert torch.equal(images_of(G, seed=3), images_of(G, seed=3))
    assert not torch.equal(images_of(G, seed=3), images_of(G, seed=4))


def test_save_load_round_trip_with_source(small, tmp_path):
    fam, G = small
    save_generator(G, tmp_path / "model", "# small\n")
    loaded = load_generator(tmp_path / "model", device="cpu")
    assert type(loaded) is type(G) and loaded.family == fam.name
    assert torch.equal(images_of(loaded, seed=5), images_of(G, seed=5))
    source = loaded.source
    assert source.kind == "folder" and source.family == fam.name
    assert source.path == str((tmp_path / "model").resolve()) and len(source.sha256) == 64


def test_truncation_is_an_argument(small):
    _, G = small
    kind = G.truncation_kind
    assert kind in ("z", "psi", "biggan")
    z, c = G.sample(4, seed=2, truncation=0.5)
    if kind == "z":
        assert z.abs().max() <= 0.5
    if kind == "biggan":
        assert z.abs().max() <= 2 * 0.5 + 1e-6
    if kind == "psi":
        z, c = G.sample(4, seed=2, classes=0 if G.num_classes else None)  # one class: one mean w
        w_avg = G.to_space(z, c, "w", truncation=0.0)
        assert torch.allclose(w_avg, w_avg[:1].expand_as(w_avg), atol=1e-6)  # psi 0: all at the mean
        half = G.to_space(z, c, "w", truncation=0.5)
        full = G.to_space(z, c, "w")
        assert torch.allclose(half, w_avg + 0.5 * (full - w_avg), atol=1e-5)
    if kind in ("psi", "biggan"):
        with torch.no_grad():  # the same latent renders differently under another truncation
            latent = G.to_space(z, c, "z")
            assert not torch.equal(G.synthesize(latent, c, "z", truncation=0.5), G.synthesize(latent, c, "z"))
    before = images_of(G, seed=2)
    images_of(G, seed=2, truncation=0.5)
    assert torch.equal(images_of(G, seed=2), before)  # no state was left behind


def test_first_layer_where_declared(small):
    _, G = small
    if not hasattr(type(G), "first_layer"):
        pytest.skip(f"{G.family} declares no first layer")
    layer = G.first_layer()
    assert isinstance(layer, FirstLayer)
    C, k, k2, d = layer.weight.shape
    assert k == k2 and layer.bias.shape == (C, k, k)
    assert layer.latent.stop - layer.latent.start == d <= G.latent_dim


def test_tunable_parameters_get_gradients(small):
    _, G = small
    params = G.tunable_parameters()
    assert params and all(isinstance(p, torch.nn.Parameter) for p in params)
    G.requires_grad_(True)
    z, c = G.sample(2, seed=0)
    G(z, c).square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    G.zero_grad(set_to_none=True)
    G.requires_grad_(False)


def test_three_step_walk_fit_and_render(small):
    _, G = small
    edit = get_edit("zoom")
    walk = LinearWalk(G.latent_shape(G.default_space), sliders=edit.sliders, seed=0)
    start = walk.directions.detach().clone()
    result = fit_walk(G, walk, edit, FitConfig(steps=3, batch=2, lr=1e-2, space=G.default_space), progress=False)
    assert len(result.history) == 3 and all(v == v for v in result.history)
    assert not torch.equal(walk.directions.detach(), start)
    steering = Steering(G, walk.eval(), edit, G.default_space)
    latent, classes = steering.rows([0, 1])
    strips = steering.strips(latent, classes, [0.5, 1.0, 2.0])
    assert strips.shape == (2, 3, 3, G.resolution, G.resolution)
    with torch.no_grad():  # alpha 1 is the identity zoom: the walk does not move the latent
        assert torch.allclose(strips[:, 1], steering.synthesize(latent, classes), atol=1e-6)
    with_targets = steering.strips(latent, classes, [2.0], targets=True)
    assert with_targets.shape[0] == 4 and not torch.equal(with_targets[0], with_targets[1])
