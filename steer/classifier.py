"""A small CNN that recognises the shapes classes. It gives the offline quality measures
for shapes generators: its penultimate features for the Frechet distance, and its
predictions for how often a generated image shows the class it was asked for."""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .errors import SteerError
from .seeding import step_seed

BUNDLED_CLASSIFIER = "shapes-classifier32"


class ShapesClassifier(nn.Module):
    def __init__(self, num_classes: int = 4, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.num_classes, self.width, self.feature_dim = num_classes, width, feature_dim
        self.convs = nn.ModuleList([
            nn.Conv2d(3, width, 3, padding=1),
            nn.Conv2d(width, width * 2, 3, padding=1),
            nn.Conv2d(width * 2, width * 4, 3, padding=1),
        ])
        self.fc = nn.Linear(width * 4, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, images):
        h = images
        for conv in self.convs:
            h = F.max_pool2d(F.relu(conv(h)), 2)
        return F.relu(self.fc(h.mean((2, 3))))

    def forward(self, images):
        return self.head(self.features(images))

    def config(self):
        return {"kind": "classifier", "num_classes": self.num_classes, "width": self.width,
                "feature_dim": self.feature_dim}


def train_classifier(steps: int = 1500, batch: int = 64, resolution: int = 32, seed: int = 0,
                     progress: bool = True) -> ShapesClassifier:
    """Train on freshly drawn shapes, with noise and blur so it also reads imperfect samples."""
    from tqdm.auto import tqdm

    from .data.shapes import sample_shapes

    torch.manual_seed(seed)
    model = ShapesClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in tqdm(range(steps), disable=not progress, desc="classifier"):
        images, attrs = sample_shapes(batch, seed=step_seed(seed, step, 3), resolution=resolution)
        gen = torch.Generator().manual_seed(step_seed(seed, step, 4))
        images = images + 0.1 * torch.rand(batch, 1, 1, 1, generator=gen) * torch.randn(images.shape, generator=gen)
        if step % 2:
            images = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        loss = F.cross_entropy(model(images), attrs["class"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def save_classifier(model: ShapesClassifier, folder, card: str):
    """Same folder format as a bundled generator; config.json's "kind" keeps it out of `steer models`."""
    from .generators.registry import save_generator
    save_generator(model, folder, card)


def load_classifier(name_or_path=BUNDLED_CLASSIFIER, device="cpu") -> ShapesClassifier:
    from .generators.registry import models_dir
    folder = Path(name_or_path)
    if not (folder / "config.json").is_file():
        folder = models_dir() / str(name_or_path)
    if not (folder / "config.json").is_file():
        raise SteerError(f"no shapes classifier at {name_or_path}: expected {folder}/config.json")
    config = json.loads((folder / "config.json").read_text())
    model = ShapesClassifier(config["num_classes"], config["width"], config["feature_dim"])
    model.load_state_dict(load_file(str(folder / "weights.safetensors")), strict=True)
    return model.to(device).eval().requires_grad_(False)
