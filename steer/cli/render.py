"""`steer render` and `steer explore`."""
import json
import sys
from pathlib import Path

import click

from ..defaults import DEFAULT_MODEL
from ..errors import SteerError
from .common import device_option, walk_model_option, writable_dir, parse_numbers, open_generator
from .common import MAX_SEED, POSITIVE, whole


@click.command("render")
@click.option("--walk", "walk_path", default=None, type=click.Path(dir_okay=False),
              help="A walk.safetensors file (required unless --settings names one).")
@walk_model_option
@click.option("--alphas", default=None, help="Comma-separated alphas (default: the edit's test range).")
@click.option("--seeds", default="0,1,2,3", show_default=True, help="Comma-separated seeds, one row each.")
@click.option("--class", "class_", default=None, help="Class for every row, index or name (default: cycle).")
@click.option("--classes", "classes_", default=None, help="Comma-separated classes (indices or names), one per row, cycled.")
@click.option("--truncation", default=None, type=POSITIVE,
              help="Override the truncation the walk was learned under (StyleGAN psi, BigGAN truncation).")
@click.option("--channel", default="all", show_default=True, type=click.Choice(["r", "g", "b", "all"]),
              help="For colour walks: which channel alpha moves.")
@click.option("--targets", is_flag=True, help="Add the target edit under each row (undefined pixels grey).")
@click.option("--settings", "settings_path", default=None, type=click.Path(dir_okay=False),
              help="Read walk, model, seeds, class(es), alphas, truncation and channel from a JSON: a "
                   "render.json or what steer explore's Save writes. Options given here override it.")
@click.option("--frames", is_flag=True,
              help="Also write each walked image alone at the model's resolution: OUT/frames/rowR_alphaI.png.")
