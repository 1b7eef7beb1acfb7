import json
import math

import torch

from steer.data.shapes import shapes_batches
from steer.generators.dcgan import DCGANGenerator
from steer.generators.dssgan.discriminator import DSSGANDiscriminator, MiniBatchStdDev
from steer.train import TrainConfig, train_gan
from steer.train.gan import diff_augment


def small_d(**kw):
    torch.manual_seed(0)
    return DSSGANDiscriminator(**{"resolution": 32, "num_classes": 4, "base_channels": 8, "max_channels": 32, **kw})


def test_state_dict_names_and_shapes_follow_the_official_128px_config():
    # official config128: base_ch 96, channel_max 512, mbstd group 8; three AFHQ classes
    D = DSSGANDiscriminator(resolution=128, num_classes=3, base_channels=96, max_channels=512)
    shapes = {k: tuple(v.shape) for k, v in D.state_dict().items()}
    blocks = [f"block_{r}.{p}" for r in (128, 64, 32, 16, 8)
              for p in ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "skip.weight")]
    assert list(shapes) == (["from_rgb.weight", "from_rgb.bias"] + blocks
                            + ["block_4.weight", "block_4.bias", "conv_out.weight", "conv_out.bias",
                               "fc.weight", "fc.bias", "embed.weight"])
    assert shapes["from_rgb.weight"] == (96, 3, 1, 1)
    assert shapes["block_128.conv1.weight"] == (192, 96, 3, 3)
    assert shapes["block_64.skip.weight"] == (384, 192, 1, 1)
    assert shapes["block_32.conv1.weight"] == (512, 384, 3, 3)  # 768 capped at 512
    assert shapes["block_4.weight"] == (512, 513, 3, 3)  # + one minibatch-stddev channel
    assert shapes["conv_out.weight"] == (512, 512, 4, 4)
    assert shapes["fc.weight"] == (1, 512) and shapes["embed.weight"] == (3, 512)


def test_logits_shape_conditioning_and_gradients():
    D = small_d()
    images = torch.rand(8, 3, 32, 32) * 2 - 1
    classes = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    logits = D(images, classes)
    assert logits.shape == (8,) and torch.isfinite(logits).all()
    assert not torch.allclose(logits, D(images, (classes + 1) % 4))  # the class term matters

    images.requires_grad_(True)
    D(images, classes).sum().backward()
    assert images.grad.abs().sum() > 0
    for name, p in D.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name != "embed.weight":  # only the rows of the classes used get a gradient there
            assert p.grad.abs().sum() > 0, name


def test_official_init_xavier_weights_zero_biases():
    D = small_d()
    conv = D.block_16.conv1
    fan_in, fan_out = conv.weight.shape[1] * 9, conv.weight.shape[0] * 9
    assert conv.weight.abs().max() <= math.sqrt(6 / (fan_in + fan_out)) + 1e-6
    assert all(torch.all(m.bias == 0) for m in (D.from_rgb, D.block_4, D.conv_out, D.fc, conv))
    assert D.embed.weight.std() > 0.5  # the embedding keeps PyTorch's N(0, 1)


def test_minibatch_stddev_groups_and_odd_batches():
    mbstd = MiniBatchStdDev(group_size=4)
    x = torch.randn(8, 6, 4, 4)
    out = mbstd(x)
    assert out.shape == (8, 7, 4, 4)
    # samples i and i+2, i+4, i+6 form a group (StyleGAN2 layout)
    expected = x.view(4, 2, 6, 4, 4).var(0, unbiased=False).add(1e-8).sqrt().mean((1, 2, 3))
    assert torch.allclose(out[:, 6, 0, 0], expected.repeat(4))
    assert MiniBatchStdDev(group_size=8)(torch.randn(12, 6, 4, 4)).shape == (12, 7, 4, 4)  # group shrinks to 4
    D = small_d()
    assert D(torch.zeros(3, 3, 32, 32), torch.zeros(3, dtype=torch.long)).shape == (3,)


