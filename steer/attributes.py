"""Attributes measured from an image alone: the object's area, centre and colour.

For images of one object on a plain background (the shapes data and generators trained
on it): the background colour is the median of the border pixels, and the object is
every pixel whose colour differs from it by more than a threshold.

Colour statistics work on any image. For photos (BigGAN and the like) a COCO detector from
torchvision gives the object's box; its weights are read from torch's cache, never
downloaded. `ESTIMATORS` names each measurement for `steer quantify`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable

import torch

from .errors import SteerError


def object_mask(images: torch.Tensor, threshold: float = 0.25) -> torch.Tensor:
    """(N,3,H,W) in [-1,1] -> (N,H,W) float mask of object pixels."""
    border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[:, :, None, None]
    distance = (images - background).abs().amax(dim=1)
    return (distance > threshold).float()


def object_coverage(images, threshold: float = 0.25) -> torch.Tensor:
    """(N,H,W) in [0, 1]: how much of each pixel the object covers. An anti-aliased edge pixel
    is a blend, so its distance from the background over the object's own contrast (the
    median distance of its object pixels) is its coverage; counting edge pixels whole
    instead overstates a small object's area by the width of its rim (13 % at 32 px)."""
    border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], dim=2)
    background = border.median(dim=2).values[:, :, None, None]
    distance = (images - background).abs().amax(dim=1)
    inside = distance > threshold
    contrast = torch.where(inside, distance, float("nan")).flatten(1).nanmedian(1).values.nan_to_num(1.0)
    coverage = (distance / contrast[:, None, None]).clamp(0, 1)
    # faint pixels are background noise (a GAN's), not rim: they count for nothing
    return torch.where(distance > threshold / 2, coverage, torch.zeros_like(coverage))


def object_area(images, threshold: float = 0.25, soft: bool = True) -> torch.Tensor:
    """Fraction of the image the object covers, (N,): edge pixels by their coverage (soft),
    or every pixel over the threshold counted whole."""
    if soft:
        return object_coverage(images, threshold).mean((1, 2))
    return object_mask(images, threshold).mean((1, 2))


def object_centre(images, threshold: float = 0.25) -> torch.Tensor:
    """Object centre (x, y) as fractions of the image size, (N, 2); NaN with no object."""
    mask = object_mask(images, threshold)
    h, w = mask.shape[1:]
    ys = (torch.arange(h, dtype=torch.float32, device=mask.device) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32, device=mask.device) + 0.5) / w
    total = mask.sum((1, 2))
    cx = (mask * xs[None, None, :]).sum((1, 2)) / total
    cy = (mask * ys[None, :, None]).sum((1, 2)) / total
    return torch.stack([cx, cy], dim=1)


def mean_colour(images, threshold: float | None = 0.25) -> torch.Tensor:
    """Mean RGB in [-1,1], (N,3): of the object when a threshold is given, else the image."""
    if threshold is None:
        return images.mean((2, 3))
    mask = object_mask(images, threshold)[:, None]
    return (images * mask).sum((2, 3)) / mask.sum((2, 3)).clamp_min(1)


# Rec. 601 luma weights: the luminance the paper's colour analysis reports
LUMA = (0.299, 0.587, 0.114)


def colour_statistics(images, object_only: bool = False, threshold: float = 0.25) -> dict:
    """Mean R, G, B and luminance of each image (or of its object pixels), in [-1, 1], each (N,).
    Works on any image; object_only needs one object on a plain background."""
    rgb = mean_colour(images, threshold if object_only else None)
    luma = sum(w * rgb[:, c] for c, w in enumerate(LUMA))
    return {"r": rgb[:, 0], "g": rgb[:, 1], "b": rgb[:, 2], "luminance": luma}


# ---- estimators: one number per image, named, with the tolerance a reach is judged by ----

