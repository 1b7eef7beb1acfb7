import numpy as np
import torch
from PIL import Image

from steer import load_generator
from steer.data.folder import load_folder
from steer.data.shapes import shapes_batches
from steer.generators.dcgan import DCGANDiscriminator, DCGANGenerator
from steer.train import TrainConfig, train_gan
from tests.conftest import assert_user_error, run_steer


def small_pair():
    torch.manual_seed(0)
    return (DCGANGenerator(resolution=16, latent_dim=8, num_classes=4, embed_dim=4, base_channels=8),
            DCGANDiscriminator(resolution=16, num_classes=4, base_channels=8))


def test_resumed_training_matches_uninterrupted(tmp_path):
    config = TrainConfig(steps=6, batch=8, checkpoint_every=3, r1_every=2)
    G, D = small_pair()
    full = train_gan(G, D, shapes_batches(resolution=16), tmp_path / "full", config, progress=False)

    G, D = small_pair()
    train_gan(G, D, shapes_batches(resolution=16), tmp_path / "part", TrainConfig(**{**vars(config), "steps": 3}),
              progress=False)
    G, D = small_pair()
    resumed = train_gan(G, D, shapes_batches(resolution=16), tmp_path / "part", config, progress=False)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_train_command_writes_a_loadable_model(tmp_path):
    out = tmp_path / "run"
    result = run_steer("train", "--out", str(out), "--resolution", "16", "--steps", "3", "--batch", "4",
                       "--base-channels", "8")
    assert result.returncode == 0, result.stderr
    G = load_generator(str(out / "model"), device="cpu")
    assert G.resolution == 16 and G.num_classes == 4
    card = (out / "model" / "README.md").read_text()
    assert "steer train" in card and "wall time" in card
    assert (out / "samples.png").is_file()


def test_image_folder_classes_and_preprocessing(tmp_path):
    for name, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / name).mkdir()
        Image.new("RGB", (40, 20), colour).save(tmp_path / name / "a.png")
    Image.new("L", (20, 20), 128).save(tmp_path / "dogs" / "grey.png")
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(tmp_path / "dogs" / "clear.png")
    images, classes, names = load_folder(tmp_path, 16)
    assert names == ["cats", "dogs"]
    assert images.shape == (4, 3, 16, 16) and classes.tolist() == [0, 1, 1, 1]
    assert torch.allclose(images[0, :, 8, 8], torch.tensor([1.0, -1.0, -1.0]))
    # files in name order: dogs/a.png (blue), dogs/clear.png, dogs/grey.png
    assert torch.allclose(images[1, :, 8, 8], torch.tensor([-1.0, -1.0, 1.0]))
    assert np.allclose(images[2].numpy(), 1.0)  # fully transparent: composited on white
    assert np.allclose(images[3].numpy(), 128 / 127.5 - 1, atol=1e-6)  # greyscale becomes three equal channels


