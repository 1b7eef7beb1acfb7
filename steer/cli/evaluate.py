"""`steer evaluate` and `steer quantify`."""
import json
from pathlib import Path

import click

from ..errors import SteerError
from .common import (
    model_option, device_option, seed_option, walk_file_option, walk_model_option, writable_dir, command_line,
    parse_numbers, open_generator, real_images,
)
from .common import MAX_COUNT, POSITIVE, check_batch_memory, whole


@click.command("evaluate")
@model_option
@click.option("--data", default=None, help="Real images to compare with: 'shapes', 'mnist' (the 1,000 held-out digits) or a "
                                 "folder of images (sub-folders are classes) [the model's own training data].")
@click.option("--samples", default=2000, show_default=True, type=whole(20, MAX_COUNT), help="Generated samples.")
@click.option("--class", "class_", default=None, type=whole(0, MAX_COUNT), help="Evaluate one class only.")
@click.option("--features", default=None,
              type=click.Choice(["shapes", "mnist", "pixels", "fid", "resnet18", "resnet50", "inception"]),
              help="Feature network [shapes: the shapes classifier; mnist: the digit classifier; folders: pixels]; "
                   "fid: standard FID (pytorch-fid's Inception weights in torch's cache).")
@click.option("--bins", default=50, show_default=True, type=whole(2, MAX_COUNT), help="k-means bins for NDB/JSD.")
@seed_option
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="JSON to write [default: runs/evaluate/MODEL.json].")
@device_option
def evaluate_command(model, data, samples, class_, features, bins, seed, out, device):
    """Offline quality and diversity of a generator against real images.

    Frechet distance in a feature network's features, NDB and JSD over k-means bins,
    precision/recall and density/coverage (k = 3), LPIPS diversity between same-class
    samples (pixel distance when LPIPS weights are absent, and it says so), and for shapes
    models how often the classifier recognises the asked class; overall and per class.

    \b
    Example:
      steer evaluate --model dcgan-shapes32 --samples 2000
    """
    import torch
    from tqdm.auto import tqdm

    from ..data import training_data
    from ..metrics import evaluate_generator

    G = open_generator(model, device)
    check_batch_memory("--samples", samples, G.resolution, G.device, images_per_item=2)
    data = data or training_data(G) or "shapes"
    out = Path(out or Path("runs") / "evaluate" / f"{G.name}.json")
    writable_dir(out.parent)
    if class_ is not None and not 0 <= class_ < max(G.num_classes, 1):
        raise SteerError(f"--class {class_} is out of range: {G.name} has {G.num_classes} classes")
    from ..metrics import feature_network
    # a classifier of the model's own data where steer has one: pixels in 3,072 dimensions give a
    # Frechet distance from a rank-deficient covariance, and minutes of sqrtm
    name = features or {"shapes": "shapes", "mnist": "mnist"}.get(data, "pixels")
    features = feature_network(name)  # a missing weights file stops us before any work
    # held-out digits for MNIST: the generator never saw them
    real, real_classes = real_images(G, data, samples, seed + 1, mnist_split="test")
    stages = ["generating", "features", "overall"] + [f"class {c}" for c in range(G.num_classes)
                                                       if class_ is None or c == class_]
    bar = tqdm(total=len(stages), desc="evaluate", dynamic_ncols=True)

    def progress(label):
        bar.set_postfix_str(label)
        bar.update(0 if label == "generating" else 1)

    with torch.no_grad():
        result = evaluate_generator(G, real, real_classes, samples, features=features, only_class=class_,
                                    bins=bins, seed=seed, progress=progress)
    bar.update(bar.total - bar.n)
    bar.close()
    result.update(data=data, features=name, command=command_line())
    out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"{G.name} vs {data}, features: {result['feature_network']}")
    rows = [("overall", result["overall"])] + [(r.get("name", f"class {c}"), r)
                                               for c, r in result.get("per_class", {}).items()]
    width = min(25, max(9, max(len(label) for label, _ in rows) + 1))
    click.echo(f"{'':<{width}}{'FD':>9}{'NDB':>9}{'JSD':>8}{'prec':>7}{'recall':>7}{'dens':>7}{'cover':>7}"
               f"{'div':>8}{'class ok':>9}")
    for label, r in rows:
        recognised = f"{r['class_recognised'] * 100:8.1f}%" if "class_recognised" in r else f"{'':>9}"
        click.echo(f"{label[:24]:<{width}}{r['frechet_distance']:9.2f}{r['ndb']:>5}/{r['bins']:<3}{r['jsd']:8.4f}"
                   f"{r['precision']:7.3f}{r['recall']:7.3f}{r['density']:7.3f}{r['coverage']:7.3f}"
                   f"{r['lpips_diversity']['diversity']:8.4f}{recognised}")
    click.echo(f"diversity: {result['overall']['lpips_diversity']['distance']}; JSON: {out}")


