"""Image folders as training data: every image Pillow reads under a folder, resized and
centre-cropped; sub-folders become classes (sorted by name), loose images class 0."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import SteerError
from ..seeding import step_seed

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
# the most pixels steer decodes from one image file (Pillow's own bomb limit): `steer invert`
# and `steer train --data FOLDER` both refuse larger images before decoding them
MAX_PIXELS = 89_478_485


# the largest maximum a 16- or 32-bit integer image can hold as its full scale
_SIXTEEN_BIT = 65535.0


def open_rgb(path) -> Image.Image:
    """Any image Pillow reads -> an 8-bit RGB image: EXIF orientation applied, transparency
    composited on white, greyscale repeated over the channels, 16-bit data (modes I;16*, and I,
    the mode Pillow gives some 16-bit files) scaled from 0..65535 and float data (F) from 0..1."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode.startswith("I") or im.mode == "F":
            # Pillow's own conversion clips these at 255 rather than rescaling them
            scale = 1.0 if im.mode == "F" else _SIXTEEN_BIT
            values = np.asarray(im, dtype=np.float64) / scale
            im = Image.fromarray((values.clip(0, 1) * 255).round().astype(np.uint8), "L")
        if im.mode in ("RGBA", "LA", "PA", "P", "La", "RGBa"):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(background, im)
        return im.convert("RGB")


def check_pixels(path, max_pixels: int = MAX_PIXELS):
    """Refuse an image whose header declares more than `max_pixels`, before decoding it."""
    try:
        with warnings.catch_warnings():  # Pillow warns of a bomb on opening; steer refuses it below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as probe:
                width, height = probe.size
    except Image.DecompressionBombError as e:
        raise SteerError(f"image {path} is too large to decode safely ({e}): downscale it first") from None
    if width * height > max_pixels:
        raise SteerError(f"image {path} has {width}x{height} = {width * height:,} pixels, more than the limit "
                         f"of {max_pixels:,}: downscale it first")


def load_image(path, resolution: int) -> torch.Tensor:
    """One image -> (3, S, S) float32 in [-1, 1]: read by open_rgb, resized on its short side
    and centre-cropped."""
    im = ImageOps.fit(open_rgb(path), (resolution, resolution), Image.Resampling.LANCZOS)
    return to_tensor(im)


def to_tensor(im: Image.Image) -> torch.Tensor:
    """An RGB Pillow image -> (3, H, W) float32 in [-1, 1]."""
    array = np.asarray(im, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def load_folder(folder, resolution: int):
    """Returns (images (n,3,S,S), classes (n,), class names)."""
    root = Path(folder)
    if not root.is_dir():
        raise SteerError(f"data folder {folder} does not exist")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    groups = [(d.name, d) for d in subdirs] or [(root.name, root)]
    images, classes, names = [], [], []
    for index, (name, d) in enumerate(groups):
        files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        for f in files:
            try:
                check_pixels(f)
                images.append(load_image(f, resolution))
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                raise SteerError(f"cannot read image {f}: {e}") from None
            classes.append(index)
        names.append(name)
    if not images:
        raise SteerError(f"no images found under {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return torch.stack(images), torch.tensor(classes, dtype=torch.int64), names


def folder_batches(images, classes, seed: int = 0, flip: bool = True):
    """next_batch(step, n) drawing random images, each mirrored left-right with probability
    1/2 when `flip` (off for data whose mirror image is not data, such as digits)."""
    def next_batch(step, n):
        gen = torch.Generator().manual_seed(step_seed(seed, step, 2))
        idx = torch.randint(len(images), (n,), generator=gen)
        batch = images[idx]
        if flip:
            mirrored = torch.rand(n, generator=gen) < 0.5
            batch[mirrored] = batch[mirrored].flip(-1)
        return batch, classes[idx]
    return next_batch
