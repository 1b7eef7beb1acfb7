"""Figures say what they show: sample grids carry each sample's class name."""
import numpy as np
import torch
from PIL import Image

from steer.viz import class_labels, save_labelled_grid


class Named:
    num_classes, class_names = 3, ["circle", "square", "triangle"]


def test_class_labels_name_each_sample():
    assert class_labels(Named(), torch.tensor([2, 0, 1, 2])) == ["triangle", "circle", "square", "triangle"]
    unnamed = type("Unnamed", (), {"num_classes": 2, "class_names": None})()
    assert class_labels(unnamed, torch.tensor([1, 0])) == ["1", "0"]
    assert class_labels(type("U", (), {"num_classes": 0})(), None) is None


def test_labelled_grid_writes_the_label_under_each_tile(tmp_path):
    images = torch.full((4, 3, 16, 16), -1.0)  # black tiles: any light pixel is the label's text or box
    save_labelled_grid(images, tmp_path / "plain.png", columns=4)
    save_labelled_grid(images, tmp_path / "named.png", columns=4, labels=["a", "bb", "ccc", "dddd"])
    plain = np.asarray(Image.open(tmp_path / "plain.png").convert("L"))
    named = np.asarray(Image.open(tmp_path / "named.png").convert("L"))
    assert plain.shape == ((16 + 2 + 2) * 4, (4 * 18 + 2) * 4)  # one row of four, 2 px gutters, 64 // 16 = 4x
    # the labelled grid: four tiles each with white text in its lower part
    dark = named < 40
    rows = np.flatnonzero(dark.mean(1) > 0.3)
    band = named[rows.min():rows.max() + 1]
    inside = band[: len(band) // 4].max(0) < 40  # columns inside a tile: dark all through its top quarter
    lower, upper = band[len(band) * 3 // 4:, inside], band[: len(band) // 4, inside]
    assert (upper > 200).sum() == 0 and (lower > 200).sum() > 20
