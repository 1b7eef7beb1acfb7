"""Attributes measured from an image alone: the object's area, centre and colour.

For images of one object on a plain background (the shapes data and generators trained
on it): the background colour is the median of the border pixels, and the object is
every pixel whose colour differs from it by more than a threshold.

For digits (MNIST and generators trained on it), ink is bright on dark: each pixel's ink is
its grey level mapped to [0, 1], and the digit estimators weigh pixels by it (area, box,
centre, slant).

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


# ---- digits: ink bright on dark -------------------------------------------------------------

def ink(images) -> torch.Tensor:
    """(N,3,H,W) in [-1,1] -> (N,H,W) ink in [0, 1]: the grey level (mean of RGB) mapped to [0, 1]."""
    return ((images.float().mean(1) + 1) / 2).clamp(0, 1)


def ink_area(images) -> torch.Tensor:
    """Mean ink over the image, (N,): the fraction of the image the strokes cover."""
    return ink(images).mean((1, 2))


def ink_bbox(images, threshold: float = 0.5) -> torch.Tensor:
    """(N, 2) height and width of the box around the pixels with ink > threshold, as
    fractions of the image size; NaN with no such pixel."""
    on = ink(images) > threshold
    h, w = on.shape[1:]

    def extent(rows):  # rows: (N, L) bool, does any ink pixel lie on each row (or column)
        index = torch.arange(rows.shape[1], dtype=torch.float32, device=rows.device)
        first = torch.where(rows, index, float("inf")).amin(1)
        last = torch.where(rows, index, -float("inf")).amax(1)
        size = last - first + 1
        return torch.where(rows.any(1), size, float("nan"))

    return torch.stack([extent(on.any(2)) / h, extent(on.any(1)) / w], dim=1)


def ink_moments(images) -> dict:
    """Ink-weighted centre and second central moments, each (N,). Centre (x, y) is in
    fractions of the image (pixel centres at (i + 0.5) / size, as object_centre); the
    moments are in pixels squared with y pointing up, so angles read as seen.

    slant: the principal axis's angle from the vertical in degrees, in (-90, 90], positive
    counter-clockwise as seen (the top leaning left), the sense of steer.edits.rotate, so
    rotating a digit by +t degrees adds t to its slant. elongation: the ratio of the larger
    to the smaller eigenvalue of the moment matrix; near 1 the axis (and slant) is undefined.
    Everything is NaN for an image without ink."""
    w = ink(images).double()
    n, h, width = w.shape
    xs = torch.arange(width, dtype=torch.float64, device=w.device) + 0.5
    ys = torch.arange(h, dtype=torch.float64, device=w.device) + 0.5
    total = w.sum((1, 2))
    total = torch.where(total > 0, total, float("nan"))
    cx = (w * xs).sum((1, 2)) / total
    cy = (w * ys[:, None]).sum((1, 2)) / total
    u = xs[None, None, :] - cx[:, None, None]  # right
    v = cy[:, None, None] - ys[None, :, None]  # up: image rows grow downwards
    uu, vv, uv = ((w * u * u).sum((1, 2)) / total, (w * v * v).sum((1, 2)) / total,
                  (w * u * v).sum((1, 2)) / total)
    axis = 0.5 * torch.rad2deg(torch.atan2(2 * uv, uu - vv))  # from the +x axis, counter-clockwise
    slant = 90.0 - torch.remainder(90.0 - (axis - 90.0), 180.0)  # from the vertical, into (-90, 90]
    spread = torch.sqrt(((uu - vv) / 2) ** 2 + uv ** 2)
    big, small = (uu + vv) / 2 + spread, (uu + vv) / 2 - spread
    elongation = big / small.clamp_min(1e-12)
    return {"centre_x": (cx / width).float(), "centre_y": (cy / h).float(), "slant": slant.float(),
            "elongation": elongation.float()}


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
# digits; a zoom by a scales ink area by a^2 and box sides by a, so 0.25 on area and 0.12 on a
# side ask the same of a zoom walk; 0.05 of the width (1.6 px at 32) for the centre, as shapes
ESTIMATORS.update({
    "ink_area": _plain("ink_area", ink_area, "mean ink over the image (ink = grey level mapped to [0, 1])",
                       "fraction of the image", 0.25, relative=True),
    "bbox_height": _plain("bbox_height", lambda x: ink_bbox(x)[:, 0], "height of the box around pixels with ink > 0.5",
                          "fraction of the image height", 0.12, relative=True),
    "bbox_width": _plain("bbox_width", lambda x: ink_bbox(x)[:, 1], "width of the box around pixels with ink > 0.5",
                         FRACTION, 0.12, relative=True),
    "ink_centre_x": _plain("ink_centre_x", lambda x: ink_moments(x)["centre_x"], "ink-weighted centre x",
                           FRACTION, 0.05),
    "ink_centre_y": _plain("ink_centre_y", lambda x: ink_moments(x)["centre_y"], "ink-weighted centre y",
                           "fraction of the image height", 0.05),
    "slant": _plain("slant", lambda x: ink_moments(x)["slant"],
                    "angle of the ink's principal axis from the vertical, counter-clockwise as steer's rotate",
                    "degrees", 10.0),
})
DIGIT_ATTRIBUTES = ("ink_area", "bbox_height", "bbox_width", "ink_centre_x", "ink_centre_y", "slant")

for _c, _channel in enumerate("rgb"):
    ESTIMATORS[f"colour_{_channel}"] = _plain(
        f"colour_{_channel}", lambda x, c=_c: x[:, c].mean((1, 2)), f"mean {_channel.upper()} over the image",
        "[-1, 1] image units", 0.1)

# the attribute each edit moves, measured when no estimator is named
EDIT_ESTIMATORS = {"zoom": "area", "shift_x": "centre_x", "shift_y": "centre_y", "colour": "colour",
                   "brightness": "colour"}
# the same for models trained on digits (MNIST): ink instead of an object on a plain background
DIGIT_EDIT_ESTIMATORS = {"zoom": "ink_area", "shift_x": "ink_centre_x", "shift_y": "ink_centre_y",
                         "rotate": "slant"}
# with --estimator detector: which box statistic each edit moves
DETECTOR_STATISTICS = {"zoom": "area", "shift_x": "centre_x", "shift_y": "centre_y"}


def estimator_names() -> list:
    return list(ESTIMATORS) + ["detector", "detector_area", "detector_centre_x", "detector_centre_y"]


def get_estimator(name: str, edit_name: str | None = None, edit_estimators: dict | None = None,
                  **detector_options) -> Estimator:
    """An estimator by name; None picks the one that matches the edit, from `edit_estimators`
    (EDIT_ESTIMATORS unless given, e.g. DIGIT_EDIT_ESTIMATORS). 'detector' picks the box
    statistic that matches the edit (area for zoom, centre for shifts)."""
    defaults = EDIT_ESTIMATORS if edit_estimators is None else edit_estimators
    if name is None:
        if edit_name not in defaults:
            raise SteerError(f"no default estimator for a {edit_name} walk: give --estimator "
                             f"({', '.join(estimator_names())})")
        name = defaults[edit_name]
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


def spread(values) -> dict:
    """median, IQR and the 5-95 % range of one attribute's values (NaNs dropped)."""
    import numpy as np
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    p5, q1, median, q3, p95 = np.percentile(v, [5, 25, 50, 75, 95])
    return {"median": float(median), "iqr": float(q3 - q1), "p5": float(p5), "p95": float(p95), "n": int(len(v))}


