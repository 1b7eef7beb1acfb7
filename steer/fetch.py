"""Released weights, fetched only when a user asks: `steer fetch NAME` or `--model hf:...`.

Two kinds of file:

- Hugging Face Hub files, named `hf:ORG/REPO/FILE[@REVISION]` (FILE may hold slashes), read
  through huggingface_hub into its own cache (HF_HUB_CACHE). The revision the hub resolved
  (a commit) and the file's sha256 are recorded in the generator's source, so every output
  names exactly what made it; reloading an output's model reads the cache only, at that
  commit, and refuses a file whose sha256 has changed.
- The torch weights steer's measurements use (LPIPS's AlexNet, pytorch-fid's Inception, the
  COCO detector), put where torch's own loaders look: <torch hub dir>/checkpoints/, under
  torch's file names, whose hash part is the start of the file's sha256 (torch hub's pin).

Nothing here downloads unless called by `steer fetch` or an explicit hf: model; with
HF_HUB_OFFLINE set nothing downloads at all. STEER_TORCH_WEIGHTS_URL replaces the torch
files' download location (a base URL the file name is appended to), e.g. for a mirror.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import SteerError

HF_PREFIX = "hf:"
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class TorchFile:
    file: str  # torch's cache name; its last '-' part is the sha256 prefix torch hub checks
    url: str
    what: str

    @property
    def sha256_prefix(self) -> str:
        return Path(self.file).stem.rsplit("-", 1)[1]


TORCH_FILES = {
    "lpips-alexnet": TorchFile("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                               "torchvision's ImageNet AlexNet, the backbone of LPIPS (--loss lpips, invert)"),
    "fid-inception": TorchFile("pt_inception-2015-12-05-6726825d.pth",
                               "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                               "pt_inception-2015-12-05-6726825d.pth",
                               "pytorch-fid's Inception with the TF weights behind standard FID (--features fid)"),
    "coco-detector": TorchFile("fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
                               "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
                               "torchvision's COCO Faster R-CNN MobileNet-v3 (quantify --estimator detector)"),
}


def fetch_hint(file_name: str) -> str:
    """'or run steer fetch NAME' for a torch file steer can fetch (else ''), for the messages
    that name a missing file."""
    for name, entry in TORCH_FILES.items():
        if entry.file == file_name:
            return f"or run steer fetch {name}"
    return ""


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it: any of 1, ON, YES, TRUE."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress() -> bool:
    # progress bars only for a person watching: in logs and pipes they are noise
    return sys.stderr.isatty()


# ---- torch hub files --------------------------------------------------------------------

def torch_checkpoints_dir() -> Path:
    """<torch hub dir>/checkpoints, as torch computes it ($TORCH_HOME/hub, else the cache)."""
    import torch
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_torch_file(name: str) -> tuple[Path, str, bool]:
    """Download one of TORCH_FILES into torch's cache unless it is there: (path, sha256,
    downloaded). The file must hash to the prefix in its name, as torch hub checks."""
    if name not in TORCH_FILES:
        raise SteerError(f"unknown file to fetch {name!r}: choose one of {', '.join(TORCH_FILES)} "
                         "or give hf:ORG/REPO/FILE[@REVISION]")
    entry = TORCH_FILES[name]
    path = torch_checkpoints_dir() / entry.file
    if path.is_file():
        digest = sha256_of(path)
        if not digest.startswith(entry.sha256_prefix):
            raise SteerError(f"{path} is there but its sha256 {digest[:16]}... does not start with "
                             f"{entry.sha256_prefix}: it is not the released file; delete it and rerun steer fetch {name}")
        return path, digest, False
    if offline():
        raise SteerError(f"{entry.file} is not in {path.parent}/ and HF_HUB_OFFLINE is set: unset it to run "
                         f"steer fetch {name}, or copy the file there")
    base = os.environ.get("STEER_TORCH_WEIGHTS_URL")
    url = f"{base.rstrip('/')}/{entry.file}" if base else entry.url
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        digest = _download(url, path)
    except _Short as e:
        raise SteerError(f"could not download {url}: the connection ended after {e} ({entry.file} is "
                         f"incomplete); nothing was saved; rerun steer fetch {name}") from None
    except Exception as e:  # urllib and http.client raise several types for network failures
        raise SteerError(f"could not download {url} ({type(e).__name__}: {_first_line(e)}): nothing was saved; "
                         f"rerun steer fetch {name}") from None
    if not digest.startswith(entry.sha256_prefix):
        path.with_name(path.name + ".partial").unlink(missing_ok=True)
        raise SteerError(f"{url} sent a file whose sha256 {digest[:16]}... does not start with {entry.sha256_prefix} "
                         f"(hash mismatch): nothing was saved; check the source and rerun steer fetch {name}")
    # only a complete file with the right hash gets the name torch's loaders look for
    os.replace(path.with_name(path.name + ".partial"), path)
    return path, digest, True


class _Short(Exception):
    """The body ended before the Content-Length it announced."""


def _download(url: str, path: Path) -> str:
    """GET url into PATH.partial (fsynced), the byte count checked against Content-Length:
    http.client returns a body cut short by a closed connection without an error. Returns
    the sha256; the caller renames the file once it has checked it."""
    from urllib.request import Request, urlopen
    partial = path.with_name(path.name + ".partial")
    digest, size = hashlib.sha256(), 0
    bar = None
    try:
        with urlopen(Request(url, headers={"User-Agent": "steer"}), timeout=60) as response, \
                open(partial, "wb") as f:
            expected = response.headers.get("Content-Length")
            expected = int(expected) if expected and expected.isdigit() else None
            if _progress():
                from tqdm import tqdm
                bar = tqdm(total=expected, unit="B", unit_scale=True, desc=path.name)
            for block in iter(lambda: response.read(1 << 20), b""):
                f.write(block)
                digest.update(block)
                size += len(block)
                if bar is not None:
                    bar.update(len(block))
            f.flush()
            os.fsync(f.fileno())
        if expected is not None and size != expected:
            raise _Short(f"{size:,} of {expected:,} bytes")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return digest.hexdigest()


def _first_line(e) -> str:
    return (str(e).strip().splitlines() or [""])[0][:200]


# ---- Hugging Face Hub files -------------------------------------------------------------

@dataclass(frozen=True)
class HubFile:
    repo: str
    file: str
    revision: str | None  # None: the default branch

    @property
    def spec(self) -> str:
        return f"{HF_PREFIX}{self.repo}/{self.file}" + (f"@{self.revision}" if self.revision else "")


def is_hf(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(HF_PREFIX)


def parse_hf(spec: str) -> HubFile:
    """'hf:ORG/REPO/FILE[@REVISION]' -> HubFile; one SteerError line for anything else."""
    body = spec[len(HF_PREFIX):]
    body, _, revision = body.partition("@")
    parts = body.split("/")
    if len(parts) < 3 or any(not p or p in (".", "..") for p in parts) or (_ and not revision):
        raise SteerError(f"'{spec}' is not a hub file: write hf:ORG/REPO/FILE or hf:ORG/REPO/FILE@REVISION "
                         "(e.g. hf:dssgan/DSS_GAN/G_full_ema.pt@main)")
    return HubFile(repo="/".join(parts[:2]), file="/".join(parts[2:]), revision=revision or None)


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise SteerError("hf: models need the huggingface_hub package: pip install -e \".[hub]\"") from None
    from huggingface_hub.utils import logging
    # its retry warnings would break the one-line error rule; failures are reported below
    logging.set_verbosity_error()
    if not _progress():
        huggingface_hub.utils.disable_progress_bars()
    return huggingface_hub


def _check_blob(local: str, hub: HubFile) -> str:
    """The file's sha256, checked against the hub's own hash of it: the cache names a blob by
    its LFS sha256 (or by its git blob sha1, for small files kept in git). A mismatch removes
    the blob and its snapshot link, so a retry downloads it again."""
    blob = Path(os.path.realpath(local))
    digest = sha256_of(blob)
    expected = blob.name
    if len(expected) == 64 and _HEX.fullmatch(expected):
        ok = digest == expected
    elif len(expected) == 40 and _HEX.fullmatch(expected):
        data = blob.read_bytes()
        ok = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == expected
    else:
        ok = True  # a cache layout without content names: nothing to compare with here
    if not ok:
        for p in (Path(local), blob):
            try:
                p.unlink()
            except OSError:
                pass
        raise SteerError(f"{hub.spec}: the downloaded {hub.file} has sha256 {digest[:16]}..., not the hub's "
                         f"{expected[:16]}... (hash mismatch): it was removed from the cache; rerun to download it again")
    return digest


def hub_download(hub: HubFile, download: bool = True) -> tuple[Path, str, str]:
    """A hub file in huggingface_hub's cache -> (local path, commit, sha256). download=False
    (or HF_HUB_OFFLINE) reads the cache only."""
    hf = _hub()
    from huggingface_hub import errors
    local_only = not download or offline()
    try:
        local = hf.hf_hub_download(hub.repo, hub.file, revision=hub.revision, local_files_only=local_only)
    except errors.LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if offline() else "steer reads only the cache here"
        raise SteerError(f"{hub.file} from {hub.repo}" + (f" at {hub.revision}" if hub.revision else "") +
                         f" is not in the Hugging Face cache and {why}: run steer fetch {hub.spec} "
                         "with a network") from None
    except errors.RevisionNotFoundError:
        raise SteerError(f"{hub.repo} has no revision {hub.revision!r}: give a branch, tag or commit") from None
    except errors.EntryNotFoundError:  # the remote kind (a local miss is caught above)
        raise SteerError(f"{hub.repo} has no file {hub.file!r}" +
                         (f" at {hub.revision}" if hub.revision else "")) from None
    except errors.RepositoryNotFoundError:
        raise SteerError(f"no Hugging Face repository {hub.repo!r} (or it is private: log in with hf auth login)") from None
    except Exception as e:  # network failures (httpx, OSError for a short body) and HTTP errors
        raise SteerError(f"could not download {hub.spec} ({type(e).__name__}: {_first_line(e)}): rerun to resume "
                         "it") from None
    # .../snapshots/<commit>/<file>: the commit the revision resolved to, whatever it named
    commit = Path(local).parents[len(Path(hub.file).parts) - 1].name
    return Path(local), commit, _check_blob(local, hub)


def hub_source(hub: HubFile, commit: str, sha256: str) -> dict:
    """What a generator's source records about a hub file."""
    return {"repo": hub.repo, "file": hub.file, "revision": hub.revision or "main", "commit": commit,
            "sha256": sha256}


def load_hub_generator(spec: str, device=None, download: bool = True, expect_sha256: str | None = None,
                       what: str = "the file"):
    """A generator from a hub checkpoint file; its source names the repo, file, commit and
    sha256 (and, as its name, the spec pinned to that commit)."""
    from .generators.base import ModelSource
    from .generators.registry import CHECKPOINT_SUFFIXES, _finish, load_checkpoint_file
    hub = parse_hf(spec)
    if Path(hub.file).suffix not in CHECKPOINT_SUFFIXES:
        raise SteerError(f"{spec}: steer reads checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)}) from the hub")
    path, commit, digest = hub_download(hub, download=download)
    if expect_sha256 is not None and digest != expect_sha256:
        raise SteerError(f"{what} was made with {spec}, whose file in the cache has another sha256: "
                         "pass --model to use it anyway")
    generator = load_checkpoint_file(path)
    pinned = HubFile(hub.repo, hub.file, commit)
    source = ModelSource(kind="hf", name=pinned.spec, path=str(path), sha256=digest, family=generator.family,
                         hub=hub_source(hub, commit, digest))
    return _finish(generator, source, device)
