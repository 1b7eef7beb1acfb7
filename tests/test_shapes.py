import torch

from steer.attributes import mean_colour, object_area, object_centre
from steer.data.shapes import ShapesConfig, sample_shapes


def test_shapes_are_seeded_and_in_range():
    a, attrs_a = sample_shapes(8, seed=1)
    b, _ = sample_shapes(8, seed=1)
    c, _ = sample_shapes(8, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (8, 3, 32, 32) and a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1
    assert set(attrs_a) >= {"class", "scale", "centre_x", "centre_y", "rotation", "colour", "background", "area"}


def test_attribute_distributions_follow_the_config():
    config = ShapesConfig(scale=(0.1, 0.2), centre=(0.4, 0.6), classes=(0,))
    _, attrs = sample_shapes(2000, seed=0, config=config)
    assert attrs["scale"].min() >= 0.1 and attrs["scale"].max() <= 0.2
    assert attrs["centre_x"].min() >= 0.4 and attrs["centre_x"].max() <= 0.6
    assert (attrs["class"] == 0).all()
    # circles: the covered area is pi r^2 up to anti-aliasing at the edge
    expected = torch.pi * attrs["scale"] ** 2
    assert torch.allclose(attrs["area"], expected, rtol=0.06)


def test_measured_attributes_match_ground_truth():
    images, attrs = sample_shapes(500, seed=3, resolution=64)
    area = object_area(images)
    centre = object_centre(images)
    assert torch.corrcoef(torch.stack([area, attrs["area"]]))[0, 1] > 0.98
    assert (centre[:, 0] - attrs["centre_x"]).abs().median() < 0.02
    assert (centre[:, 1] - attrs["centre_y"]).abs().median() < 0.02
    colour = mean_colour(images)
    truth = attrs["colour"] * 2 - 1
    assert (colour - truth).abs().median() < 0.05


def test_class_dependent_scale_ranges():
    config = ShapesConfig(scale=(0.2, 0.2), class_scale={3: (0.1, 0.4)})
    _, attrs = sample_shapes(2000, seed=0, config=config)
    cross = attrs["class"] == 3
    assert torch.allclose(attrs["scale"][~cross], torch.tensor(0.2))
    s = attrs["scale"][cross]
    assert s.min() >= 0.1 and s.max() <= 0.4 and s.max() / s.min() > 3.5
    # log-uniform: the geometric centre 0.2 splits the crosses in half
    assert abs((s < 0.2).float().mean().item() - 0.5) < 0.05
    assert ShapesConfig.from_dict(config.to_dict()) == config


def test_read_shapes_config_takes_class_names_and_refuses_bad_fields(tmp_path):
    import pytest

    from steer.data.shapes import read_shapes_config
    from steer.errors import SteerError

    path = tmp_path / "s.json"
    path.write_text('{"scale": [0.1, 0.3], "class_scale": {"cross": [0.2, 0.25]}, "classes": ["circle", 3]}')
    config = read_shapes_config(path)
    assert config.scale == (0.1, 0.3) and config.class_scale == {3: (0.2, 0.25)} and config.classes == (0, 3)
    for text, words in (('{"scale": [0.3, 0.1]}', "low <= high"), ('{"scael": [0.1, 0.2]}', "unknown field"),
                        ('{"class_scale": {"star": [0.1, 0.2]}}', "unknown shape class"), ("[1, 2]", "JSON object"),
                        ("{", "cannot read"), ('{"scale": [0, 0.2]}', "low > 0")):
        path.write_text(text)
        with pytest.raises(SteerError, match=words):
            read_shapes_config(path)
