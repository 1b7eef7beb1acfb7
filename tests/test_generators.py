import json

import pytest
import torch

from steer import SteerError, load_generator
from steer.generators import bundled_models
from steer.generators.dcgan import DCGANGenerator


def test_folder_round_trip_is_exact(tiny_generator, tiny_model_dir):
    G = load_generator(str(tiny_model_dir), device="cpu")
    z, c = G.sample(3, seed=5)
    with torch.no_grad():
        assert torch.equal(G(z, c), tiny_generator(z, c))
    # the weights file itself also resolves to its folder
    assert load_generator(str(tiny_model_dir / "weights.safetensors"), device="cpu").resolution == 16


def test_interface(tiny_generator):
    G = tiny_generator
    z1, c1 = G.sample(4, seed=1)
    z2, c2 = G.sample(4, seed=1)
    assert torch.equal(z1, z2) and torch.equal(c1, c2)
    assert c1.dtype == torch.int64 and z1.dtype == torch.float32
    zt, _ = G.sample(200, seed=1, truncation=0.5)
    assert zt.abs().max() <= 0.5
    _, fixed = G.sample(4, seed=1, classes=1)
    assert (fixed == 1).all()
    x = G.synthesize(G.to_space(z1, c1, "z"), c1, "z")
    assert x.shape == (4, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(SteerError, match="no latent space 'w'"):
        G.to_space(z1, c1, "w")


def test_config_mismatch_is_refused(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["base_channels"] = 16
    (tiny_model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(SteerError, match="does not match"):
        load_generator(str(tiny_model_dir))


def test_corrupt_weights_are_refused(tiny_model_dir):
    (tiny_model_dir / "weights.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(SteerError, match="cannot read"):
        load_generator(str(tiny_model_dir))


def test_unknown_names_and_folders(tmp_path):
    with pytest.raises(SteerError, match="unknown model"):
        load_generator("not-a-model")
    with pytest.raises(SteerError, match="not a steer model"):
        load_generator(str(tmp_path))


def test_bundled_model_is_listed_and_loads():
    assert {"dcgan-shapes32", "dssgan-shapes32"} <= set(bundled_models())
    assert "shapes-classifier32" not in bundled_models()
    G = load_generator("dcgan-shapes32", device="cpu")
    assert isinstance(G, DCGANGenerator) and G.name == "dcgan-shapes32"
    assert G.resolution == 32 and G.num_classes == 4 and G.spaces == ("z",)
    # the default: DSS-GAN on real digits, once it reached 99 % recognition
    default = load_generator(device="cpu")
    assert default.family == "dssgan" and default.name == "dssgan-mnist" and default.class_names[3] == "3"
