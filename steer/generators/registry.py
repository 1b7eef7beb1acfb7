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
import math
import os
from contextlib import contextmanager
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
            if not (folder / "config.json").is_file():
                continue
            try:
                config = read_config(folder)
            except SteerError:
                continue  # a broken folder is not listed; loading it by name says what is wrong
            if config.get("kind", "generator") == kind:
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


# errors a reader raises when a file's contents are not what they should be: inside the
# guarded path they are the file's fault and become one line, not a traceback
_MALFORMED = (LookupError, TypeError, ValueError, AttributeError, RuntimeError, ArithmeticError,
              MemoryError, RecursionError)


@contextmanager
def guarded(where: str):
    """Run a reader on untrusted contents: a SteerError passes through, a malformed entry the
    reader tripped on becomes one SteerError line starting with `where`."""
    try:
        yield
    except SteerError:
        raise
    except KeyError as e:
        raise SteerError(f"{where}: a required entry {e.args[0]!r:.60} is missing") from None
    except _MALFORMED as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise SteerError(f"{where}: malformed contents ({type(e).__name__}: {first})") from None


def _compare_shapes(expected: dict, declared: dict, what: str):
    """Names and shapes of the tensors a config needs vs those a file holds, before loading."""
    def some(keys):
        keys = sorted(keys)
        return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")

    problems = []
    if set(expected) - set(declared):
        problems.append(f"missing {some(set(expected) - set(declared))}")
    if set(declared) - set(expected):
        problems.append(f"unexpected {some(set(declared) - set(expected))}")
    if problems:
        raise SteerError(f"{what}: {'; '.join(problems)}")
    for key, shape in expected.items():
        if tuple(declared[key]) != tuple(shape):
            raise SteerError(f"{what}: tensor '{key}' has shape {list(declared[key])} in the file, "
                             f"the config needs {list(shape)}")


def assemble(fam, config: dict, where: str, load_state, what: str, shapes=None):
    """The one guarded path from a recorded config and a file's tensors to a generator:

    1. the config is checked against the family's schema (fam.check_config);
    2. the generator is built on the meta device (no memory) and its size checked against
       the ceiling MAX_PARAMETERS, class names against its classes;
    3. the file's tensors (names and shapes: `shapes()` when it can say them before loading,
       else from `load_state()`) are compared with the skeleton's;
    4. the tensors are loaded, checked for NaN and inf, and only then is the real generator
       built and filled (strict)."""
    import torch

    from .loading import check_finite
    from .schema import MAX_CLASSES, MAX_PARAMETERS, Items, Text, check
    with guarded(where):
        if fam.check_config is not None:
            config = fam.check_config(config, where)
        with torch.device("meta"):
            skeleton = fam.build(config)
        expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
        total = sum(math.prod(shape) for shape in expected.values())
        if total > MAX_PARAMETERS:
            raise SteerError(f"{where}: the config asks for {total:,} weights, more than steer's limit of "
                             f"{MAX_PARAMETERS:,}")
        if "class_names" in config:
            names = check(Items(Text(max_len=1000), max_len=MAX_CLASSES), config["class_names"],
                          f"{where}: class_names")
            if len(names) != skeleton.num_classes:
                raise SteerError(f"{where}: class_names lists {len(names)} names for "
                                 f"{skeleton.num_classes} classes")
        del skeleton
        if shapes is not None:
            _compare_shapes(expected, shapes(), what)
        state = load_state()
        if not isinstance(state, dict):
            raise SteerError(f"{what}: the weights are not a dict of tensors")
        if shapes is None:
            bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
            if bad:
                raise SteerError(f"{what}: entry '{bad[0]}' is not a tensor")
            _compare_shapes(expected, {k: tuple(v.shape) for k, v in state.items()}, what)
        check_finite(state, what)
        generator = fam.build(config)
        load_strict(generator, state, what)
    return generator


def _safetensors_shapes(weights: Path):
    """name -> shape from a safetensors header, read without loading any tensor."""
    from safetensors import safe_open

    def shapes():
        try:
            with safe_open(str(weights), framework="pt") as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise SteerError(f"cannot read {weights}: {e}") from None
    return shapes


def _safetensors_state(weights: Path):
    from safetensors.torch import load_file

    def load():
        try:
            return load_file(str(weights))
        except Exception as e:
            raise SteerError(f"cannot read {weights}: {e}") from None
    return load


