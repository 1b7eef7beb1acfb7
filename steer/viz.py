"""Pictures: image grids, walk strips, GIFs and loss plots, written as files a person opens."""
from __future__ import annotations

import io

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


def class_labels(generator, classes) -> list | None:
    """The class name of each sample (None for an unconditional model)."""
    if classes is None or not generator.num_classes:
        return None
    names = generator.class_names or [str(k) for k in range(generator.num_classes)]
    return [names[int(k)] for k in classes.reshape(-1).tolist()]


def save_labelled_grid(images, path, columns: int, labels=None, title: str | None = None) -> None:
    """A grid with each image's label (its class name) written under it, so a sample grid says
    which class each sample was asked for. Without labels: the plain grid."""
    if not labels:
        save_grid(images, path, columns, upscale=max(1, 64 // images.shape[-1]))
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pad, size = 2, images.shape[-1]
    picture = grid(images, columns, pad=pad)
    rows = -(-len(images) // columns)
    cell = 0.75  # inches per tile, room for a short name
    fig, ax = plt.subplots(figsize=(max(3.0, cell * columns), cell * rows + (0.4 if title else 0.1)), dpi=120)
    ax.imshow(picture, interpolation="nearest")
    for i, label in enumerate(labels):
        r, c = divmod(i, columns)
        ax.text(pad + c * (size + pad) + size / 2, pad + r * (size + pad) + size - 1, str(label)[:14],
                ha="center", va="bottom", fontsize=6, color="white",
                bbox={"facecolor": "black", "alpha": 0.55, "pad": 0.8, "lw": 0})
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.2)
    fig.savefig(path)
    plt.close(fig)


def save_image(image: torch.Tensor, path) -> None:
    """One (1,3,H,W) or (3,H,W) image as a PNG at its own size, without a gutter."""
    Image.fromarray(to_uint8(image.reshape(1, *image.shape[-3:]))[0]).save(path)


def png_bytes(image: torch.Tensor) -> bytes:
    """One (1,3,H,W) or (3,H,W) image as PNG bytes at its own size. `steer render --frames`
    and `steer explore` both encode with this, so their files compare byte for byte."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image.reshape(1, *image.shape[-3:]))[0]).save(buffer, format="PNG")
    return buffer.getvalue()


def save_strip_grid(strips: torch.Tensor, alphas, path, upscale: int = 1, title: str | None = None,
                    row_labels=None) -> None:
    """strips: (rows, len(alphas), 3, H, W). One row per sample, one column per alpha,
    with the alpha values written above the columns and `row_labels` (one per row) left of them."""
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
    if row_labels:
        height = picture.height / rows
        ax.set_yticks([height * (r + 0.5) for r in range(rows)])
        ax.set_yticklabels(row_labels, fontsize=7)
    else:
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


def _finite(values):
    return np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)


def _data_band(ax, result, horizontal=True):
    """The training data's 10-90 % spread as a band and its median as a line."""
    data = result.get("data")
    if not data or data["median"] is None:
        return
    ax.axhspan(data["q10"], data["q90"], color="0.85", zorder=0, label="data 10-90 %")
    ax.axhline(data["median"], color="0.5", lw=1, ls="--", zorder=0, label="data median")


def save_attribute_distributions(result, path) -> None:
    """The steerability paper's figure: per alpha, the distribution of the attribute on the
    walked samples (violins) beside the target edits (boxes), over the data's spread."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    alphas = result["alphas"]
    positions = np.arange(len(alphas), dtype=np.float64)
    walked = [_finite(v) for v in result["values"]["walked"]]
    target = [_finite(v) for v in result["values"]["target"]]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.75 * len(alphas) + 2), 3.8), dpi=100)
    _data_band(ax, result)
    keep = [i for i, v in enumerate(walked) if len(v) > 1]
    if keep:
        parts = ax.violinplot([walked[i] for i in keep], positions[keep] - 0.17, widths=0.34,
                              showmedians=True, showextrema=False)
        for body in parts["bodies"]:
            body.set_facecolor("tab:blue")
            body.set_alpha(0.6)
        parts["cmedians"].set_color("tab:blue")
    keep_t = [i for i, v in enumerate(target) if len(v) > 0]
    if keep_t:
        ax.boxplot([target[i] for i in keep_t], positions=positions[keep_t] + 0.17, widths=0.22,
                   showfliers=False, patch_artist=True,
                   boxprops={"facecolor": "tab:orange", "alpha": 0.6}, medianprops={"color": "k"})
    ax.plot([], [], color="tab:blue", lw=6, alpha=0.6, label="walked G(walk(z, α))")
    ax.plot([], [], color="tab:orange", lw=6, alpha=0.6, label="target edit(G(z), α)")
    ax.set_xticks(positions)
    ax.set_xticklabels([format_alpha(a) for a in alphas], fontsize=8)
    ax.set_xlim(-0.6, len(alphas) - 0.4)
    ax.set_xlabel(f"α ({result['edit']})")
    ax.set_ylabel(f"{result['estimator']['name']} ({result['estimator']['units']})", fontsize=8)
    ax.set_title(f"{result.get('model', '')} {result['edit']} walk: {result['estimator']['name']} per α "
                 f"({result['samples']} samples)", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_achieved_vs_target(result, path) -> None:
    """Left: walked and target medians against alpha with their 25-75 % bands, the data's
    spread, the reach and the saturation alphas. Middle: the paper's plot, achieved against
    target per alpha (medians, 25-75 % bars) with the fitted slope over the training range.
    Right, when the data were given: the walked samples' distances to the data."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["per_alpha"]
    alphas = np.asarray([r["alpha"] for r in rows], dtype=np.float64)
    distances = "wasserstein_walked_to_data" in rows[0]
    fig, axes = plt.subplots(1, 3 if distances else 2, figsize=(15.0 if distances else 10.5, 4.2), dpi=100,
                             squeeze=False)
    ax = axes[0, 0]
    _data_band(ax, result)

    def column(key, name):
        return np.asarray([np.nan if r[key][name] is None else r[key][name] for r in rows])

    for key, colour, label in (("target", "tab:orange", "target"), ("walked", "tab:blue", "walked")):
        ax.fill_between(alphas, column(key, "q25"), column(key, "q75"), color=colour, alpha=0.25, lw=0)
        ax.plot(alphas, column(key, "median"), "o-", color=colour, ms=3, label=f"{label} median (25-75 % band)")
    reach = result.get("reach") or {}
    if reach.get("low") is not None:
        ax.axvspan(reach["low"], reach["high"], color="tab:green", alpha=0.12, lw=0,
                   label=f"reach {format_alpha(reach['low'])} .. {format_alpha(reach['high'])} "
                         f"(±{reach['tolerance']:g} data IQR)")
    saturation = result.get("saturation") or {}
    for side in ("low", "high"):
        if saturation.get(side) is not None:
            ax.axvline(saturation[side], color="tab:red", ls=":", lw=1.2)
    if any(saturation.get(side) is not None for side in ("low", "high")):
        ax.plot([], [], color="tab:red", ls=":", label="effect saturates")
    ax.axvline(result["identity"], color="0.3", lw=0.6)
    ax.set_xlabel(f"α ({result['edit']})")
    ax.set_ylabel(f"{result['estimator']['name']} ({result['estimator']['units']})", fontsize=8)
    ax.set_title(f"{result.get('model', '')} {result['edit']} walk: {result['estimator']['name']} per α", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    if result["edit"] == "zoom":
        ax.set_xscale("log", base=2)

    # the paper's view: what the walk achieves against what the edit asks for
    ax = axes[0, 1]
    relative = result["tolerance"]["relative"]
    scale = np.log if relative else (lambda v: v)
    name = f"log {result['estimator']['name']}" if relative else result["estimator"]["name"]
    with np.errstate(divide="ignore", invalid="ignore"):
        tm, wm = scale(column("target", "median")), scale(column("walked", "median"))
        t_err = [tm - scale(column("target", "q25")), scale(column("target", "q75")) - tm]
        w_err = [wm - scale(column("walked", "q25")), scale(column("walked", "q75")) - wm]
    slope = result.get("slope")
    inside = np.isin(alphas, slope["alphas"]) if slope else np.ones(len(alphas), bool)
    measured = np.isfinite(tm) & np.isfinite(wm)
    # a quartile of zero area has no log: its bar is left out rather than drawn to infinity
    t_err, w_err = ([np.where(np.isfinite(e), e, 0).clip(0) for e in errs] for errs in (t_err, w_err))
    for mask, style, label in ((inside & measured, "o", "α in the training range"),
                               (~inside & measured, "x", "α beyond it")):
        if mask.any():
            ax.errorbar(tm[mask], wm[mask], xerr=[e[mask] for e in t_err], yerr=[e[mask] for e in w_err],
                        fmt=style, color="tab:blue", ms=4, lw=0.8, capsize=2, label=f"median, 25-75 % ({label})")
    for a, x, y in zip(alphas[measured], tm[measured], wm[measured]):
        ax.annotate(f"α={format_alpha(a)}", (x, y), xytext=(3, -9), textcoords="offset points", fontsize=6,
                    color="0.3")
    finite = measured
    if finite.any():
        lo, hi = np.nanmin(np.concatenate([tm[finite], wm[finite]])), np.nanmax(np.concatenate([tm[finite], wm[finite]]))
        ax.plot([lo, hi], [lo, hi], color="0.5", ls="--", lw=1, label="achieved = target (slope 1)")
        if slope:
            at = int(np.argmin(np.abs(alphas - result["identity"])))
            x0, y0 = tm[at], wm[at]
            ax.plot([lo, hi], [y0 + slope["value"] * (lo - x0), y0 + slope["value"] * (hi - x0)], color="tab:green",
                    lw=1.5, label=f"fitted slope {slope['value']:.2f} [{slope['low']:.2f}, {slope['high']:.2f}]")
    ax.set_xlabel(f"target {name}", fontsize=8)
    ax.set_ylabel(f"achieved {name}", fontsize=8)
    ax.set_title("achieved vs target (slope fitted per sample over the training range)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")

    if distances:
        low = axes[0, 2]
        low.plot(alphas, [r["wasserstein_walked_to_data"] for r in rows], "o-", ms=3, color="tab:blue",
                 label="walked: Wasserstein to data")
        low.plot(alphas, [r["wasserstein_target_to_data"] for r in rows], "o--", ms=3, color="tab:orange",
                 label="target: Wasserstein to data")
        low.set_ylabel("1-D Wasserstein", fontsize=8)
        lines = low.get_legend_handles_labels()
        if "frechet_walked_to_data" in rows[0]:
            right = low.twinx()
            right.plot(alphas, [r["frechet_walked_to_data"] for r in rows], "s-", ms=3, color="tab:purple",
                       label=f"walked: Fréchet distance to data (n={result['samples']})")
            right.set_ylabel("Fréchet distance", fontsize=8, color="tab:purple")
            more = right.get_legend_handles_labels()
            lines = (lines[0] + more[0], lines[1] + more[1])
        low.legend(*lines, fontsize=7, loc="upper left")
        low.set_xlabel(f"α ({result['edit']})")
        low.set_title("distance of the walked samples to the data", fontsize=9)
        if result["edit"] == "zoom":
            low.set_xscale("log", base=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_probe_figures(result: dict, examples, example_labels, out_dir, row_labels=None, class_names=None) -> list:
    """The DSS-GAN probe's figures: orientation heatmaps (overall and per stage), example
    changes per part of z (rows named by `row_labels`, the samples' classes), routing weights
    per block, class-override movement (`class_names` name the override). Returns paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pathlib import Path

    out_dir, paths = Path(out_dir), []
    orientations = result["perturbation"]["orientations"]

    def heatmap(ax, table: dict, title: str):
        names = list(table)
        values = np.array([table[n] for n in names])
        ax.imshow(values, cmap="viridis", vmin=0, vmax=max(0.5, values.max()))
        ax.set_xticks(range(len(orientations)), orientations, fontsize=8, rotation=30)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.35 else "black")
        ax.set_title(title, fontsize=9)

    stages = result.get("scales", {}).get("mean_shares", {})
    fig, axes = plt.subplots(1, 1 + len(stages), figsize=(3.6 * (1 + len(stages)), 3.2), dpi=100, squeeze=False)
    heatmap(axes[0, 0], result["perturbation"]["mean_shares"], f"energy share of the change, sigma {result['sigma']:g}")
    for ax, (stage, table) in zip(axes[0, 1:], stages.items()):
        heatmap(ax, table, f"fed to the {stage}x{stage} stage only")
    fig.tight_layout()
    paths.append(out_dir / "orientations.png")
    fig.savefig(paths[-1])
    plt.close(fig)

    rows, cols = examples.shape[:2]
    picture = grid(examples.reshape(rows * cols, *examples.shape[2:]), cols, upscale=max(1, 64 // examples.shape[-1]))
    fig, ax = plt.subplots(figsize=(max(4.0, picture.width / 80), picture.height / 80 + 0.6), dpi=100)
    ax.imshow(np.asarray(picture), interpolation="nearest")
    ax.set_xticks([picture.width / cols * (i + 0.5) for i in range(cols)], example_labels, fontsize=8, rotation=30)
    if row_labels:
        ax.set_yticks([picture.height / rows * (i + 0.5) for i in range(rows)], row_labels, fontsize=8)
    else:
        ax.set_yticks([])
    ax.xaxis.tick_top()
    fig.tight_layout()
    paths.append(out_dir / "examples.png")
    fig.savefig(paths[-1])
    plt.close(fig)

    routing = result.get("routing")
    if routing:
        directions = [name for name in result["layout"] if name != "z_base"]
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(routing), 3.2), dpi=100)
        width = 0.8 / len(directions)
        for k, direction in enumerate(directions):
            ax.bar(np.arange(len(routing)) + k * width, [e["mean_weights"][k] for e in routing.values()], width,
                   label=direction)
        ax.axhline(1 / len(directions), color="grey", lw=0.8, ls="--", label="uniform")
        ax.set_xticks(np.arange(len(routing)) + 0.4 - width / 2, list(routing), fontsize=7, rotation=30)
        ax.set_ylabel("mean routing weight")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out_dir / "routing.png")
        fig.savefig(paths[-1])
        plt.close(fig)

    override = {k: v for k, v in result.get("class_override", {}).items() if "pixel_movement" in v}
    if override:
        fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(override), 3.2), dpi=100)
        x = np.arange(len(override))
        ax.bar(x - 0.2, [v["pixel_movement"] for v in override.values()], 0.4, label="pixel movement")
        if all("read_as_new_class" in v for v in override.values()):
            ax.bar(x + 0.2, [v["read_as_new_class"] for v in override.values()], 0.4, label="read as new class")
        ax.set_xticks(x, list(override), fontsize=7, rotation=30)
        names = list(class_names or [])
        example = f" ('{names[0]}' -> '{names[1]}', ..., '{names[-1]}' -> '{names[0]}')" if len(names) > 1 else ""
        ax.set_title(f"these directions' class set to the next class{example}", fontsize=8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out_dir / "class_override.png")
        fig.savefig(paths[-1])
        plt.close(fig)
    return paths