def test_train_command_dssgan_writes_a_loadable_model(tmp_path):
    out = tmp_path / "run"
    result = run_steer("train", "--arch", "dssgan", "--out", str(out), "--resolution", "16", "--steps", "2",
                       "--batch", "4", "--channels", "8,6", "--d-state", "4", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    G = load_generator(str(out / "model"), device="cpu")
    assert G.family == "dssgan" and G.resolution == 16 and G.num_classes == 4
    assert "DSS-GAN" in (out / "model" / "README.md").read_text()
    bad = run_steer("train", "--arch", "dssgan", "--out", str(tmp_path / "bad"), "--resolution", "16",
                    "--channels", "8,6,4")
    assert bad.returncode == 2 and "--channels needs 2 positive widths" in bad.stderr
    # one scan direction: the baseline for the subvector probe
    one = run_steer("train", "--arch", "dssgan", "--out", str(tmp_path / "one"), "--resolution", "16", "--steps", "1",
                    "--batch", "4", "--channels", "8,6", "--d-state", "4", "--directions", "col_bwd", "--device", "cpu")
    assert one.returncode == 0, one.stderr
    G = load_generator(str(tmp_path / "one" / "model"), device="cpu")
    assert list(G.latent_layout()) == ["z_base", "col_bwd"] and G.latent_dim == 40
    bad = run_steer("train", "--arch", "dssgan", "--out", str(tmp_path / "bad"), "--directions", "row_fwd,sideways")
    assert bad.returncode == 2 and "--directions must list distinct scan directions" in bad.stderr


def test_mode_seeking_term_and_option(tmp_path):
    import json

    from steer.train.gan import mode_seeking_term
    z_a, z_b = torch.zeros(4, 8), torch.ones(4, 8)
    same = torch.zeros(4, 3, 16, 16)
    apart = torch.full((4, 3, 16, 16), 0.5)
    # ratio = mean image distance / mean latent distance
    assert abs(mode_seeking_term(same, apart, z_a, z_b).item() - 1 / (0.5 + 1e-5)) < 1e-3
    assert mode_seeking_term(same, same, z_a, z_b).item() > 1e4  # a collapsed pair is punished hard
    # the term moves G: same start, different weights after training with it
    runs = {}
    for weight in (0.0, 1.0):
        G, D = small_pair()
        config = TrainConfig(steps=3, batch=8, mode_seeking=weight)
        runs[weight] = train_gan(G, D, shapes_batches(resolution=16), tmp_path / str(weight), config, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(runs[0.0].parameters(), runs[1.0].parameters()))
    logged = [json.loads(line) for line in (tmp_path / "1.0" / "log.jsonl").read_text().splitlines()]
    assert "mode_seeking" in logged[0] and logged[0]["mode_seeking"] > 0
    out = tmp_path / "cli"
    result = run_steer("train", "--out", str(out), "--resolution", "16", "--steps", "2", "--batch", "4",
                       "--base-channels", "8", "--mode-seeking", "0.5")
    assert result.returncode == 0, result.stderr


def test_train_on_shapes_with_set_spreads_records_them_for_quantify(tmp_path):
    """--shapes-config sets the training data's spreads; the model folder records them and
    `steer quantify` compares the walk with data drawn from the same spreads."""
    import json

    spreads = tmp_path / "spreads.json"
    spreads.write_text('{"scale": [0.25, 0.25], "classes": ["circle"]}')
    out = tmp_path / "run"
    result = run_steer("train", "--out", str(out), "--shapes-config", str(spreads), "--resolution", "16",
                       "--steps", "2", "--batch", "4", "--base-channels", "8")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "model" / "config.json").read_text())["shapes_config"]["scale"] == [0.25, 0.25]
    walk = tmp_path / "walk"
    assert run_steer("walk", "--model", str(out / "model"), "--steps", "2", "--out", str(walk)).returncode == 0
    q = tmp_path / "q"
    result = run_steer("quantify", "--walk", str(walk / "walk.safetensors"), "--model", str(out / "model"),
                       "--alphas", "0.5,1,2", "--samples", "4", "--data-samples", "50", "--features", "none",
                       "--out", str(q))
    assert result.returncode == 0, result.stderr
    data = json.loads((q / "quantify.json").read_text())["data"]
    # every real object is a circle of radius 0.25, covering pi / 16 = 0.196 of the image; the default
    # spreads (radius 0.12..0.32, four shapes) would put the 10-90 % band at about 0.03..0.2
    assert 0.18 < data["q10"] <= data["q90"] < 0.21
    bad = tmp_path / "bad.json"
    bad.write_text('{"scale": [0.3, 0.1]}')
    result = run_steer("train", "--out", str(tmp_path / "r2"), "--shapes-config", str(bad), "--steps", "1")
    assert result.returncode == 2 and "low <= high" in result.stderr and "Traceback" not in result.stderr


def test_ema_rampup_keeps_the_untrained_start_out_of_short_runs(tmp_path):
    """With StyleGAN2-ADA's ramp (0.05) the EMA spans 5 % of the steps so far: after 3 steps it
    is G itself (beta = 0.5 ** (1 / 0.15) ~ 0.01); without it, it is still mostly the start."""
    G, D = small_pair()
    start = [p.clone() for p in G.parameters()]
    ramped = train_gan(G, D, shapes_batches(resolution=16), tmp_path / "a",
                       TrainConfig(steps=3, batch=8, ema_rampup=0.05), progress=False)
    for p_ema, p in zip(ramped.parameters(), G.parameters()):
        assert torch.allclose(p_ema, p, atol=1e-3)
    G, D = small_pair()
    plain = train_gan(G, D, shapes_batches(resolution=16), tmp_path / "b", TrainConfig(steps=3, batch=8),
                      progress=False)
    moved = sum((p - s).abs().sum() for p, s in zip(G.parameters(), start))
    moved_ema = sum((p - s).abs().sum() for p, s in zip(plain.parameters(), start))
    assert moved_ema < 0.01 * moved  # 1 - 0.999 ** 3 of the way


