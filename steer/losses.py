"""Masked losses: pixels an edit leaves undefined (mask 0) do not count.

masked_l2 is the masked mean sum(mask * (a-b)^2) / sum(mask) over every pixel and channel.
MaskedLPIPS compares mask*a with mask*b, as the steerability code does.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import SteerError

# torchvision's file names for the backbones LPIPS builds on
LPIPS_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def masked_l2(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean squared error over the whole batch."""
    m = mask.expand_as(a)
    return (m * (a - b).square()).sum() / m.sum().clamp_min(1.0)


def masked_l2_per_sample(a, b, mask) -> torch.Tensor:
    """Masked mean squared error of each sample, shape (N,)."""
    m = mask.expand_as(a)
    return (m * (a - b).square()).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp_min(1.0)


def lpips_backbone_path(net: str = "alex") -> Path:
    """Where torch keeps the torchvision weights LPIPS needs: <torch hub dir>/checkpoints/."""
    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILES[net]


class MaskedLPIPS(nn.Module):
    """LPIPS (the `lpips` package) on masked images.

    backbone: "pretrained" loads torchvision's ImageNet weights from torch's cache (never
    downloads: a missing file is a SteerError naming it); "random" keeps a randomly
    initialised backbone, for testing the code paths only.
    """

    def __init__(self, net: str = "alex", backbone: str = "pretrained"):
        super().__init__()
        if net not in LPIPS_BACKBONE_FILES:
            raise SteerError(f"unknown LPIPS network '{net}': choose alex or vgg")
        path = lpips_backbone_path(net)
        if backbone == "pretrained" and not path.is_file():
            from .fetch import fetch_hint
            hint = fetch_hint(path.name)
            raise SteerError(f"LPIPS needs the torchvision {net} weights: put {path.name} in "
                             f"{path.parent}/ (or set TORCH_HOME{'; ' + hint if hint else ''}), or use --loss l2")
        import warnings

        import lpips
        with warnings.catch_warnings():  # torchvision's deprecation notes about `pretrained`
            warnings.simplefilter("ignore")
            # pnet_rand=True: build the backbone without torchvision fetching its weights
            self.model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        if backbone == "pretrained":
            self._load_backbone(path, net)
        self.model.eval().requires_grad_(False)

    def _load_backbone(self, path: Path, net: str):
        import torchvision
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise SteerError(f"cannot read LPIPS backbone weights {path}: {e}") from None
        full = torchvision.models.alexnet() if net == "alex" else torchvision.models.vgg16()
        full.load_state_dict(state)
        # lpips slices the torchvision feature stack; its children are named by their index
        for slice_name in [n for n, _ in self.model.net.named_children() if n.startswith("slice")]:
            for index, module in getattr(self.model.net, slice_name).named_children():
                module.load_state_dict(full.features[int(index)].state_dict())

    def forward(self, a, b, mask=None):
        if mask is not None:
            a, b = a * mask, b * mask
        return self.model(a, b).mean()
