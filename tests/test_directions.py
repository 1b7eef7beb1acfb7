"""Closed-form directions: known answers on constructed first layers, the first-layer hooks
of each family, and the effect of a closed-form zoom on the bundled model."""
import pytest
import torch

from steer import SteerError
from steer.attributes import object_area, object_centre
from steer.directions import closed_form_direction, closed_form_walk, first_layer_error
from steer.edits import get_edit
from steer.fit import FitConfig, evaluate_walk
from steer.generators.base import FirstLayer, Generator
from steer.walks import LinearWalk


def _random_columns(channels, k, d, seed=0):
    return torch.randn(channels, k, k, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_shift_of_a_ramp_is_solved_exactly_over_all_alphas():
    """Bias b[c, i, j] = j (a ramp along x). Shifting it right by s cells gives j - s on the
    defined cells, so (P - I) b = -s there; with s = t * k / 2 (t = alpha / (S/2), s = alpha
    * k / S), a first-layer column equal to -k/2 everywhere reproduces every shift exactly:
    the answer is that column's unit vector, whatever the other columns hold."""
    channels, k, d, S = 3, 4, 6, 32
    weight = _random_columns(channels, k, d)
    weight[..., 2] = -k / 2
    bias = torch.arange(k, dtype=torch.float64).expand(channels, k, k).clone()
    layer = FirstLayer(weight, bias, slice(0, d))
    q = closed_form_direction(layer, get_edit("shift_x"), S)
    expected = torch.zeros(d)
    expected[2] = 1
    assert torch.allclose(q, expected, atol=1e-5)
    # the same ramp along y answers shift_y; the x ramp has nothing to offer it
    layer_y = FirstLayer(weight, bias.transpose(1, 2).contiguous(), slice(0, d))
    assert torch.allclose(closed_form_direction(layer_y, get_edit("shift_y"), S), expected, atol=1e-5)


def test_zoom_direction_is_the_column_that_makes_the_edit():
    """One alpha: a column equal to (P - I) b / log(alpha) on the defined cells is the exact
    least-squares answer; scaled columns and random others do not change it."""
    from steer.edits import zoom
    channels, k, d, S, alpha = 4, 4, 5, 32, 0.5
    gen = torch.Generator().manual_seed(1)
    bias = torch.randn(channels, k, k, generator=gen, dtype=torch.float64)
    zoomed, mask = zoom(bias[None].float(), alpha)
    change = (zoomed[0].double() - bias) * mask[0].double()
    weight = _random_columns(channels, k, d, seed=2)
    weight[..., 0] = change / torch.log(torch.tensor(alpha, dtype=torch.float64))
    layer = FirstLayer(weight, bias, slice(0, d))
    q = closed_form_direction(layer, get_edit("zoom"), S, alphas=[alpha])
    assert torch.allclose(q, torch.tensor([1.0, 0, 0, 0, 0]), atol=1e-5)
    assert first_layer_error(layer, q, get_edit("zoom"), S, alpha) < 1e-8
    # a layer whose only column is twice that change needs half the step
    half = closed_form_direction(FirstLayer(2 * weight[..., :1], bias, slice(0, 1)), get_edit("zoom"), S, alphas=[alpha])
    assert torch.allclose(half, torch.tensor([0.5]), atol=1e-5)


def test_dcgan_first_layer_is_its_fc_on_the_grid(tiny_generator):
    G = tiny_generator
    layer = G.first_layer()
    assert layer.weight.shape == (G.fc.out_features // 16, 4, 4, G.latent_dim) and layer.latent == slice(0, G.latent_dim)
    z, c = G.sample(2, seed=0, classes=1)
    h = torch.cat([z, G.embed(c)], 1)
    grid = G.fc(h).view(2, -1, 4, 4)
    assert torch.allclose(grid[0] - grid[1], torch.einsum("cijd,d->cij", layer.weight, z[0] - z[1]), atol=1e-5)


def test_dssgan_first_layer_is_the_token_projection():
    from steer.generators.dssgan.configs import small_config
    from steer.generators.dssgan.generator import DSSGANGenerator
    torch.manual_seed(0)
    G = DSSGANGenerator(small_config(16, 2, channels=[16, 8], d_state=4)).eval()
    layer = G.first_layer()
    assert layer.latent == G.latent_layout()["z_base"] and layer.weight.shape[1:3] == (8, 8)
    z, _ = G.sample(1, seed=0)
    tokens = G.pos_enc64(G.z_to_tokens(z[:, layer.latent]).view(1, 64, -1))  # what the token blocks read
    grid = tokens.transpose(1, 2).reshape(1, -1, 8, 8)[0]  # as the generator lays tokens out
    predicted = torch.einsum("cijd,d->cij", layer.weight, z[0, layer.latent]) + layer.bias
    assert torch.allclose(grid, predicted, atol=1e-5)
    walk = closed_form_walk(G, get_edit("zoom"))
    direction = walk.directions[0]
    assert direction[layer.latent].abs().sum() > 0 and direction[layer.latent.stop:].abs().sum() == 0


def test_generator_without_first_layer_is_refused():
    class Plain(Generator):
        name, resolution, latent_dim = "plain", 8, 4

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

    with pytest.raises(SteerError, match="plain has no linear first layer"):
        closed_form_walk(Plain(), get_edit("zoom"))


def test_only_geometric_edits(tiny_generator):
    with pytest.raises(SteerError, match="zoom, shift_x, shift_y"):
        closed_form_walk(tiny_generator, get_edit("colour"))
    with pytest.raises(SteerError, match="zoom, shift_x, shift_y"):
        closed_form_walk(tiny_generator, get_edit("rotate"))


def test_closed_form_zoom_on_the_bundled_model(bundled_generator):
    """The closed-form zoom grows the measured object with alpha, clearly, and beats the
    zero walk on the walk loss; the shifts move the object's centre the right way."""
    G = bundled_generator
    z, c = G.sample(64, seed=7)
    zoom = get_edit("zoom")
    walk = closed_form_walk(G, zoom)
    with torch.no_grad():
        areas = [object_area(G.synthesize(walk.apply(z, torch.full((64,), a), zoom, 32), c)).mean().item()
                 for a in (0.25, 1.0, 4.0)]
    assert areas[0] < areas[1] < areas[2]
    assert areas[2] / areas[0] > 1.1, areas
    config = FitConfig(batch=16, seed=0)
    zero = LinearWalk((G.latent_dim,), init_std=0.0)
    assert evaluate_walk(G, walk, zoom, config) < 0.95 * evaluate_walk(G, zero, zoom, config)
    for name, axis in (("shift_x", 0), ("shift_y", 1)):
        edit = get_edit(name)
        walk = closed_form_walk(G, edit)
        with torch.no_grad():
            left, right = (object_centre(G.synthesize(walk.apply(z, torch.full((64,), a), edit, 32), c))[:, axis].nanmean()
                           for a in (-16.0, 16.0))
        assert right - left > 0.01, (name, left, right)