@click.option("--out", default="render", show_default=True, type=click.Path(file_okay=False))
@device_option
def render_command(walk_path, model, alphas, seeds, class_, classes_, truncation, channel, targets, settings_path,
                   frames, out, device):
    """Apply a saved walk over a range of alphas: OUT/strip.png, OUT/strip.gif and OUT/render.json
    (the settings, which --settings reads back).

    \b
    Examples:
      steer render --walk walks/dcgan-shapes32/zoom/walk.safetensors --alphas 0.25,0.5,1,2,4
      steer render --settings runs/explore/explore-0001.json --frames
    """
    from ..generators.base import pick_classes
    from ..render import read_render_settings, settings_alphas
    from ..steering import Steering, model_for, source_record
    from ..viz import png_bytes, save_gif, save_strip_grid
    from ..walks import read_meta

    settings = read_render_settings(settings_path) if settings_path else {}
    ctx = click.get_current_context()

    def given(name):  # on the command line, which wins over the settings file
        return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE

    walk_path = walk_path or settings.get("walk")
    if not walk_path:
        raise SteerError("give --walk FILE (or --settings FILE.json naming one)")
    out = writable_dir(out)
    # the model: --model, else the one the settings file names, else the walk's own
    record = settings if (settings.get("source") or settings.get("model")) and model is None else read_meta(walk_path)
    G = model_for(record, model, device, what=str(settings_path if record is settings else walk_path))
    if truncation is None and not given("truncation") and settings.get("truncation") is not None:
        truncation = settings["truncation"]
        if (not isinstance(truncation, (int, float)) or isinstance(truncation, bool)
                or not 0 < truncation <= 1e6):  # also refuses NaN and inf, which JSON readers take
            raise SteerError(f"--settings: \"truncation\" must be a positive number or null, got {truncation!r}")
    if not given("channel") and "channel" in settings:
        channel = settings["channel"]
        if channel not in ("r", "g", "b", "all"):
            raise SteerError(f"--settings: \"channel\" must be r, g, b or all, got {channel!r}")
    steering, meta = Steering.load(walk_path, model=G, truncation=truncation)  # else the walk's truncation
    edit, space = steering.edit, steering.space
    if alphas:
        alpha_list = parse_numbers(alphas, "--alphas")
    elif settings.get("alphas") is not None:
        alpha_list = settings_alphas(settings["alphas"], edit.sliders)
    else:
        alpha_list = edit.test_alphas(G.resolution)
    edit.check_alphas(alpha_list, G.resolution)
    if not given("seeds") and "seeds" in settings:
        seed_list = settings["seeds"]
        if not (isinstance(seed_list, list) and seed_list
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEED for v in seed_list)):
            raise SteerError(f"--settings: \"seeds\" must be a list of whole numbers in 0..{MAX_SEED}, "
                             f"got {json.dumps(seed_list)[:80]}")
    else:
        seed_list = parse_numbers(seeds, "--seeds", int, 0, MAX_SEED)
    if class_ is None and not classes_:
        class_, classes_ = settings.get("class"), settings.get("classes")
        if isinstance(classes_, list):
            classes_ = ",".join(str(v) for v in classes_)
    row_classes = None if class_ is None and not classes_ else pick_classes(G, class_, len(seed_list), classes_)
    latent, c = steering.rows(seed_list, row_classes)
    strips = steering.strips(latent, c, alpha_list, channel=channel, targets=targets)
    upscale = max(1, 64 // G.resolution)
    row_labels = None
    if targets:
        row_labels = [label for s in seed_list for label in (f"seed {s}: walk", "target edit")]
    direction = meta.get("direction") if isinstance(meta.get("direction"), dict) else None
    if direction is not None:  # a found direction knows no edit: its edit only names the alpha convention
        title = f"{meta.get('method', 'found')} direction {direction.get('component', '')} on {G.name}: columns are alpha"
    else:
        title = f"{edit.name} walk ({meta['walk']}) on {G.name}"
    save_strip_grid(strips, alpha_list, out / "strip.png", upscale=upscale, title=title, row_labels=row_labels)
    save_gif(strips.transpose(0, 1), out / "strip.gif", upscale=upscale)
    record = {"walk": str(walk_path), "model": meta["model"] if model is None else model,
              "source": source_record(G), "space": space, "seeds": seed_list, "class": class_,
              "classes": classes_, "channel": channel, "alphas": alpha_list, "truncation": truncation}
    if frames:
        (out / "frames").mkdir(exist_ok=True)
        names = []
        for r in range(len(seed_list)):
            row = strips[2 * r] if targets else strips[r]  # with --targets every other row is a target
            for i, image in enumerate(row):
                name = f"frames/row{r}_alpha{i}.png"
                (out / name).write_bytes(png_bytes(image))
                names.append(name)
        record["frames"] = names
    (out / "render.json").write_text(json.dumps(record, indent=2) + "\n")
    click.echo(f"wrote {out / 'strip.png'} and {out / 'strip.gif'}" + (f" and {out / 'frames'}/" if frames else ""))


@click.command("explore")
@click.option("--model", default=None,
              help="Bundled model name, model folder or official checkpoint file [the model the walks under "
                   "--walks were learned on; without --walks, the default model].")
@click.option("--walks", "walks_dir", default=None, type=click.Path(file_okay=False),
              help="Folder searched (recursively) for walk files [walks/<model>/].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the default serves this machine only).")
@click.option("--port", default=8765, show_default=True, type=whole(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--save-dir", default="runs/explore", show_default=True, type=click.Path(file_okay=False),
              help="Where the page's Save writes its PNG and settings JSON.")
@click.option("--token", default=None,
              help="A secret every request must carry (the printed URL has it); required with a --host other "
                   "than loopback, since any machine on the network could otherwise drive the server.")
@device_option
def explore_command(model, walks_dir, host, port, save_dir, token, device):
    """Serve a local page for driving walks by hand: sliders, seed, class, and a Save that
    `steer render --settings` reproduces. Works offline; Ctrl-C stops it.

    \b
    Examples:
      steer explore --model dssgan-shapes32
      steer explore --host 0.0.0.0 --token "$(python -c 'import secrets; print(secrets.token_urlsafe())')"
    """
    from ..explore import Explorer, check_token, default_walks_dir, find_walks, make_server, walks_model
    from ..steering import model_label

    check_token(host, token)  # before the model loads: a missing token is one line at once

    G = walks_model(walks_dir, device) if model is None and walks_dir is not None else None
    if G is None:  # the model the walks under --walks were learned on, else --model or the default
        G = open_generator(model or DEFAULT_MODEL, device)
    model = model_label(G)
    folder = Path(walks_dir) if walks_dir else default_walks_dir(G.name)
    if not folder.is_dir():
        raise SteerError(f"no walks folder {folder}: learn one with 'steer walk --model {model}' "
                         "or point --walks at a folder of walk files")
    walks = find_walks(G, folder)
    if not walks:
        raise SteerError(f"no walks for {G.name} under {folder}: learn one with 'steer walk --model {model}' "
                         "or point --walks at a folder holding walk.safetensors files learned on it")
    server = make_server(Explorer(G, walks, model, save_dir), host, port, token=token)
    click.echo(f"steer explore: {G.name} with {len(walks)} walk(s) ({', '.join(w.id for w in walks)}) "
               f"at {server.page_url}  (Ctrl-C stops)")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.server_close()
