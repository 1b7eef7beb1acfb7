"""A small CNN that recognises the classes of steer's small datasets: the shapes classes
(models/shapes-classifier32) and the MNIST digits (models/mnist-classifier32). It gives the
offline quality measures for generators trained on that data: its penultimate features for
the Frechet distance, and its predictions for how often a generated image shows the class it
was asked for. One class serves both; config.json records the class names."""
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
MNIST_CLASSIFIER = "mnist-classifier32"


class ImageClassifier(nn.Module):
    def __init__(self, num_classes: int = 4, width: int = 32, feature_dim: int = 128, class_names=None):
        super().__init__()
        self.num_classes, self.width, self.feature_dim = num_classes, width, feature_dim
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.class_names = None if class_names is None else list(class_names)
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
        config = {"kind": "classifier", "num_classes": self.num_classes, "width": self.width,
                  "feature_dim": self.feature_dim}
        if self.class_names is not None:
            config["class_names"] = self.class_names
        return config


ShapesClassifier = ImageClassifier  # the name older code imports


def train_classifier(steps: int = 1500, batch: int = 64, resolution: int = 32, seed: int = 0,
                     progress: bool = True) -> ImageClassifier:
    """Train on freshly drawn shapes, with noise and blur so it also reads imperfect samples."""
    from tqdm.auto import tqdm

    from .data.shapes import SHAPE_CLASSES, sample_shapes

    torch.manual_seed(seed)
    model = ImageClassifier(num_classes=len(SHAPE_CLASSES), class_names=SHAPE_CLASSES)
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


def augment_digits(images, gen: torch.Generator, shift: float = 2.0, degrees: float = 15.0,
                   scale=(0.9, 1.1), noise: float = 0.15):
    """Random small affine warps (shift in pixels, rotation, scale) and Gaussian noise of a
    random strength up to `noise`: generated digits are rarely as clean and centred as MNIST."""
    n, _, h, w = images.shape
    angle = torch.deg2rad((torch.rand(n, generator=gen) * 2 - 1) * degrees)
    factor = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=gen)
    offset = (torch.rand(n, 2, generator=gen) * 2 - 1) * shift * 2 / torch.tensor([w, h])
    # affine_grid maps output to input coordinates, so this is the inverse warp; the
    # augmentation is symmetric, so only its spread matters
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack([torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # the digits' border is background, so 'border' padding fills with background (-1)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    sigma = noise * torch.rand(n, 1, 1, 1, generator=gen)
    return (out + sigma * torch.randn(out.shape, generator=gen)).clamp(-1, 1)


def train_mnist_classifier(steps: int = 3000, batch: int = 64, seed: int = 0, lr: float = 2e-3,
                           progress: bool = True) -> ImageClassifier:
    """Train on the 4,000 MNIST training digits (never the held-out 1,000) at 32x32, each
    batch augmented by augment_digits. Seeded: the same seed gives the same weights on CPU."""
    from tqdm.auto import tqdm

    from .data.mnist import load_mnist

    images, classes, names = load_mnist("train")
    torch.manual_seed(seed)
    model = ImageClassifier(num_classes=len(names), class_names=names)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in tqdm(range(steps), disable=not progress, desc="mnist classifier"):
        gen = torch.Generator().manual_seed(step_seed(seed, step, 5))
        pick = torch.randint(len(images), (batch,), generator=gen)
        loss = F.cross_entropy(model(augment_digits(images[pick], gen)), classes[pick])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: ImageClassifier, images, classes, batch: int = 500) -> dict:
    """Overall and per-class accuracy (keyed by class name when the model has names)."""
    device = next(model.parameters()).device
    predicted = torch.cat([model(images[i:i + batch].to(device)).argmax(1).cpu()
                           for i in range(0, len(images), batch)])
    right = predicted == classes
    names = model.class_names or [str(c) for c in range(model.num_classes)]
    return {"overall": float(right.float().mean()),
            "per_class": {names[c]: float(right[classes == c].float().mean())
                          for c in range(model.num_classes) if (classes == c).any()}}


def save_classifier(model: ImageClassifier, folder, card: str):
    """Same folder format as a bundled generator; config.json's "kind" keeps it out of `steer models`."""
    from .generators.registry import save_generator
    save_generator(model, folder, card)


def load_classifier(name_or_path=BUNDLED_CLASSIFIER, device="cpu") -> ImageClassifier:
    from .generators.registry import models_dir
    folder = Path(name_or_path)
    if not (folder / "config.json").is_file():
        folder = models_dir() / str(name_or_path)
    if not (folder / "config.json").is_file():
        raise SteerError(f"no classifier at {name_or_path}: expected {folder}/config.json")
    config = json.loads((folder / "config.json").read_text())
    model = ImageClassifier(config["num_classes"], config["width"], config["feature_dim"],
                            config.get("class_names"))
    model.load_state_dict(load_file(str(folder / "weights.safetensors")), strict=True)
    return model.to(device).eval().requires_grad_(False)