def load_generator(name_or_path=None, device=None):
    """Load a generator by bundled name, folder, weights file or official checkpoint file
    (read without running anything from it), in eval mode, with its `source` recorded."""
    spec = str(name_or_path or DEFAULT_MODEL)
    if spec.startswith("hf:"):  # a Hugging Face Hub file, downloaded because the user named it
        from ..fetch import load_hub_generator
        return load_hub_generator(spec, device=device)
    path = Path(spec).expanduser()
    if path.suffix in CHECKPOINT_SUFFIXES:
        generator = load_checkpoint_file(path)
        return _finish(generator, _source("checkpoint", path.name, path, path, generator.family), device)
    folder = resolve_model_folder(spec)
    bundled = folder.parent.resolve() == models_dir().resolve() and "/" not in spec
    kind, name = ("bundled", folder.name) if bundled else ("folder", folder.name)
    config = read_config(folder)
    where = str(folder / "config.json")
    if "family" not in config:
        for fam in families():
            generator = _read_folder(fam, folder, config, where)
            if generator is not None:
                return _finish(generator, _source(kind, name, folder, fam.weights_file(folder), fam.name), device)
    fam = family(config.get("family")) if isinstance(config.get("family"), str) else None
    if fam is None:
        raise SteerError(f"{folder / 'config.json'} names no generator family "
                         f"(known: {', '.join(sorted(FAMILY_MODULES))})")
    weights = folder / "weights.safetensors"
    if not weights.is_file():
        raise SteerError(f"{folder} has no weights.safetensors")
    generator = assemble(fam, config, where, _safetensors_state(weights), f"{weights} does not match its config.json",
                         shapes=_safetensors_shapes(weights))
    generator.name = folder.name
    if "class_names" in config:
        generator.class_names = list(config["class_names"])
    return _finish(generator, _source(kind, name, folder, weights, fam.name), device)


def _read_folder(fam, folder: Path, config: dict, where: str):
    """A third-party folder through the family's hook, inside the guarded path."""
    if fam.folder_parts is not None:
        with guarded(where):
            parts = fam.folder_parts(folder, config)
        if parts is None:
            return None
        config, load_state, what = parts
        generator = assemble(fam, config, where, load_state, what)
        generator.name = folder.name
        return generator
    if fam.read_folder is None:
        return None
    with guarded(where):
        generator = fam.read_folder(folder, config)
        if generator is not None:
            from .loading import check_finite
            check_finite(generator.state_dict(), f"{folder}")
    return generator


def load_source(record: dict, device=None, what: str = "the file"):
    """Reload the generator a file recorded as its `source` (ModelSource.to_dict()). A source
    that has moved or whose weights changed is one SteerError line saying to pass --model."""
    from .base import ModelSource, file_sha256
    source = ModelSource.from_dict(record)
    if source.kind == "hf":  # the cache only, at the recorded commit: reloading never downloads
        from ..fetch import load_hub_generator
        return load_hub_generator(source.name, device=device, download=False, expect_sha256=source.sha256,
                                  what=what)
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


def _load_weights_only(path: Path):
    """A torch.save zip file that holds only tensors and plain containers (rosinality's
    convert_weight.py files), read by torch.load(weights_only=True); None when the file holds
    anything else (then the restricted unpickler reads it)."""
    import zipfile
    if not zipfile.is_zipfile(path):
        return None
    import torch
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # any global outside torch's weights-only allowlist: not this reader's file
        return None


def load_checkpoint_file(path: Path):
    """An official checkpoint file (e.g. DSS-GAN's G_full_ema_epoch_XXX.pt) -> Generator,
    through the same guarded path as steer's own folders: the file is read by the restricted
    unpickler under its size budget, the config it records checked against the family's
    schema, and any lazy tensor materialised inside the guard."""
    from .loading import check_finite
    from .safe_pickle import safe_load

    if not path.is_file():
        raise SteerError(f"no such checkpoint file: {path}")
    obj = safe_load(path)
    # a zip the restricted read accepted (within its budget) and that holds only tensors and
    # plain containers is then taken from torch's own weights-only loader (rosinality files)
    plain = _load_weights_only(path)
    if plain is not None:
        obj = plain
    for fam in families():
        where = f"{path} ({fam.name} checkpoint)"
        if fam.checkpoint_parts is not None:
            with guarded(where):
                parts = fam.checkpoint_parts(obj)
            if parts is not None:
                config, load_state, what = parts
                generator = assemble(fam, config, where, load_state, f"{path}: {what}")
                generator.name = path.stem
                return generator
        elif fam.read_checkpoint is not None:
            with guarded(where):
                generator = fam.read_checkpoint(obj, path.stem)
                if generator is not None:
                    check_finite(generator.state_dict(), str(path))
                    return generator
    raise SteerError(f"{path} is not a generator checkpoint steer knows (official DSS-GAN whole-module .pt "
                     "files, StyleGAN-XL, StyleGAN2-ADA and StyleGAN3 .pkl snapshots and rosinality "
                     "StyleGAN2 .pt files are)")
