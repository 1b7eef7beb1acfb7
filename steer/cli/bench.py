"""`steer bench` and its sub-commands (`steer bench walk`)."""
import json
from pathlib import Path

import click

from .common import model_option, device_option, open_generator
from .common import MAX_COUNT, STEPS, check_batch_memory, whole


@click.group("bench")
def bench_group():
    """Benchmarks that print ratios measured side by side in one run."""


@bench_group.command("walk")
@model_option
@click.option("--edit", "edit_name", default="zoom", show_default=True)
@click.option("--batch", default=16, show_default=True, type=whole(1, MAX_COUNT))
@click.option("--steps", default=30, show_default=True, type=STEPS, help="Steps per timing round.")
@click.option("--rounds", default=5, show_default=True, type=whole(1, MAX_COUNT))
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False), help="Also write the figures here.")
@device_option
def bench_walk_command(model, edit_name, batch, steps, rounds, json_out, device):
    """Time a walk step against the work it cannot avoid and against a plain reference loop,
    and measure the peak memory of `steer walk`.

    \b
    Example:
      steer bench walk --batch 16
    """
    from ..bench import bench_walk
    from ..edits import get_edit
    get_edit(edit_name)
    G = open_generator(model, device)
    check_batch_memory("--batch", batch, G.resolution, G.device)
    r = bench_walk(G, edit_name, batch=batch, steps=steps, rounds=rounds, model_name=model)
    click.echo(f"model {r['model']}, edit {r['edit']}, batch {r['batch']}, {r['device']}, {r['threads']} threads")
    click.echo(f"(a) walk step / unavoidable work: {r['step_ms']:.2f} ms / {r['floor_ms']:.2f} ms = "
               f"{r['step_over_floor']:.3f}  (target <= 1.15)")
    click.echo(f"(b) reference loop / our step:    {r['reference_step_ms']:.2f} ms / {r['step_ms']:.2f} ms = "
               f"{r['speedup_over_reference']:.2f}x speed-up")
    click.echo(f"(c) peak memory of steer walk at batch {batch}: {r['peak_rss_gb_steer_walk']:.2f} GB  (target < 1.5 GB)")
    if json_out:
        Path(json_out).write_text(json.dumps(r, indent=2) + "\n")