def steerability_lines(result) -> list:
    """The slope, saturation and reach of a sweep, as quantify prints them."""
    def a(v):
        return "-" if v is None else f"{v:.3g}"
    lines = []
    slope = result["slope"]
    if slope is None:
        lines.append("slope: not measurable (too few measured samples inside the training range)")
    else:
        span = f"{a(min(slope['alphas']))}..{a(max(slope['alphas']))}"
        lines.append(f"slope of {slope['of']}, alpha {span}: {slope['value']:.3f} "
                     f"[{slope['low']:.3f}, {slope['high']:.3f}] (1: follows the edit fully; 95 % {slope['interval']})")
    sat = result["saturation"]
    lines.append(f"saturates at alpha: low side {a(sat['low'])}, high side {a(sat['high'])}"
                 + ("  (-: no plateau inside the sweep)" if None in (sat["low"], sat["high"]) else ""))
    r = result["reach"]
    if r["low"] is None:
        lines.append(f"reach: - ({r.get('note', 'not measurable')})")
    else:
        ends = "".join(f" ({side} end of the sweep: may reach further)" for side in ("low", "high")
                       if r[f"{side}_at_grid_end"])
        lines.append(f"reach: {a(r['low'])} .. {a(r['high'])}{ends}  [rule: {r['rule']}; IQR {r['data_spread']:.3g}]")
    return lines


@click.command("quantify")
@walk_file_option
@walk_model_option
@click.option("--estimator", default=None,
              help="area, centre_x, centre_y, colour, colour_r/g/b, luminance, object_colour; for digits ink_area, "
                   "bbox_height, bbox_width, ink_centre_x, ink_centre_y, slant; or detector (detector_area, "
                   "detector_centre_x/y) [default: what the walk's edit moves, measured with the digit estimators "
                   "on MNIST models].")
@click.option("--alphas", default=None,
              help="Comma-separated alphas [default: the edit's test range: zoom 1/16..16, shifts +-S px, colour +-1].")
@click.option("--samples", default=200, show_default=True, type=whole(2, MAX_COUNT), help="Latents walked per alpha.")
@click.option("--data", default=None,
              help="Training data to compare with: 'shapes', 'mnist' (the 4,000 training digits), a folder of "
                   "images, or 'none' [default: the model's own training data when steer knows it, else none].")
@click.option("--data-samples", default=1000, show_default=True, type=whole(2, MAX_COUNT),
              help="Real shapes drawn for the data distribution.")
@click.option("--tolerance", default=0.5, show_default=True, type=POSITIVE,
              help="Reach: how far the walked median may sit from the target's, as a share of the data's "
                   "interquartile range of the attribute.")
@click.option("--features", default=None, type=click.Choice(["shapes", "mnist", "pixels", "none"]),
              help="Feature network for realism (Frechet distance to the data) [shapes data: shapes; else none].")
@click.option("--class", "class_", default=None, type=whole(0, MAX_COUNT), help="Class for every sample (default: cycle).")
@click.option("--coco-category", default=None, help="Detector: the COCO category to find [default: each "
                                                    "sample's ImageNet class through steer's COCO table].")
@click.option("--detector", default="fasterrcnn_mobilenet_v3_large_fpn", show_default=True,
              type=click.Choice(["fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn"]))
