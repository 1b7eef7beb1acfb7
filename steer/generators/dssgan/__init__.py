"""DSS-GAN (arXiv 2603.17637): a Mamba generator with per-direction latent subvectors.

Built up piece by piece; so far the Mamba block with steer's own CPU selective scan.
"""
from .mamba import Mamba, MambaBlock, selective_scan

__all__ = ["Mamba", "MambaBlock", "selective_scan"]
