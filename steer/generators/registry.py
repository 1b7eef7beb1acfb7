"""Names -> generators. A bundled model is a folder models/<name>/ holding config.json
(with a "family" key), weights.safetensors and a README.md model card; a user path may be
such a folder or its weights file. Families register a builder with @register_family."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import SteerError

_FAMILIES: dict = {}
_CHECKPOINT_READERS: list = []
_FOLDER_READERS: list = []
DEFAULT_MODEL = "dssgan-shapes32"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".pkl")


def register_family(name: str):
    """Register builder(config: dict) -> Generator for configs whose "family" is `name`."""
    def wrap(builder):
        _FAMILIES[name] = builder
        return builder
    return wrap


def register_checkpoint_reader(reader):
    """Register reader(obj, name) -> Generator or None for third-party checkpoint files;
    obj is what the restricted unpickler read (inert stubs and tensors)."""
    _CHECKPOINT_READERS.append(reader)
    return reader


def register_folder_reader(reader):
    """Register reader(folder, config) -> Generator or None for third-party model folders
    (e.g. BigGAN-deep's pytorch_model.bin + config.json, whose config has no "family")."""
    _FOLDER_READERS.append(reader)
    return reader


def load_strict(module, state: dict, what: str):
    """module.load_state_dict(state, strict=True); a mismatch becomes one SteerError line,
    "{what}: " and the first specific complaint (a missing, unexpected or misshapen key)."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise SteerError(f"{what}: {lines[1] if len(lines) > 1 else lines[0]}") from None
    return module


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


def read_config(folder: Path) -> dict:
    try:
        return json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SteerError(f"cannot read {folder / 'config.json'}: {e}") from None


def load_generator(name_or_path=None, device=None):
    """Load a generator by bundled name, folder, weights file or official checkpoint file
    (read without running anything from it), in eval mode."""
    _ensure_families()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = Path(str(name_or_path or DEFAULT_MODEL)).expanduser()
    if path.suffix in CHECKPOINT_SUFFIXES:
        generator = load_checkpoint_file(path)
        return generator.to(device).eval().requires_grad_(False)
    folder = resolve_model_folder(name_or_path or DEFAULT_MODEL)
    config = read_config(folder)
    for reader in _FOLDER_READERS:
        generator = reader(folder, config)
        if generator is not None:
            return generator.to(device).eval().requires_grad_(False)
    family = config.get("family")
    if family not in _FAMILIES:
        raise SteerError(f"{folder}: unknown generator family '{family}' "
                         f"(known: {', '.join(sorted(_FAMILIES))})")
    generator = _FAMILIES[family](config)
    weights = folder / "weights.safetensors"
    if not weights.is_file():
        raise SteerError(f"{folder} has no weights.safetensors")
    try:
        state = load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise SteerError(f"cannot read {weights}: {e}") from None
    load_strict(generator, state, f"{weights} does not match its config.json")
    generator.name = folder.name
    if "class_names" in config:
        generator.class_names = list(config["class_names"])
    return generator.to(device).eval().requires_grad_(False)


def save_generator(generator, folder, card: str, extra_config: dict | None = None) -> None:
    """Write generator as a bundled-format model folder."""
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
    for reader in _CHECKPOINT_READERS:
        generator = reader(obj, path.stem)
        if generator is not None:
            return generator
    raise SteerError(f"{path} is not a generator checkpoint steer knows (official DSS-GAN "
                     "whole-module .pt files are)")


def _ensure_families():
    # importing a family module registers it
    from . import biggan, dcgan  # noqa: F401
    from .dssgan import generator, official  # noqa: F401
    from .stylegan_xl import generator as _sgxl_generator, official as _sgxl_official  # noqa: F401
