"""StyleGAN-XL (Sauer et al. 2022): official pickles read without running them, the mapping
network and StyleGAN3-T synthesis in plain PyTorch, and the adapter with z, w and w+.

- `network`: the modules, with the official names (official G_ema state_dicts load strictly);
- `ops`: FIR resampling, filtered leaky ReLU and modulated conv, reference and fast forms;
- `official`: the pickle reader; `generator`: the adapter.
"""
from .generator import StyleGANXLGenerator
from .network import design_config

__all__ = ["StyleGANXLGenerator", "design_config"]