def test_train_on_mnist_records_its_data_for_quantify_and_evaluate(tmp_path):
    """--data mnist trains on the 4,000 training digits with the official recipe (no flips:
    a mirrored digit is not a digit); the model then draws its real data from MNIST."""
    from steer.data import training_data
    from steer.generators.dcgan import dcgan_discriminator
    from steer.train import TrainConfig

    out = tmp_path / "run"
    result = run_steer("train", "--data", "mnist", "--recipe", "official", "--out", str(out), "--resolution", "16",
                       "--steps", "2", "--batch", "4", "--base-channels", "8", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    G = load_generator(str(out / "model"), device="cpu")
    assert G.num_classes == 10 and G.class_names == [str(d) for d in range(10)]
    assert training_data(G) == "mnist"
    card = (out / "model" / "README.md").read_text()
    assert "official recipe" in card and "`mnist`" in card
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    config = state["config"]
    assert config["aug_flip"] == 0.0 and config["augment"] and config["fake_classes"] == "uniform"
    assert TrainConfig(**{**config, "betas": tuple(config["betas"])}).betas == (0.0, 0.99)
    assert sum(v.numel() for v in state["D"].values()) == sum(
        p.numel() for p in dcgan_discriminator(G).parameters())
    from steer.walks import LinearWalk
    from steer.steering import Steering
    Steering(G, LinearWalk((G.latent_dim,), sliders=1), "zoom").save(tmp_path / "walk.safetensors", method="test")
    quantified = run_steer("quantify", "--walk", str(tmp_path / "walk.safetensors"), "--samples", "4",
                           "--alphas", "1,2", "--data-samples", "50", "--out", str(tmp_path / "q"))
    assert quantified.returncode == 0, quantified.stderr
    assert "data: mnist" in quantified.stdout
    import json
    q = json.loads((tmp_path / "q" / "quantify.json").read_text())
    assert q["data_source"] == "mnist" and q["data"]["samples"] == 4000  # every training digit


def test_augmented_batches_rotate_a_share_of_the_digits_by_whole_degrees():
    from steer.data.augment import augment_alphas, augmented_batches, parse_augment
    from steer.data.folder import folder_batches
    from steer.data.mnist import load_mnist
    from steer.edits import get_edit
    from steer.steerability import background_fill

    images, classes, _ = load_mnist("train", 32)
    plain = folder_batches(images, classes, seed=3, flip=False)
    edit, limit = parse_augment("rotate:20")
    batches = augmented_batches(plain, edit, limit, seed=3)
    x, c = batches(5, 600)
    x0, c0 = plain(5, 600)
    assert torch.equal(c, c0)
    changed = (x - x0).abs().flatten(1).amax(1) > 1e-6
    assert 0.78 < changed.float().mean() < 0.89  # 5/6 of the digits, less the ones drawn at 0 degrees
    gen = torch.Generator().manual_seed(0)
    alphas = augment_alphas(edit, 5000, limit, gen)
    assert alphas.min() == -20 and alphas.max() == 20 and torch.equal(alphas, alphas.round())
    # an edited digit is exactly the rotated digit on its background
    i = int(torch.nonzero(changed)[0])
    from steer.seeding import step_seed
    g = torch.Generator().manual_seed(step_seed(3, 5, 31))
    on = torch.rand(600, generator=g) < 5 / 6
    a = augment_alphas(edit, 600, limit, g)
    rotated, mask = get_edit("rotate")(x0[i:i + 1], a[i:i + 1])
    assert on[i] and torch.allclose(x[i:i + 1], background_fill(rotated, mask, x0[i:i + 1]))


def test_augment_and_alpha_max_options_refuse_bad_values(tmp_path):
    assert_user_error(run_steer("train", "--data", "mnist", "--augment", "rotate", "--out", str(tmp_path / "a"),
                                "--steps", "1"), "--augment must be EDIT:MAX")
    assert_user_error(run_steer("train", "--data", "mnist", "--augment", "colour:2", "--out", str(tmp_path / "b"),
                                "--steps", "1"), "--augment")
    assert_user_error(run_steer("walk", "--model", "dcgan-shapes32", "--edit", "colour", "--alpha-max", "3",
                                "--steps", "1", "--out", str(tmp_path / "c")), "--alpha-max applies")


def test_with_training_limit_draws_inside_the_limit():
    from steer.edits import get_edit, with_training_limit
    gen = torch.Generator().manual_seed(0)
    rot = with_training_limit(get_edit("rotate"), 20).sample_train(4000, gen, 32)
    assert rot.abs().max() == 20 and rot.abs().min() == 1
    zoom = with_training_limit(get_edit("zoom"), 2).sample_train(4000, gen, 32)
    assert 0.5 <= zoom.min() < 0.52 and 1.96 < zoom.max() <= 2
