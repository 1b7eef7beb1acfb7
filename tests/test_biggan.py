"""steer's BigGAN-deep against the reference package (pytorch-pretrained-biggan, a test-only
dependency): the same state dict, saved as the release is saved, gives the same images."""
import json
import os

import pytest
import torch
import torch.nn.functional as F

from steer import SteerError, load_generator
from steer.generators.biggan import (TruncationBatchNorm, load_biggan_folder, random_biggan, release_config,
                                     save_biggan_folder)

CLASSES = [1, 207, 980]


@torch.no_grad()
def _randomise_reference(model, seed=0):
    """Give the reference model random weights it can run: converged spectral-norm vectors,
    a non-zero attention gamma, a random class embedding and final batch-norm affine, and
    batch-norm statistics measured on its own activations then varied per truncation row."""
    gen = torch.Generator().manual_seed(seed)
    model.embeddings.weight.normal_(0, 1, generator=gen)
    model.generator.bn.weight.copy_(1 + 0.2 * torch.randn(model.generator.bn.weight.shape, generator=gen))
    model.generator.bn.bias.copy_(0.2 * torch.randn(model.generator.bn.bias.shape, generator=gen))
    for module in model.modules():
        if hasattr(module, "weight_orig"):
            w = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
            for _ in range(30):
                module.weight_v.copy_(F.normalize(w.t() @ module.weight_u, dim=0))
                module.weight_u.copy_(F.normalize(w @ module.weight_v, dim=0))
        if hasattr(module, "gamma"):
            module.gamma.fill_(0.8)
    norms = [m for m in model.modules() if hasattr(m, "running_means")]

    def measure(module, args):
        x = args[0]
        module.running_means.copy_(x.mean((0, 2, 3)).expand_as(module.running_means))
        module.running_vars.copy_(x.var((0, 2, 3)).expand_as(module.running_vars))

    hooks = [m.register_forward_pre_hook(measure) for m in norms]
    z = torch.randn(4, 128, generator=gen).clamp(-2, 2)
    model(z, F.one_hot(torch.tensor([0, 1, 2, 3]), 1000).float(), 1.0)
    for h in hooks:
        h.remove()
    for m in norms:
        m.running_means.add_(0.3 * m.running_vars.sqrt() * torch.randn(m.running_means.shape, generator=gen))
        m.running_vars.mul_(torch.exp(0.3 * torch.randn(m.running_vars.shape, generator=gen)))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(folder holding pytorch_model.bin + config.json as the release writes them, reference model)."""
    biggan = pytest.importorskip("pytorch_pretrained_biggan")
    torch.manual_seed(0)
    config = biggan.BigGANConfig(**release_config(128))  # the values of the released 128 px model
    reference = biggan.BigGAN(config)
    _randomise_reference(reference)
    reference.eval()
    folder = tmp_path_factory.mktemp("release") / "biggan-deep-128"
    folder.mkdir()
    torch.save(reference.state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(config.to_json_string())
    return folder, reference


def _reference_images(reference, z, classes, truncation):
    with torch.no_grad():
        return reference(z, F.one_hot(classes, 1000).float(), truncation)


def test_release_images_match_reference(release):
    folder, reference = release
    G = load_generator(folder, device="cpu")
    assert (G.resolution, G.num_classes, G.latent_dim, G.name) == (128, 1000, 128, "biggan-deep-128")
    images = {}
    for truncation in (0.4, 1.0):
        z, classes = G.sample(3, seed=5, truncation=truncation, classes=torch.tensor(CLASSES))
        assert z.abs().max() <= 2 * truncation
        with torch.no_grad():
            ours = G.synthesize(z, classes, truncation=truncation)
        theirs = _reference_images(reference, z, classes, truncation)
        diff = (ours - theirs).abs().max().item()
        print(f"truncation {truncation}: max |steer - reference| = {diff:.2e}")
        assert diff < 1e-5
        images[truncation] = ours
        # the three classes give three different images, so the class path is exercised
        assert (ours[0] - ours[1]).abs().mean() > 1e-2 and (ours[1] - ours[2]).abs().mean() > 1e-2
    # the same z at the two truncations: the batch-norm statistics must differ visibly
    z, classes = G.sample(3, seed=5, truncation=0.4, classes=torch.tensor(CLASSES))
    with torch.no_grad():
        a, b = G.synthesize(z, classes, truncation=0.4), G.synthesize(z, classes, truncation=1.0)
    assert (a - b).abs().mean() > 1e-2


def test_truncation_between_stored_values(release):
    """Between two stored rows the statistics are the linear interpolation; at a midpoint
    the reference (which weights the two rows the other way round) agrees with us."""
    folder, reference = release
    G = load_generator(folder, device="cpu")
    bn = next(m for m in G.modules() if isinstance(m, TruncationBatchNorm))
    mean, var = bn.statistics(0.405)  # a quarter of the way from row 20 (0.40) to row 21 (0.42)
    assert torch.allclose(mean, 0.75 * bn.running_means[20] + 0.25 * bn.running_means[21], atol=1e-6)
    assert torch.allclose(var, 0.75 * bn.running_vars[20] + 0.25 * bn.running_vars[21], atol=1e-6)
    assert not torch.allclose(mean, bn.running_means[20], atol=1e-3)
    z, classes = G.sample(2, seed=1, truncation=0.41, classes=torch.tensor([3, 500]))
    with torch.no_grad():
        ours = G.synthesize(z, classes, truncation=0.41)
    assert (ours - _reference_images(reference, z, classes, 0.41)).abs().max() < 1e-5
    # truncation is an argument, never state: forward passes it through to synthesis
    with torch.no_grad():
        assert torch.equal(G(z, classes, truncation=0.41), ours)
        assert not torch.equal(G(z, classes), ours)  # and without it there is none


def test_first_layer_is_gen_z_on_the_grid(release):
    folder, _ = release
    G = load_generator(folder, device="cpu")
    layer = G.first_layer()
    assert layer.weight.shape == (2048, 4, 4, 128) and layer.latent == slice(0, 128)
    grids = []
    hook = G.generator.gen_z.register_forward_hook(
        lambda m, i, o: grids.append(o.view(-1, 4, 4, 2048).permute(0, 3, 1, 2)))
    z, classes = G.sample(2, seed=3, classes=torch.tensor([7, 7]))
    with torch.no_grad():
        G.synthesize(z, classes)
    hook.remove()
    # the class part is the same for both samples, so the difference is the z part alone
    predicted = torch.einsum("cijd,d->cij", layer.weight, z[0] - z[1])
    assert torch.allclose(grids[0][0] - grids[0][1], predicted, atol=1e-4)


def test_256_configuration_synthesises_on_cpu():
    G = random_biggan(256, seed=0, batch=1)
    z, classes = G.sample(1, seed=0, truncation=0.5, classes=207)
    with torch.no_grad():
        image = G.synthesize(z, classes, truncation=0.5)
    assert image.shape == (1, 3, 256, 256)
    assert torch.isfinite(image).all() and image.abs().max() <= 1 and image.std() > 0.05
    assert len(G.generator.layers) == 13  # twelve blocks and the attention block


def test_release_configs():
    for resolution, blocks in ((128, 10), (256, 12), (512, 14)):
        cfg = release_config(resolution)
        assert len(cfg["layers"]) == blocks and cfg["output_dim"] == resolution
        assert 4 * 2 ** sum(up for up, _, _ in cfg["layers"]) == resolution


@pytest.fixture
def small_release(tmp_path):
    folder = tmp_path / "biggan-small"
    save_biggan_folder(random_biggan(128, channel_width=8, batch=2), folder)
    return folder


def test_small_release_round_trip(small_release):
    G = load_biggan_folder(small_release)
    z, c = G.sample(2, seed=0)
    with torch.no_grad():
        assert torch.isfinite(G.synthesize(z, c)).all()


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_key_mismatch_is_refused_by_name(small_release, change):
    path = small_release / "pytorch_model.bin"
    state = torch.load(path, weights_only=True)
    if change == "missing":
        del state["generator.layers.3.bn_2.running_vars"]
        word = "missing generator.layers.3.bn_2.running_vars"
    else:
        state["generator.extra_head.weight"] = torch.zeros(3)
        word = "unexpected generator.extra_head.weight"
    torch.save(state, path)
    with pytest.raises(SteerError, match=word.replace(".", r"\.")):
        load_generator(small_release, device="cpu")


def test_wrong_shape_is_refused(small_release):
    path = small_release / "pytorch_model.bin"
    state = torch.load(path, weights_only=True)
    state["embeddings.weight"] = torch.zeros(3, 1000)
    torch.save(state, path)
    with pytest.raises(SteerError, match="embeddings.weight"):
        load_generator(small_release, device="cpu")


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_hostile_pickle_is_refused_without_running(small_release, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"embeddings.weight": _Hostile(marker)}, small_release / "pytorch_model.bin")
    with pytest.raises(SteerError, match="refused") as info:
        load_generator(small_release, device="cpu")
    assert "system" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_corrupt_or_missing_files(small_release):
    (small_release / "pytorch_model.bin").write_bytes(b"not a torch file at all")
    with pytest.raises(SteerError, match="cannot read"):
        load_generator(small_release, device="cpu")
    (small_release / "config.json").write_text("{ not json")
    with pytest.raises(SteerError, match="config.json"):
        load_generator(small_release, device="cpu")
    (small_release / "config.json").unlink()
    with pytest.raises(SteerError, match="no config.json"):
        load_generator(small_release, device="cpu")


def test_config_that_does_not_add_up(small_release):
    cfg = json.loads((small_release / "config.json").read_text())
    cfg["output_dim"] = 256
    (small_release / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SteerError, match="output_dim"):
        load_generator(small_release, device="cpu")


def test_truncation_out_of_range(small_release):
    G = load_generator(small_release, device="cpu")
    with pytest.raises(SteerError, match=r"\(0, 1\]"):
        G.sample(1, truncation=1.5)


def test_imagenet_class_names():
    from steer.data import imagenet_class_names
    names = imagenet_class_names()
    assert len(names) == 1000
    assert (names[0], names[207], names[281], names[980], names[999]) == \
        ("tench", "golden retriever", "tabby", "volcano", "toilet tissue")
    # the whole table against torchvision's ImageNet-1k category list (shipped in its code),
    # which alone renames the bird crane (134) to tell it from the machine (517)
    import torchvision
    theirs = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    differ = [i for i, (a, b) in enumerate(zip(names, theirs)) if a.lower() != b.lower()]
    assert differ == [134] and (names[134], names[517], theirs[134]) == ("crane", "crane", "crane bird")
