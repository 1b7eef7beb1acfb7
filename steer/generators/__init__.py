"""Generator families behind one interface (see base.Generator)."""
from .base import Generator
from .registry import DEFAULT_MODEL, bundled_models, load_generator, save_generator

__all__ = ["Generator", "DEFAULT_MODEL", "bundled_models", "load_generator", "save_generator"]
