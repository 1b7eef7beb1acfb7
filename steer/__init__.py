"""steer: learn, measure and apply walks in the latent spaces of pretrained GANs.

    import steer
    G = steer.load_generator("dcgan-shapes32")
    walk = steer.walks.LinearWalk(...)

`import steer` is light: edits, fit, walks, load_generator, Generator and Steering (which
pull in torch and kornia) are imported on first use.
"""
import importlib

from .errors import SteerError

__version__ = "0.1.0"
__all__ = ["edits", "fit", "walks", "load_generator", "Generator", "Steering", "SteerError", "__version__"]

_SUBMODULES = ("edits", "fit", "walks")
_FROM_GENERATORS = ("load_generator", "Generator")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "Steering":
        value = importlib.import_module(".steering", __name__).Steering
        globals()[name] = value
        return value
    if name in _FROM_GENERATORS:
        value = getattr(importlib.import_module(".generators", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
