"""Pictures: image grids, walk strips, GIFs and loss plots, written as files a person opens."""
from __future__ import annotations


import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(n,3,H,W) in [-1,1] -> (n,H,W,3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def grid(images: torch.Tensor, columns: int, pad: int = 2, upscale: int = 1) -> Image.Image:
    """Tile images row by row into one picture with a white gutter."""
    tiles = to_uint8(images)
    n, h, w, _ = tiles.shape
    rows = -(-n // columns)
    canvas = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = tile
    picture = Image.fromarray(canvas)
    if upscale > 1:
        picture = picture.resize((picture.width * upscale, picture.height * upscale), Image.Resampling.NEAREST)
    return picture


def save_grid(images, path, columns: int, upscale: int = 1) -> None:
    grid(images, columns, upscale=upscale).save(path)


def save_strip_grid(strips: torch.Tensor, alphas, path, upscale: int = 1, title: str | None = None) -> None:
    """strips: (rows, len(alphas), 3, H, W). One row per sample, one column per alpha,
    with the alpha values written above the columns."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = strips.shape[:2]
    picture = grid(strips.reshape(rows * cols, *strips.shape[2:]), cols, upscale=upscale)
    fig_w = max(4.0, picture.width / 80)
    fig_h = fig_w * picture.height / picture.width + 0.5
    fig, ax = plt.subplots(figsize=(fig_w, fig_h), dpi=100)
    ax.imshow(np.asarray(picture), interpolation="nearest")
    cell = picture.width / cols
    ax.set_xticks([cell * (i + 0.5) for i in range(cols)])
    ax.set_xticklabels([format_alpha(a) for a in alphas], fontsize=8)
    ax.set_yticks([])
    ax.xaxis.tick_top()
    if title:
        ax.set_title(title, fontsize=9, pad=18)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def format_alpha(a) -> str:
    if isinstance(a, (list, tuple)):
        return "(" + ",".join(f"{v:g}" for v in a) + ")"
    return f"{a:.3g}"


def save_gif(frames: torch.Tensor, path, upscale: int = 1, duration_ms: int = 120) -> None:
    """frames: (T, 3, H, W) or (T, n, 3, H, W) (then each frame is a row of n images).
    Plays forward then back so the loop has no jump."""
    if frames.dim() == 5:
        pictures = [grid(f, f.shape[0], upscale=upscale) for f in frames]
    else:
        pictures = [grid(f[None], 1, pad=0, upscale=upscale) for f in frames]
    sequence = pictures + pictures[-2:0:-1]
    sequence[0].save(path, save_all=True, append_images=sequence[1:], duration=duration_ms, loop=0)


def save_loss_plot(history, path, title: str = "walk loss") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(history) + 1)
    values = np.asarray(history, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(steps, values, lw=0.6, alpha=0.4, label="per step")
    if len(values) >= 20:
        k = max(5, len(values) // 50)
        smooth = np.convolve(values, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, lw=1.5, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