@seed_option
@click.option("--batch", default=50, show_default=True, type=whole(1, MAX_COUNT))
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Output folder [default: runs/quantify/MODEL-EDIT].")
@device_option
def quantify_command(walk_path, model, estimator, alphas, samples, data, data_samples, tolerance, features, class_,
                     coco_category, detector, seed, batch, out, device):
    """Measure how far a walk moves an attribute: sweep alpha past the training range.

    For each alpha, the attribute is measured on the walked samples, on the target edits
    of the same samples and on the training data. Writes OUT/quantify.json (per-alpha
    medians and spreads, Wasserstein and Frechet distances to the data, the summaries below
    and every value), OUT/distributions.png (per-alpha violins over the data's spread) and
    OUT/achieved_vs_target.png. It prints the slope of the achieved attribute on the target
    over the training range (log area for zoom; 1: the walk follows the edit fully) with a
    bootstrap interval over latents, the alpha where the walk's effect saturates, and the
    reach: the alpha range where the walked median stays within half the data's
    interquartile range of the target median (--tolerance sets the share). The JSON also keeps
    an older rule (follows_target: the walked median within a fraction of the target median
    on the sweep's own grid).

    \b
    Example:
      steer quantify --walk walks/dcgan-shapes32/zoom/walk.safetensors
      steer quantify --walk shiftx.safetensors --alphas -32,-16,-8,0,8,16,32 --samples 500
    """
    import torch
    from tqdm.auto import tqdm

    from ..attributes import get_estimator
    from ..steerability import sweep
    from ..viz import save_achieved_vs_target, save_attribute_distributions
    from ..data import training_data
    from ..generators.base import pick_classes
    from ..steering import Steering, model_label, source_record

    steering, meta = Steering.load(walk_path, model=model, device=device)
    G, edit, space = steering.generator, steering.edit, steering.space
    check_batch_memory("--batch", batch, G.resolution, G.device)
    check_batch_memory("--samples", samples, G.resolution, G.device, images_per_item=1)
    alpha_list = parse_numbers(alphas, "--alphas") if alphas else edit.test_alphas(G.resolution)
    edit.check_alphas(alpha_list, G.resolution)
    data = data or training_data(G) or "none"
    # digits: ink, not a shape on a background, so the digit estimators follow the edits
    from ..attributes import DIGIT_EDIT_ESTIMATORS
    defaults = DIGIT_EDIT_ESTIMATORS if data == "mnist" else None
    est = get_estimator(estimator, edit.name, category=coco_category, arch=detector, device=G.device) \
        if (estimator or "").startswith("detector") else get_estimator(estimator, edit.name, defaults)
    classes = pick_classes(G, class_, samples)
    if est.name.startswith("detector_") and coco_category is None:
        from ..attributes import coco_to_imagenet
        if G.num_classes != 1000:
            raise SteerError(f"the detector finds ImageNet classes through their COCO category; {G.name} has "
                             f"{G.num_classes} classes: give --coco-category")
        if class_ is None:  # as the paper's code: only classes a COCO detector can find
            covered = torch.tensor(sorted(i for v in coco_to_imagenet().values() for i in v))
            classes = covered[torch.arange(samples) % len(covered)]
    out = writable_dir(out or Path("runs") / "quantify" / f"{G.name}-{edit.name}")
    real = real_classes = None
    if data != "none":
        real, real_classes = real_images(G, data, data_samples, seed + 1, mnist_split="train")
    features = features or {"shapes": "shapes", "mnist": "mnist"}.get(data, "none")
    feature_fn = None
    if features != "none" and real is not None:
        from ..metrics import feature_network
        feature_fn = feature_network(features)
    bar = tqdm(total=1, desc=f"quantify {edit.name}", dynamic_ncols=True)

    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    with torch.no_grad():
        result = sweep(G, steering.walk, edit, est, alphas=alpha_list, samples=samples, seed=seed,
                       space=space, classes=classes, data=real, data_classes=real_classes, features=feature_fn,
                       reach_tolerance=tolerance, batch=batch, progress=progress, truncation=steering.truncation)
    bar.close()
    result = {"model": model_label(G), "source": source_record(G), "walk": str(walk_path),
              "data": result.pop("data", None),
              "data_source": data, **result, "command": command_line()}
    (out / "quantify.json").write_text(json.dumps(result, indent=1) + "\n")
    save_attribute_distributions(result, out / "distributions.png")
    save_achieved_vs_target(result, out / "achieved_vs_target.png")

    def number(v):
        return f"{v:9.4f}" if v is not None else f"{'-':>9}"

    click.echo(f"{G.name} {edit.name} walk, estimator {est.name} ({est.units}), {samples} samples per alpha, "
               f"data: {data}")
    click.echo(f"{'alpha':>8} {'walked':>9} {'[10%':>9} {'90%]':>9} {'target':>9} {'W->data':>9} {'FD->data':>9}")
    for row in result["per_alpha"]:
        click.echo(f"{row['alpha']:8.4g} {number(row['walked']['median'])} {number(row['walked']['q10'])} "
                   f"{number(row['walked']['q90'])} {number(row['target']['median'])} "
                   f"{number(row.get('wasserstein_walked_to_data'))} {number(row.get('frechet_walked_to_data'))}")
    d = result["data"]
    if d and d["median"] is not None:
        click.echo(f"data ({d['samples']} samples): median {d['median']:.4f}, 10-90 % {d['q10']:.4f} .. {d['q90']:.4f}")
    elif d:
        click.echo(f"data ({d['samples']} samples): none measurable")
    missing = sum(row[k]["missing"] for row in result["per_alpha"] for k in ("walked", "target"))
    if missing:
        click.echo(f"{missing} of {2 * samples * len(alpha_list)} walked and target images could not be measured "
                   f"(no object or box found); medians are over the rest (counts in the JSON)")
    for line in steerability_lines(result):
        click.echo(line)
    click.echo(f"JSON: {out / 'quantify.json'}  plots: {out / 'distributions.png'}, {out / 'achieved_vs_target.png'}")
