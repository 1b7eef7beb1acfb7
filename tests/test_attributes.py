"""Attribute estimators against the shapes generator's ground truth, the COCO table, and the
detector estimator's handling of its weights."""
import pytest
import torch

from steer.attributes import (ESTIMATORS, colour_statistics, coco_categories, coco_to_imagenet, detector_weights_path,
                              get_estimator, imagenet_to_coco, object_area)
from steer.data.shapes import sample_shapes
from steer.errors import SteerError


@pytest.fixture(scope="module")
def shapes32():
    return sample_shapes(600, seed=11, resolution=32)


def test_area_recovers_the_true_area(shapes32):
    images, attrs = shapes32
    relative = (ESTIMATORS["area"](images) - attrs["area"]) / attrs["area"]
    # edge pixels counted by coverage: seen 0.2 % median, 0.9 % at the 90th percentile
    assert relative.abs().median() < 0.02
    assert relative.abs().quantile(0.9) < 0.05
    # counting rim pixels whole overstates small objects by about 13 % at 32 px
    hard = (object_area(images, soft=False) - attrs["area"]) / attrs["area"]
    assert hard.median() > 0.08


def test_centre_recovers_the_true_centre(shapes32):
    images, attrs = shapes32
    for name in ("centre_x", "centre_y"):
        error = (ESTIMATORS[name](images) - attrs[name]).abs()
        # seen: 0.0012 median, 0.004 at the 90th percentile (fractions of the width)
        assert error.median() < 0.005, name
        assert error.quantile(0.9) < 0.01, name


def test_object_colour_recovers_the_true_colour(shapes32):
    images, attrs = shapes32
    truth = (attrs["colour"] * 2 - 1).mean(1)
    # rim pixels blend with the background: seen 0.08 median at 32 px
    assert (ESTIMATORS["object_colour"](images) - truth).abs().median() < 0.1


def test_colour_statistics_of_known_images():
    images = torch.zeros(2, 3, 8, 8)
    images[0, 0], images[0, 1], images[0, 2] = 1.0, -1.0, 0.5
    images[1] = -0.25
    stats = colour_statistics(images)
    assert stats["r"].tolist() == [1.0, -0.25] and stats["g"].tolist() == [-1.0, -0.25]
    assert torch.allclose(stats["luminance"], torch.tensor([0.299 - 0.587 + 0.057, -0.25]))
    assert torch.allclose(ESTIMATORS["colour"](images), torch.tensor([0.5 / 3, -0.25]))
    assert torch.allclose(ESTIMATORS["colour_b"](images), torch.tensor([0.5, -0.25]))
    # restricted to the object: a red square on grey
    square = torch.full((1, 3, 16, 16), -0.5)
    square[0, :, 4:12, 4:12] = torch.tensor([0.9, -0.9, -0.9])[:, None, None]
    on_object = colour_statistics(square, object_only=True)
    assert torch.allclose(torch.stack([on_object[c] for c in "rgb"]).flatten(), torch.tensor([0.9, -0.9, -0.9]))


def test_default_estimators_follow_the_edit():
    assert get_estimator(None, "zoom").name == "area"
    assert get_estimator(None, "shift_y").name == "centre_y"
    assert get_estimator(None, "colour").name == "colour"
    with pytest.raises(SteerError, match="unknown estimator 'size'"):
        get_estimator("size", "zoom")
    with pytest.raises(SteerError, match="no default estimator"):
        get_estimator(None, "rotate")


def test_coco_table():
    table = coco_to_imagenet()
    assert table["dog"] == list(range(151, 269))
    assert table["cat"] == [281, 282, 283, 284, 285]
    assert len(table["bird"]) == 59 and 817 in table["car"]
    assert imagenet_to_coco(207) == "dog" and imagenet_to_coco(9) == "bird" and imagenet_to_coco(0) is None
    # every category is one the detector knows, and no ImageNet class is in two
    assert set(table) <= set(coco_categories())
    indices = [i for v in table.values() for i in v]
    assert len(indices) == len(set(indices)) and all(0 <= i < 1000 for i in indices)


def test_detector_without_weights_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(SteerError) as e:
        get_estimator("detector", "zoom")
    message = str(e.value)
    assert "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth" in message and str(tmp_path / "empty") in message
    assert "\n" not in message


def test_detector_with_random_weights_in_the_cache_layout(tmp_path, monkeypatch):
    """No COCO weights here: random weights written where torchvision caches them exercise
    the loading, the class mapping and the box statistics (not the detections' quality)."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    arch = "fasterrcnn_mobilenet_v3_large_320_fpn"
    path = detector_weights_path(arch)
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict(),
               path)
    images, _ = sample_shapes(2, seed=0, resolution=64)
    area = get_estimator("detector_area", "zoom", category="dog", arch=arch)(images)
    assert area.shape == (2,) and area.dtype == torch.float32
    # classes map through the table: an ImageNet class with no COCO category is never measured
    unmapped = get_estimator("detector_area", "zoom", arch=arch)(images, torch.tensor([0, 0]))
    assert unmapped.isnan().all()
    with pytest.raises(SteerError, match="unknown COCO category"):
        get_estimator("detector_area", "zoom", category="unicorn", arch=arch)


class FakeDetector(torch.nn.Module):
    """Answers every image with the same three boxes: a dog (label 18) twice, a cat (17)."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images):
        boxes = torch.tensor([[0.0, 0.0, 64.0, 64.0], [8.0, 16.0, 40.0, 32.0], [0.0, 0.0, 10.0, 10.0]])
        return [{"boxes": boxes, "labels": torch.tensor([18, 18, 17]), "scores": torch.tensor([0.3, 0.6, 0.9])}
                for _ in images]


def test_detector_statistics_of_the_best_box_of_the_wanted_class(monkeypatch):
    import steer.attributes as attributes

    monkeypatch.setattr(attributes, "load_detector", lambda arch, device=None: FakeDetector())
    images = torch.zeros(3, 3, 64, 64)
    classes = torch.tensor([207, 281, 0])  # golden retriever (dog), tabby (cat), tench (no COCO category)
    area = get_estimator("detector", "zoom")(images, classes)
    # dog: the 0.6 box, 32 x 16 px of 64 x 64; cat: its only box, 10 x 10
    assert torch.allclose(area[:2], torch.tensor([32 * 16 / 64**2, 100 / 64**2])) and area[2].isnan()
    assert torch.allclose(get_estimator("detector", "shift_x")(images, classes)[:2], torch.tensor([24 / 64, 5 / 64]))
    assert torch.allclose(get_estimator("detector", "shift_y")(images, classes)[:2], torch.tensor([24 / 64, 5 / 64]))
    assert torch.allclose(get_estimator("detector", "zoom", category="cat")(images), torch.full((3,), 100 / 64**2))
    with pytest.raises(SteerError, match="--coco-category"):
        get_estimator("detector", "zoom")(images)
    with pytest.raises(SteerError, match="not what a colour walk moves"):
        get_estimator("detector", "colour")
