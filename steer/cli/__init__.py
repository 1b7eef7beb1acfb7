"""The `steer` command. Thin: parse options, call the library, print where results went.

Mistakes a user can fix raise SteerError (or click's usage errors): one line on stderr,
exit status 2, no traceback. Each command lives in a module of this package; importing it
imports neither torch nor kornia (the commands import the library when they run).
"""
import sys

import click

from ..errors import SteerError
from .bench import bench_group
from .directions import directions_group
from .evaluate import evaluate_command, quantify_command
from .fetch import fetch_command
from .invert import edit_command, invert_command
from .models import models_command, sample_command
from .probe import probe_command
from .render import explore_command, render_command
from .train import finetune_command, train_command
from .walk import walk_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="steer")
@click.option("--threads", default=None, type=click.IntRange(1, 1024),
              help="CPU threads for torch [auto: the cores no other process is using, looked at again between "
                   "training steps; STEER_THREADS or OMP_NUM_THREADS fix it too].")
def cli(threads):
    """Steer and edit the latent spaces of pretrained GANs.

    \b
    Example:
      steer walk --edit zoom          # learn a zoom walk on the bundled model
      steer --threads 1 walk --edit zoom
    """
    from ..threads import configure
    configure(threads)


for command in (train_command, models_command, sample_command, evaluate_command, walk_command, finetune_command,
                render_command, explore_command, invert_command, edit_command, quantify_command, probe_command,
                bench_group, fetch_command, directions_group):
    cli.add_command(command)
del command


def main():
    try:
        cli.main(standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        # torch-free: the checkpoint module is only imported if a job already imported it
        checkpoint = sys.modules.get("steer.checkpoint")
        click.echo(checkpoint.interrupt_message() if checkpoint else "interrupted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx else str(e))
        sys.exit(0)
    except click.exceptions.UsageError as e:
        where = e.ctx.command_path if e.ctx else "steer"
        click.echo(f"error: {e.format_message()} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.exceptions.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(2)
    except SteerError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
