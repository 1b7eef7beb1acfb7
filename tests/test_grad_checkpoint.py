"""Gradient checkpointing of synthesis: the same images and latent gradients, fewer
activations kept for the backward pass."""
import pytest
import torch

from steer import load_generator
from steer.errors import SteerError
from steer.generators.biggan import random_biggan
from steer.generators.stylegan_xl import StyleGANXLGenerator, design_config


def saved_bytes(fn):
    """Bytes of the tensors autograd keeps for the backward pass while fn runs."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, total


def check(G):
    G.eval().requires_grad_(False)
    z, classes = G.sample(3, seed=0)
    latent = G.to_space(z, classes, G.default_space).detach()
    results = []
    for on in (False, True):
        G.set_gradient_checkpointing(on)
        x = latent.clone().requires_grad_(True)
        images, kept = saved_bytes(lambda: G.synthesize(x, classes, G.default_space))
        (images * torch.linspace(-1, 1, images.numel()).view_as(images)).sum().backward()
        results.append((images.detach(), x.grad, kept))
    (plain, plain_grad, plain_kept), (ckpt, ckpt_grad, ckpt_kept) = results
    assert torch.equal(plain, ckpt)
    assert plain_grad.abs().max() > 0
    torch.testing.assert_close(ckpt_grad, plain_grad, rtol=1e-5, atol=1e-6)
    assert ckpt_kept < 0.5 * plain_kept, (ckpt_kept, plain_kept)
    G.set_gradient_checkpointing(False)
    with torch.no_grad():  # nothing to recompute without a backward: the plain path
        assert torch.equal(G.synthesize(latent, classes, G.default_space), plain)


def test_biggan_checkpointing_same_result_less_kept():
    check(random_biggan(128, channel_width=8, seed=1))


def test_stylegan_xl_checkpointing_same_result_less_kept():
    torch.manual_seed(0)
    check(StyleGANXLGenerator(design_config(img_resolution=32, channel_base=2048, channel_max=64, c_dim=10)))


def test_checkpointing_refused_where_there_is_nothing_to_checkpoint():
    G = load_generator("dcgan-mnist")
    with pytest.raises(SteerError, match="drop --grad-checkpoint"):
        G.set_gradient_checkpointing(True)
    G.set_gradient_checkpointing(False)  # turning it off is always allowed