def attribute_spreads(images, classes=None, class_names=None, names=DIGIT_ATTRIBUTES) -> dict:
    """{attribute: {"overall": spread, "per_class": {class name: spread}}} over a set of
    images: how widely the training data varies in each attribute, which the reach of a walk
    is compared with."""
    result = {}
    for name in names:
        values = ESTIMATORS[name](images)
        result[name] = {"units": ESTIMATORS[name].units, "overall": spread(values)}
        if classes is not None:
            labels = class_names or [str(c) for c in sorted(set(classes.tolist()))]
            result[name]["per_class"] = {labels[c]: spread(values[classes == c])
                                         for c in sorted(set(classes.tolist()))}
    return result


def digit_attribute_spreads() -> dict:
    """attribute_spreads of the 4,000 real MNIST training digits (steer.data.mnist)."""
    from .data.mnist import load_mnist
    images, classes, names = load_mnist("train")
    return attribute_spreads(images, classes, names)


def format_spreads(spreads: dict, per_class: bool = True) -> str:
    """A plain-text table: one row per attribute (and per class), median, IQR, 5-95 %."""
    lines = [f"{'attribute':<13} {'class':<7} {'median':>8} {'IQR':>8} {'5%':>8} {'95%':>8}  units"]
    for name, entry in spreads.items():
        rows = [("all", entry["overall"])] + (list(entry.get("per_class", {}).items()) if per_class else [])
        for label, s in rows:
            lines.append(f"{name:<13} {label:<7} {s['median']:8.3f} {s['iqr']:8.3f} {s['p5']:8.3f} {s['p95']:8.3f}"
                         f"  {entry['units'] if label == 'all' else ''}")
    return "\n".join(lines)


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
        from .fetch import fetch_hint
        hint = fetch_hint(path.name) or "steer downloads nothing unasked"
        raise SteerError(f"the detector estimator needs torchvision's {arch} COCO weights {path.name} in "
                         f"{path.parent}/ ({hint}); or choose another --estimator")
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
