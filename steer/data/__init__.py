"""Training data: the procedural shapes set, real MNIST digits and plain image folders; the
ImageNet-1k class names (imagenet_classes.txt, one per line in the standard class-index
order); and which of these a loaded model says it was trained on."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .shapes import SHAPE_CLASSES, ShapesConfig, render_shapes, sample_shapes


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple:
    """The 1000 ImageNet-1k class names; line i is class index i."""
    text = (Path(__file__).parent / "imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def model_config(generator) -> dict:
    """The config.json of the folder a generator was loaded from ({} for checkpoint files)."""
    source = getattr(generator, "source", None)
    if source is None or source.kind in ("checkpoint", "hf"):  # files, not folders with a config.json
        return {}
    from ..generators.loading import read_config
    try:
        return read_config(Path(source.path))
    except Exception:  # a folder that went away after loading: the model says nothing more
        return {}


def training_data(generator) -> str | None:
    """'shapes' or 'mnist' when the model's folder says it was trained on steer's shapes or
    on MNIST digits, else None (its data is not one steer can draw)."""
    config = model_config(generator)
    if config.get("training_data") == "mnist":
        return "mnist"
    if config.get("class_names") == list(SHAPE_CLASSES):
        return "shapes"
    return None


def training_shapes(generator):
    """The ShapesConfig a shapes model was trained on (the default unless its folder records
    `shapes_config`), or None for models not trained on the shapes data."""
    if training_data(generator) != "shapes":
        return None
    config = model_config(generator)
    return ShapesConfig.from_dict(config["shapes_config"]) if "shapes_config" in config else ShapesConfig()


__all__ = ["model_config", "training_data", "training_shapes", "SHAPE_CLASSES", "ShapesConfig", "render_shapes", "sample_shapes", "imagenet_class_names"]
