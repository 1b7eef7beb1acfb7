"""`steer fetch`."""
import click

from ..fetch import TORCH_FILES, is_hf


@click.command("fetch")
@click.argument("names", nargs=-1)
def fetch_command(names):
    """Download released weights on request: the torch files steer's measurements use, into
    torch hub's cache (<TORCH_HOME>/hub/checkpoints), or a Hugging Face Hub file, into its
    cache, so that `--model hf:...` then works without a network.

    \b
    NAME is one of:
      lpips-alexnet   alexnet-owt-7be5be79.pth (LPIPS: --loss lpips, invert)
      fid-inception   pt_inception-2015-12-05-6726825d.pth (evaluate --features fid)
      coco-detector   fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth (quantify --estimator detector)
      hf:ORG/REPO/FILE[@REVISION]   a checkpoint on the Hugging Face Hub
    Without NAME, lists the torch files and whether they are there.

    Torch files must hash to the sha256 prefix in their names (torch hub's pin); hub files to
    the hub's own sha256. Nothing downloads with HF_HUB_OFFLINE set.

    \b
    Examples:
      steer fetch lpips-alexnet fid-inception
      steer fetch hf:dssgan/DSS_GAN/G_full_ema.pt@main
    """
    from ..fetch import fetch_torch_file, hub_download, parse_hf, torch_checkpoints_dir
    if not names:
        folder = torch_checkpoints_dir()
        for name, entry in TORCH_FILES.items():
            there = "present" if (folder / entry.file).is_file() else "missing"
            click.echo(f"{name:<15}{there:<9}{folder / entry.file}")
        return
    for name in names:
        if is_hf(name):
            hub = parse_hf(name)
            path, commit, digest = hub_download(hub)
            click.echo(f"{hub.spec}: {path} (commit {commit}, sha256 {digest})")
        else:
            path, digest, downloaded = fetch_torch_file(name)
            click.echo(f"{name}: {path} ({'downloaded' if downloaded else 'already there'}, sha256 {digest})")
