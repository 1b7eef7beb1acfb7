"""Training data: the procedural shapes set and plain image folders."""
from .shapes import SHAPE_CLASSES, ShapesConfig, render_shapes, sample_shapes

__all__ = ["SHAPE_CLASSES", "ShapesConfig", "render_shapes", "sample_shapes"]
