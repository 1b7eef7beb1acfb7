"""DSS-GAN (arXiv 2603.17637): a Mamba generator with per-direction latent subvectors.

- `generator`: the generator, with the official module names (official state_dicts load
  strictly); `configs`: the official 128/256/512 px configs and small CPU ones;
- `official`: official whole-module checkpoints, read without running them;
- `discriminator`: the official discriminator, for training;
- `mamba`, `scan`: the Mamba block and its selective scan (steer's on CPU, mamba-ssm's
  kernel on CUDA when installed).
"""
from .configs import official_config, small_config
from .discriminator import DSSGANDiscriminator
from .generator import DSSGANGenerator, init_for_training
from .mamba import Mamba, MambaBlock
from .scan import selective_scan, selective_scan_reference

__all__ = ["DSSGANGenerator", "DSSGANDiscriminator", "Mamba", "MambaBlock", "init_for_training",
           "official_config", "selective_scan", "selective_scan_reference", "small_config"]
