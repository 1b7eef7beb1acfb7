"""steer: learn, measure and apply walks in the latent spaces of pretrained GANs.

    import steer
    G = steer.load_generator("dcgan-shapes32")
    walk = steer.walks.LinearWalk(...)
"""
from . import edits, fit, walks
from .errors import SteerError
from .generators import Generator, load_generator

__version__ = "0.1.0"
__all__ = ["edits", "fit", "walks", "load_generator", "Generator", "SteerError", "__version__"]
