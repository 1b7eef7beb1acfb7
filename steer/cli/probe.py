"""`steer probe`."""
import json
from pathlib import Path

import click

from ..errors import SteerError
from .common import device_option, seed_option, writable_dir, command_line, open_generator
from .common import MAX_COUNT, POSITIVE, check_batch_memory, whole


@click.command("probe")
@click.option("--model", default=None, help="A DSS-GAN: bundled name, folder or official checkpoint file.")
@click.option("--samples", default=64, show_default=True, type=whole(4, MAX_COUNT), help="Latents per measurement.")
@click.option("--sigma", default=1.0, show_default=True, type=POSITIVE,
              help="Norm of each perturbation of a chunk of z.")
@seed_option
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Folder [default: runs/probe/MODEL].")
@device_option
def probe_command(model, samples, sigma, seed, out, device):
    """Probe a DSS-GAN's directional latent subvectors.

    Perturbs each scan direction's chunk of z (and, as controls, z_base and a direction
    spread over all chunks), measures how the change's spectral energy splits across
    horizontal, vertical, "/" and "\\" lines, per direction and per Mamba stage, with
    bootstrap intervals and permutation tests; records the routing weights per block and
    class; and overrides the class of each subset of directions. Writes OUT/probe.json and
    OUT/orientations.png, examples.png, routing.png and class_override.png.

    \b
    Example:
      steer probe --model dssgan-shapes32 --samples 64
    """
    from ..data import training_data
    from ..probe import ORIENTATION_INDEX, perturbation_examples, run_probe
    from ..viz import save_probe_figures

    G = open_generator(model, device)
    check_batch_memory("--samples", samples, G.resolution, G.device)
    if G.family != "dssgan":
        raise SteerError(f"{G.name} is not a DSS-GAN: the probe needs per-direction latent chunks")
    classifier = None
    # a classifier of the model's own classes, where steer has one, says whether an override is read as the new class
    classifier_name = {"shapes": "shapes-classifier32", "mnist": "mnist-classifier32"}.get(training_data(G))
    if classifier_name and G.resolution == 32:
        from ..classifier import load_classifier
        classifier = load_classifier(classifier_name, device=G.device).eval()
    out = writable_dir(out or Path("runs") / "probe" / G.name)
    click.echo(f"probing {G.name}: {samples} samples, sigma {sigma:g}")
    result = run_probe(G, samples=samples, sigma=sigma, seed=seed, classifier=classifier)
    result["command"] = command_line()
    (out / "probe.json").write_text(json.dumps(result, indent=1) + "\n")
    z, classes = G.sample(4, seed=seed + 7)
    examples, labels = perturbation_examples(G, z, classes, sigma, seed)
    from ..viz import class_labels
    paths = save_probe_figures(result, examples, labels, out, row_labels=class_labels(G, classes),
                               class_names=G.class_names)

    click.echo(f"{'direction':>12} {'lines':>10} {'share':>6}   vs z_base: score [95% CI] p"
               f"   vs all directions: score [95% CI] p")
    for name, s in result["perturbation"]["scores"].items():
        share = result["perturbation"]["mean_shares"][name][ORIENTATION_INDEX[s["orientation"]]]
        cells = [f"{c['score']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] {c['p_permutation']:.3g}"
                 for c in (s["vs_z_base"], s["vs_all_directions"])]
        click.echo(f"{name:>12} {s['orientation']:>10} {share:6.3f}   {cells[0]}   {cells[1]}")
    for block, r in result.get("routing", {}).items():
        weights = ", ".join(f"{w:.3f}" for w in r["mean_weights"])
        entropy = f"{r['entropy']:.3f}" if r["entropy"] is not None else "- (one direction)"
        click.echo(f"routing {block}: [{weights}]  entropy {entropy}  "
                   f"max deviation from uniform {r['max_deviation_from_uniform']:.3f}")
    for subset, r in result.get("class_override", {}).items():
        if "pixel_movement" in r:
            extra = f"  read as new class {r['read_as_new_class']:.2f}" if "read_as_new_class" in r else ""
            click.echo(f"override {subset}: pixel movement {r['pixel_movement']:.3f}{extra}")
    click.echo(f"JSON: {out / 'probe.json'}  figures: {', '.join(str(p) for p in paths)}")
