"""`steer models` and `steer sample`."""
from pathlib import Path

import click

from ..defaults import DEFAULT_MODEL
from ..errors import SteerError
from .common import (
    model_option, device_option, seed_option, writable_dir, open_generator,
)
from .common import POSITIVE, whole


TRUNCATION_MEANING = {"z": "a truncated normal z (entries beyond +-t redrawn)",
                      "psi": "psi in W, toward the (class) mean w",
                      "biggan": "z truncated to +-2t and the batch-norm statistics stored for t, t in (0, 1]"}


@click.command("models")
@click.option("--model", default=None,
              help="Describe this model (bundled name, folder or official checkpoint file) instead.")
def models_command(model):
    """List the bundled generators: resolution, classes and latent spaces.

    With --model, describe one model, including its latent layout where it has one
    (DSS-GAN: the z_base slice and one slice per scan direction).

    \b
    Examples:
      steer models
      steer models --model path/to/G_full_ema_epoch_100.pt
    """
    from ..generators import bundled_models, load_generator
    from ..generators.registry import models_dir
    names = [model] if model else bundled_models()
    if not names:
        click.echo(f"no bundled models in {models_dir()}")
        return
    generators = [(name, load_generator(name, device="cpu")) for name in names]
    click.echo(f"{'name':<22}{'family':<12}{'resolution':>10}{'classes':>9}  spaces")
    for name, g in generators:
        family = getattr(g, "family", "?")
        click.echo(f"{g.name:<22}{family:<12}{g.resolution:>10}{g.num_classes:>9}  {', '.join(g.spaces)}"
                   + ("  (default)" if name == DEFAULT_MODEL else ""))
    if model:
        n_params = sum(p.numel() for p in g.parameters())
        click.echo(f"parameters: {n_params:,}; truncation: {TRUNCATION_MEANING[g.truncation_kind]}")
        for space in g.spaces:
            shape = g.latent_shape(space)
            click.echo(f"latent {space}: " + (f"{shape[0]} dims" if len(shape) == 1 else
                                              f"{shape[0]} layers x {' x '.join(map(str, shape[1:]))}"))
        layout = getattr(g, "latent_layout", None)  # an optional hook (DSS-GAN's per-direction chunks)
        if layout is not None:
            for part, span in layout().items():
                click.echo(f"  {part:<12} z[{span.start}:{span.stop}]")
        if g.source is not None:
            # a hub file is named by its spec pinned to the commit; the cache path follows
            where = f"{g.source.name} in {g.source.path}" if g.source.kind == "hf" else g.source.path
            click.echo(f"source: {g.source.kind} {where} (sha256 {g.source.sha256[:16]}...)")


@click.command("sample")
@model_option
@click.option("-n", "--num", default=16, show_default=True, type=whole(1, 1024), help="How many images.")
@seed_option
@click.option("--class", "class_", default=None,
              help="Class for every image, by index or name (e.g. 207 or 'golden retriever') [default: cycle].")
@click.option("--classes", "classes_", default=None,
              help="Comma-separated classes (indices or names), cycled over the images.")
@click.option("--truncation", default=None, type=POSITIVE,
              help="StyleGAN: psi toward the (class) mean w, e.g. 0.7; BigGAN: z from a normal truncated to "
                   "+-2 times it and the matching batch-norm statistics, in (0, 1]; others: bound of a "
                   "truncated normal z.")
@click.option("--centroids", default=None, type=click.Path(dir_okay=False),
              help="StyleGAN-XL: .npy of w centroids (imagenet_centroids.npy) for multimodal truncation.")
@click.option("--out", default="samples.png", show_default=True, type=click.Path(dir_okay=False), help="PNG grid to write.")
@device_option
def sample_command(model, num, seed, class_, classes_, truncation, centroids, out, device):
    """Draw samples from a generator and write them as a grid PNG.

    \b
    Examples:
      steer sample -n 32 --seed 1 --out samples.png
      steer sample --model imagenet128.pkl --class 207 --truncation 0.7
      steer sample --model path/to/biggan-deep-256/ --classes 'golden retriever,tabby' --truncation 0.4
    """
    import torch

    from ..generators.base import pick_classes
    from ..viz import class_labels, save_labelled_grid
    G = open_generator(model, device)
    writable_dir(Path(out).parent)
    classes = pick_classes(G, class_, num, classes_)
    truncation = G.check_truncation(truncation)
    if centroids:
        if G.truncation_kind != "psi":
            raise SteerError(f"--centroids is for StyleGAN-XL models; {G.name} has no W space")
        G.set_centroids(centroids)
    z, c = G.sample(num, seed=seed, truncation=truncation, classes=classes)
    with torch.no_grad():
        images = G(z, c, truncation=truncation)
    columns = min(num, 8)
    save_labelled_grid(images, out, columns=columns, labels=class_labels(G, c))
    click.echo(f"wrote {out}")
