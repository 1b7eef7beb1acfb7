"""Training data: the procedural shapes set and plain image folders; the ImageNet-1k class
names (imagenet_classes.txt, one per line in the standard class-index order)."""
from functools import lru_cache
from pathlib import Path

from .shapes import SHAPE_CLASSES, ShapesConfig, render_shapes, sample_shapes


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple:
    """The 1000 ImageNet-1k class names; line i is class index i."""
    text = (Path(__file__).parent / "imagenet_classes.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


__all__ = ["SHAPE_CLASSES", "ShapesConfig", "render_shapes", "sample_shapes", "imagenet_class_names"]
