"""Names -> generators. The registry is a leaf: it lists the families by module name and
imports a family only when it is needed, so no family imports the registry.

A bundled model is a folder models/<name>/ holding config.json (with a "family" key),
weights.safetensors and a README.md model card; a user path may be such a folder, its
weights file, a third-party folder a family reads (BigGAN-deep's pytorch_model.bin +
config.json) or an official checkpoint file (read without running anything in it).

Adding a family: one module that defines FAMILY = base.Family(...), and one line below.
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from ..defaults import DEFAULT_MODEL
from ..errors import SteerError
from .loading import load_strict, read_config  # noqa: F401  (re-exported for older imports)

FAMILY_MODULES = {
    "dcgan": "steer.generators.dcgan",
    "dssgan": "steer.generators.dssgan.family",
    "biggan-deep": "steer.generators.biggan",
    "stylegan_xl": "steer.generators.stylegan_xl.family",
    "stylegan2": "steer.generators.stylegan2.family",
    "stylegan3": "steer.generators.stylegan2.family_stylegan3",
    "rosinality": "steer.generators.stylegan2.family_rosinality",
}
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".pkl")


def family(name: str):
    """The Family a family module declares; one SteerError line for an unknown name."""
    if name not in FAMILY_MODULES:
        raise SteerError(f"unknown generator family {name!r} (known: {', '.join(sorted(FAMILY_MODULES))})")
    return importlib.import_module(FAMILY_MODULES[name]).FAMILY


def families() -> list:
    """Every registered Family, in registry order."""
    return [family(name) for name in FAMILY_MODULES]


def models_dir() -> Path:
    """Where bundled models live: $STEER_MODELS, else models/ beside the package."""
    env = os.environ.get("STEER_MODELS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "models"


def bundled_models(kind: str = "generator") -> list:
    """Names of the bundled models of one kind (generators, or e.g. "classifier")."""
    root = models_dir()
    names = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            cfg = folder / "config.json"
            if cfg.is_file() and json.loads(cfg.read_text()).get("kind", "generator") == kind:
                names.append(folder.name)
    return names


def resolve_model_folder(name_or_path) -> Path:
    """A bundled name or a user path -> the folder holding config.json."""
    text = str(name_or_path)
    bundled = models_dir() / text
    if "/" not in text and (bundled / "config.json").is_file():
        return bundled
    path = Path(text).expanduser()
    if path.is_file() and path.suffix in (".safetensors", ".bin"):
        path = path.parent
    if path.is_dir() and (path / "config.json").is_file():
        return path
    if path.is_dir() and (path / "pytorch_model.bin").is_file():
        raise SteerError(f"{path} has pytorch_model.bin but no config.json: put the config.json "
                         "that came with the weights beside it")
    if path.exists():
        raise SteerError(f"{text} is not a steer model: expected a folder with config.json and "
                         "weights.safetensors (or BigGAN-deep's pytorch_model.bin)")
    known = ", ".join(bundled_models()) or "none"
    raise SteerError(f"unknown model '{text}': give a bundled name ({known}) or a path to a model folder")


def _source(kind: str, name: str, path: Path, hashed: Path, family_name: str):
    from .base import ModelSource, file_sha256
    return ModelSource(kind=kind, name=name, path=str(path.resolve()), sha256=file_sha256(hashed),
                       family=family_name)


def _finish(generator, source, device):
    import torch
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    generator.source = source
    return generator.to(device).eval().requires_grad_(False)


def load_generator(name_or_path=None, device=None):
    """Load a generator by bundled name, folder, weights file or official checkpoint file
    (read without running anything from it), in eval mode, with its `source` recorded."""
    spec = str(name_or_path or DEFAULT_MODEL)
    path = Path(spec).expanduser()
    if path.suffix in CHECKPOINT_SUFFIXES:
        generator = load_checkpoint_file(path)
        return _finish(generator, _source("checkpoint", path.name, path, path, generator.family), device)
    folder = resolve_model_folder(spec)
    bundled = folder.parent.resolve() == models_dir().resolve() and "/" not in spec
    kind, name = ("bundled", folder.name) if bundled else ("folder", folder.name)
    config = read_config(folder)
    if "family" not in config:
        for fam in families():
            generator = fam.read_folder(folder, config) if fam.read_folder else None
            if generator is not None:
                return _finish(generator, _source(kind, name, folder, fam.weights_file(folder), fam.name), device)
    fam = family(config.get("family")) if isinstance(config.get("family"), str) else None
    if fam is None:
        raise SteerError(f"{folder / 'config.json'} names no generator family "
                         f"(known: {', '.join(sorted(FAMILY_MODULES))})")
    weights = folder / "weights.safetensors"
    if not weights.is_file():
        raise SteerError(f"{folder} has no weights.safetensors")
    generator = fam.build(config)
    from safetensors.torch import load_file
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise SteerError(f"cannot read {weights}: {e}") from None
    load_strict(generator, state, f"{weights} does not match its config.json")
    generator.name = folder.name
    if "class_names" in config:
        generator.class_names = list(config["class_names"])
    return _finish(generator, _source(kind, name, folder, weights, fam.name), device)


def load_source(record: dict, device=None, what: str = "the file"):
    """Reload the generator a file recorded as its `source` (ModelSource.to_dict()). A source
    that has moved or whose weights changed is one SteerError line saying to pass --model."""
    from .base import ModelSource, file_sha256
    source = ModelSource.from_dict(record)
    where = Path(source.path)
    weights = where
    if where.is_dir():
        config = read_config(where)
        fam = family(source.family)
        weights = where / "weights.safetensors" if "family" in config else fam.weights_file(where)
    if not weights.is_file():
        raise SteerError(f"{what} was made with {source.path} ({source.kind} model {source.name!r}), which is "
                         "no longer there: pass --model to say which model to use")
    if file_sha256(weights) != source.sha256:
        raise SteerError(f"{what} was made with {source.path}, whose weights have changed since (sha256 differs): "
                         "pass --model to use it anyway, or the model it was made with")
    return load_generator(source.path if source.kind != "bundled" else source.name, device=device)


def save_generator(generator, folder, card: str, extra_config: dict | None = None) -> None:
    """Write a generator (of any family) as a steer model folder: config.json with its
    "family", weights.safetensors and the README.md card."""
    from safetensors.torch import save_file
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(generator.config(), **(extra_config or {}))
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    save_file(state, str(folder / "weights.safetensors"))
    (folder / "README.md").write_text(card)


def load_checkpoint_file(path: Path):
    """An official checkpoint file (e.g. DSS-GAN's G_full_ema_epoch_XXX.pt) -> Generator."""
    from .safe_pickle import safe_load

    if not path.is_file():
        raise SteerError(f"no such checkpoint file: {path}")
    obj = safe_load(path)
    for fam in families():
        generator = fam.read_checkpoint(obj, path.stem) if fam.read_checkpoint else None
        if generator is not None:
            return generator
    raise SteerError(f"{path} is not a generator checkpoint steer knows (official DSS-GAN whole-module .pt "
                     "files and StyleGAN-XL .pkl snapshots are)")