@dataclass(frozen=True)
class Estimator:
    """measure(images, classes) -> (N,) float tensor, NaN where an image cannot be measured.

    tolerance: how far a walked median may sit from the target median and still count as
    following it; relative (a fraction of the target) or absolute (in the estimator's units).
    """

    name: str
    measure: Callable
    description: str
    units: str
    tolerance: float
    relative: bool

    def __call__(self, images, classes=None) -> torch.Tensor:
        return self.measure(images, classes)


def _plain(name, fn, description, units, tolerance, relative=False):
    return Estimator(name, lambda images, classes=None: fn(images).float(), description, units, tolerance, relative)


FRACTION = "fraction of the image width"
ESTIMATORS = {
    "area": _plain("area", object_area, "object area: pixels differing from the border's median colour",
                   "fraction of the image", 0.25, relative=True),
    "centre_x": _plain("centre_x", lambda x: object_centre(x)[:, 0], "object centre x (mean of object pixels)",
                       FRACTION, 0.05),
    "centre_y": _plain("centre_y", lambda x: object_centre(x)[:, 1], "object centre y (mean of object pixels)",
                       FRACTION, 0.05),
    "colour": _plain("colour", lambda x: x.mean((1, 2, 3)), "mean of R, G and B over the image",
                     "[-1, 1] image units", 0.1),
    "luminance": _plain("luminance", lambda x: colour_statistics(x)["luminance"],
                        "mean Rec. 601 luminance over the image", "[-1, 1] image units", 0.1),
    "object_colour": _plain("object_colour", lambda x: mean_colour(x).mean(1),
                            "mean of R, G and B over the object's pixels", "[-1, 1] image units", 0.1),
}
for _c, _channel in enumerate("rgb"):
    ESTIMATORS[f"colour_{_channel}"] = _plain(
        f"colour_{_channel}", lambda x, c=_c: x[:, c].mean((1, 2)), f"mean {_channel.upper()} over the image",
        "[-1, 1] image units", 0.1)

# the attribute each edit moves, measured when no estimator is named
EDIT_ESTIMATORS = {"zoom": "area", "shift_x": "centre_x", "shift_y": "centre_y", "colour": "colour",
                   "brightness": "colour"}
# with --estimator detector: which box statistic each edit moves
DETECTOR_STATISTICS = {"zoom": "area", "shift_x": "centre_x", "shift_y": "centre_y"}


def estimator_names() -> list:
    return list(ESTIMATORS) + ["detector", "detector_area", "detector_centre_x", "detector_centre_y"]


def get_estimator(name: str, edit_name: str | None = None, **detector_options) -> Estimator:
    """An estimator by name; None picks the one that matches the edit. 'detector' picks the
    box statistic that matches the edit (area for zoom, centre for shifts)."""
    if name is None:
        if edit_name not in EDIT_ESTIMATORS:
            raise SteerError(f"no default estimator for a {edit_name} walk: give --estimator "
                             f"({', '.join(estimator_names())})")
        name = EDIT_ESTIMATORS[edit_name]
    if name == "detector":
        if edit_name not in DETECTOR_STATISTICS:
            raise SteerError(f"the detector measures box area and centre, not what a {edit_name} walk moves: "
                             f"choose another --estimator")
        name = "detector_" + DETECTOR_STATISTICS[edit_name]
    if name.startswith("detector_") and name[len("detector_"):] in ("area", "centre_x", "centre_y"):
        return detector_estimator(name[len("detector_"):], **detector_options)
    if name not in ESTIMATORS:
        raise SteerError(f"unknown estimator '{name}': choose one of {', '.join(estimator_names())}")
    return ESTIMATORS[name]


# ---- COCO detector ------------------------------------------------------------------------

DETECTORS = ("fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn")


@lru_cache(maxsize=1)
def coco_to_imagenet() -> dict:
    """COCO category name -> sorted ImageNet-1k class indices it covers (package data)."""
    data = json.loads(resources.files("steer.data").joinpath("coco_to_imagenet.json").read_text())
    table = {}
    for name, entries in data["categories"].items():
        indices = []
        for e in entries:
            indices += list(range(e[0], e[1] + 1)) if isinstance(e, list) else [e]
        table[name] = sorted(indices)
    return table


