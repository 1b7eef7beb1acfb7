"""NVlabs StyleGAN2-ADA and StyleGAN3 (T and R) snapshots and rosinality StyleGAN2
checkpoints, read without running them and rebuilt as steer's own networks.

- `network`: NVlabs StyleGAN2 modules and the NVlabs mapping network (official names);
- `rosinality`: rosinality's generator modules (official names);
- `official`: the readers; `generator`: the adapters (StyleGAN3-T/R synthesis is
  StyleGAN-XL's, steer/generators/stylegan_xl/network.py).
"""
from .generator import RosinalityGenerator, StyleGAN2Generator, StyleGAN3Generator

__all__ = ["RosinalityGenerator", "StyleGAN2Generator", "StyleGAN3Generator"]