def test_augmentation_is_reproducible_differentiable_and_splits_by_rows():
    torch.manual_seed(0)
    images = (torch.rand(6, 3, 8, 8) * 1.6 - 0.8).requires_grad_(True)

    def aug(step, **kw):
        return diff_augment(images, torch.Generator().manual_seed(step), **kw)

    a, b, c = aug(1), aug(1), aug(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, images) and a.min() >= -1 and a.max() <= 1
    a.sum().backward()
    assert images.grad.abs().sum() > 0
    # ranks of a distributed run together reproduce the single-process augmentation
    full = aug(3)
    part = diff_augment(images[2:4], torch.Generator().manual_seed(3), rows=(2, 4, 6))
    assert torch.equal(part, full[2:4])
    # brightness alone: a per-image offset in [-0.1, 0.1] (here images stay off the clamp)
    shifted = aug(4, flip=0.0, contrast=0.0, p_brightness=1.0)
    offsets = (shifted - images).detach()
    assert torch.allclose(offsets, offsets[:, :1, :1, :1].expand_as(offsets), atol=1e-6)
    assert offsets.abs().max() <= 0.1 + 1e-6 and offsets.abs().min() > 0
    # contrast alone keeps each image's per-channel mean
    small = images.detach() * 0.5  # in [-0.4, 0.4]: a factor up to 1.2 stays off the clamp
    scaled = diff_augment(small, torch.Generator().manual_seed(5), flip=0.0, brightness=0.0, p_contrast=1.0)
    assert torch.allclose(scaled.mean((2, 3)), small.mean((2, 3)), atol=1e-6)
    deviation = small - small.mean((2, 3), keepdim=True)
    factor = ((scaled - small.mean((2, 3), keepdim=True)) / deviation)[deviation.abs() > 0.05]
    assert (factor - 1).abs().max() <= 0.1 + 1e-4 and (factor - 1).abs().min() > 0
    flipped = aug(6, flip=1.0, brightness=0.0, contrast=0.0)
    assert torch.equal(flipped, images.flip(3))


def test_official_preset_values():
    c = TrainConfig.dssgan_official(steps=10)
    assert (c.lr, c.lr_d, c.betas, c.batch) == (9e-5, 3e-5, (0.0, 0.99), 96)
    assert (c.r1_gamma, c.r1_every, c.r1_scale_by_interval) == (5.0, 4, False)
    assert (c.clip_g, c.clip_d, c.ema_beta, c.ema_beta2) == (10.0, 15.0, 0.999, 0.9995)
    assert c.augment and c.aug_flip == 0.5 and c.aug_brightness == 0.1 and c.aug_contrast == 0.1
    assert c.steps == 10 and TrainConfig.dssgan_official(r1_gamma=8).r1_gamma == 8
    d = TrainConfig()  # defaults unchanged
    assert (d.lr_d, d.clip_g, d.clip_d, d.augment, d.r1_scale_by_interval) == (None, None, None, False, True)


def test_r1_weight_with_and_without_interval_scaling(tmp_path):
    def first_log(scale):
        torch.manual_seed(0)
        G = DCGANGenerator(resolution=16, latent_dim=8, num_classes=4, embed_dim=4, base_channels=8)
        D = small_d(resolution=16, max_channels=16)
        config = TrainConfig(steps=1, batch=8, r1_gamma=5.0, r1_every=4, r1_scale_by_interval=scale)
        train_gan(G, D, shapes_batches(resolution=16), tmp_path / str(scale), config, progress=False)
        return json.loads((tmp_path / str(scale) / "log.jsonl").read_text().splitlines()[0])

    scaled, plain = first_log(True), first_log(False)
    assert plain["r1"] == scaled["r1"] > 0
    # loss_d = GAN loss + 0.5 * gamma * (4 or 1) * R1
    assert math.isclose(scaled["loss_d"] - plain["loss_d"], 0.5 * 5.0 * 3 * plain["r1"], rel_tol=1e-4)


class NoisyGenerator(DCGANGenerator):
    """Uses torch's global generator in training mode, as DSS-GAN's random rotation does."""

    def synthesize(self, latent, classes=None, space=None):
        image = super().synthesize(latent, classes, space)
        if self.training:
            self.train_calls = getattr(self, "train_calls", 0) + 1
            image = image.flip(2) if torch.rand(()) < 0.5 else image
        return image


def test_official_recipe_trains_and_resumes_exactly(tmp_path):
    config = TrainConfig.dssgan_official(steps=4, batch=8, checkpoint_every=2, r1_every=2, ema_switch_images=16)

    def pair():
        torch.manual_seed(0)
        return (NoisyGenerator(resolution=16, latent_dim=8, num_classes=4, embed_dim=4, base_channels=8),
                small_d(resolution=16, max_channels=16))

    G, D = pair()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    full = train_gan(G, D, shapes_batches(resolution=16), tmp_path / "full", config, progress=False)
    assert G.training and not full.training and G.train_calls == 8  # D step + G step, 4 steps
    assert any(not torch.equal(before[k], v) for k, v in G.state_dict().items())

    G, D = pair()
    train_gan(G, D, shapes_batches(resolution=16), tmp_path / "part", TrainConfig(**{**vars(config), "steps": 2}),
              progress=False)
    torch.rand(5)  # disturb the global generator between the two runs
    G, D = pair()
    resumed = train_gan(G, D, shapes_batches(resolution=16), tmp_path / "part", config, progress=False)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