def imagenet_to_coco(index: int) -> str | None:
    """The COCO category an ImageNet class index belongs to, or None."""
    for name, indices in coco_to_imagenet().items():
        if int(index) in indices:
            return name
    return None


def coco_categories() -> list:
    """torchvision's COCO label list: a category's index is its detector label."""
    from torchvision.models.detection import FasterRCNN_MobileNet_V3_Large_FPN_Weights
    return FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1.meta["categories"]


def _weights(arch: str):
    from torchvision.models import detection
    return {"fasterrcnn_mobilenet_v3_large_fpn": detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights,
            "fasterrcnn_mobilenet_v3_large_320_fpn": detection.FasterRCNN_MobileNet_V3_Large_320_FPN_Weights,
            }[arch].COCO_V1


def detector_weights_path(arch: str = DETECTORS[0]) -> Path:
    """Where torchvision would cache the detector's COCO weights (steer only reads them)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(_weights(arch).url).name


def load_detector(arch: str = DETECTORS[0], device=None):
    """torchvision's COCO detector with weights read from torch's cache, never downloaded.
    No score threshold: as the paper's code, the best box of the wanted class is kept however
    unsure the detector is."""
    from torchvision.models import detection

    if arch not in DETECTORS:
        raise SteerError(f"unknown detector '{arch}': choose one of {', '.join(DETECTORS)}")
    path = detector_weights_path(arch)
    if not path.is_file():
        raise SteerError(f"the detector estimator needs torchvision's {arch} COCO weights {path.name} in "
                         f"{path.parent}/ (steer never downloads); or choose another --estimator")
    net = getattr(detection, arch)(weights=None, weights_backbone=None, num_classes=91,
                                   box_score_thresh=0.0, box_detections_per_img=300)
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:
        raise SteerError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    return net.eval().to(device or "cpu")


def detect_boxes(net, images, labels) -> torch.Tensor:
    """The highest-scoring box of each image's wanted COCO label, (N, 4) x0 y0 x1 y1 in
    pixels, NaN where the detector found none (or the label is None)."""
    device = next(net.parameters()).device
    with torch.no_grad():
        outputs = net([((im.float().clamp(-1, 1) + 1) / 2).to(device) for im in images])
    boxes = torch.full((len(images), 4), float("nan"))
    for i, (out, label) in enumerate(zip(outputs, labels)):
        if label is None:
            continue
        keep = out["labels"] == label
        if keep.any():
            best = out["scores"].masked_fill(~keep, -1).argmax()
            boxes[i] = out["boxes"][best].cpu()
    return boxes


def detector_estimator(statistic: str, category: str | None = None, arch: str = DETECTORS[0], device=None):
    """An estimator measuring the detected box's area or centre (fractions of the image, as
    the shapes estimators). The wanted category is `category` for every image, else each
    image's ImageNet class mapped through the COCO table."""
    names = coco_categories()
    if category is not None and category not in names:
        raise SteerError(f"unknown COCO category '{category}': choose one of "
                         f"{', '.join(sorted(set(names) - {'N/A', '__background__'}))}")
    net = load_detector(arch, device)

    def measure(images, classes=None):
        n, _, h, w = images.shape
        if category is not None:
            labels = [names.index(category)] * n
        elif classes is None:
            raise SteerError("the detector needs a COCO category for an unconditional model: give --coco-category")
        else:
            labels = [names.index(c) if (c := imagenet_to_coco(k)) else None for k in classes.tolist()]
        box = detect_boxes(net, images, labels)
        if statistic == "area":
            return (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]) / (h * w)
        if statistic == "centre_x":
            return (box[:, 0] + box[:, 2]) / 2 / w
        return (box[:, 1] + box[:, 3]) / 2 / h

    what = category or "each image's class mapped to COCO"
    return Estimator(f"detector_{statistic}", measure,
                     f"{arch} box {statistic.replace('_', ' ')} of the best {what} box",
                     "fraction of the image" if statistic == "area" else FRACTION,
                     0.25 if statistic == "area" else 0.05, statistic == "area")
