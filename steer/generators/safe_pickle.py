"""Read third-party pickles (torch.save files, StyleGAN-XL/dill snapshots) without running them.

A restricted unpickler resolves only an allowlist of plain containers, tensor and storage
rebuilders (reimplemented here, never torch's own unpickling), and numpy's array and scalar
constructors. Every other class becomes an inert `Stub` that records its constructor
arguments and pickled state; nothing named by the file is ever called. StyleGAN-XL's
persistent objects become `PersistentStub`s that keep class_name, state, init args and a hash
of the embedded source, which is never executed. Storages always land on the CPU, whatever
device the file names. Adapters then rebuild their own networks from the recorded tensors.
"""
from __future__ import annotations

import collections
import hashlib
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import SteerError

STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class Stub:
    """Stands in for a class the file names: keeps what the file says, does nothing."""

    _module = ""
    _name = ""

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args, obj.kwargs, obj.state = args, kwargs, None
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    # dict- and list-like classes are filled by SETITEM(S) / APPEND(S): keep what they get
    def __setitem__(self, key, value):
        if not isinstance(getattr(self, "items", None), dict):
            self.items = {}
        self.items[key] = value

    def append(self, value):
        if not isinstance(getattr(self, "elements", None), list):
            self.elements = []
        self.elements.append(value)

    def extend(self, values):
        for value in values:
            self.append(value)

    @property
    def class_name(self) -> str:
        return f"{self._module}.{self._name}"

    def __repr__(self):
        return f"<stub {self.class_name}>"


class PersistentStub(Stub):
    """A StyleGAN-style persistent object: its class name, state and a hash of its source."""

    def __init__(self, meta=None):
        meta = meta or {}
        self.state = meta.get("state")
        self.persistent_class_name = meta.get("class_name", "")
        source = meta.get("module_src") or ""
        self.source_sha256 = hashlib.sha256(source.encode("utf-8", "replace")).hexdigest()
        state = self.state if isinstance(self.state, dict) else {}
        self.init_args = tuple(state.get("_init_args", ()))
        self.init_kwargs = dict(state.get("_init_kwargs", {}))

    @property
    def class_name(self) -> str:
        return self.persistent_class_name


_STUB_CLASSES: dict = {}


def _stub_class(module: str, name: str):
    key = (module, name)
    if key not in _STUB_CLASSES:
        _STUB_CLASSES[key] = type(name, (Stub,), {"_module": module, "_name": name})
    return _STUB_CLASSES[key]


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


class _AllowedModule:
    """What dill's _import_module returns for an allowlisted module: a name, nothing else."""

    def __init__(self, name):
        self.name = name


class LazyStorage:
    """A storage pickled as torch.save bytes (StyleGAN-XL files hold one per tensor), decoded
    only when a tensor that uses it is asked for: a snapshot's discriminator, which we never
    use, is then never materialised."""

    def __init__(self, data):
        self.data = data
        self._storage = None

    def materialize(self):
        if self._storage is None:
            try:
                self._storage = read_legacy_stream(io.BytesIO(bytes(self.data)))
            except HostilePickle as e:
                raise SteerError(f"refusing a tensor in this checkpoint: it asks to run code ({e})") from None
            except (pickle.UnpicklingError, EOFError, ValueError, KeyError, struct.error, TypeError) as e:
                raise SteerError(f"corrupt tensor data in this checkpoint: {type(e).__name__}: {e}") from None
            self.data = None
        return self._storage


class LazyTensor:
    """A tensor view of a LazyStorage: shape known at once, values on materialize()."""

    def __init__(self, storage: LazyStorage, offset, size, stride):
        self.storage, self.offset, self.stride = storage, int(offset), tuple(stride)
        self.shape = torch.Size(size)
        self.is_parameter = False

    @property
    def ndim(self):
        return len(self.shape)

    def materialize(self):
        tensor = _rebuild_tensor(self.storage.materialize(), self.offset, self.shape, self.stride)
        return torch.nn.Parameter(tensor, requires_grad=False) if self.is_parameter else tensor


def materialize(value):
    """A tensor from a LazyTensor (anything else is returned as it is)."""
    return value.materialize() if isinstance(value, LazyTensor) else value


# ---- reimplementations of the rebuild functions a torch pickle names --------------------

def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if isinstance(storage, LazyStorage):
        return LazyTensor(storage, offset, size, stride)
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("tensor without a storage")
    return storage.as_strided(tuple(size), tuple(stride), int(offset)).clone()


def _rebuild_parameter(data, requires_grad, hooks, state=None):
    if isinstance(data, LazyTensor):
        data.is_parameter = True
        return data
    param = torch.nn.Parameter(data, requires_grad=bool(requires_grad))
    if isinstance(state, dict):
        param.python_attributes = dict(state)  # e.g. mamba's _no_weight_decay flags, kept as data
    return param


def _load_from_bytes(data):
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("storage bytes expected")
    return LazyStorage(data)


def _dill_import_module(name, safe=False):
    if name in _NUMPY_MODULES:
        return _AllowedModule(name)
    return _stub_class("dill._dill", f"_import_module({name})")()


def _dill_get_attr(module, name):
    if isinstance(module, _AllowedModule) and (module.name, name) in _ALLOWED:
        return _ALLOWED[(module.name, name)]
    return _stub_class("dill._dill", f"_get_attr({name})")


def _dill_create_array(f, args, state, npdict=None):
    """dill >= 0.3.5 writes numpy arrays as _create_array(_reconstruct, args, state)."""
    if f is not _multiarray._reconstruct:
        raise pickle.UnpicklingError("dill array whose constructor is not numpy's _reconstruct")
    array = f(*args)
    array.__setstate__(state)
    return array


_BUILTIN_TYPES = {"set": set, "frozenset": frozenset, "dict": dict, "list": list, "tuple": tuple,
                  "bytearray": bytearray, "slice": slice, "complex": complex, "range": range}


def _dill_load_type(name):
    if name in _BUILTIN_TYPES:
        return _BUILTIN_TYPES[name]
    return _stub_class("dill._dill", f"_load_type({name})")


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core._multiarray_umath",
                  "numpy._core._multiarray_umath")

_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("dnnlib.util", "EasyDict"): dict,  # a dict with attribute access; plain dict keeps the data
    ("torch", "Size"): torch.Size,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("dill._dill", "_import_module"): _dill_import_module,
    ("dill._dill", "_get_attr"): _dill_get_attr,
    ("dill._dill", "_load_type"): _dill_load_type,
    ("dill._dill", "_create_array"): _dill_create_array,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentStub,
}
for _builtins in ("builtins", "__builtin__"):
    for _name, _type in _BUILTIN_TYPES.items():
        _ALLOWED[(_builtins, _name)] = _type
try:  # numpy 2 moved its internals to numpy._core; files name either
    from numpy._core import multiarray as _multiarray
except ImportError:  # numpy 1
    from numpy.core import multiarray as _multiarray
for _module in _NUMPY_MODULES:
    _ALLOWED[(_module, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(_module, "scalar")] = _multiarray.scalar
for _prefix in ("torch", "torch.cuda"):
    for _name, _dtype in STORAGE_DTYPES.items():
        _ALLOWED[(_prefix, _name)] = _StorageType(_dtype)


# globals whose only use in a pickle is to run something: a file naming one is refused outright
_CODE_RUNNING_MODULES = ("os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib",
                         "runpy", "pty", "ctypes", "code", "codeop", "webbrowser", "pickle", "marshal",
                         "multiprocessing", "signal", "commands", "popen2", "asyncio", "threading")
_CODE_RUNNING_BUILTINS = {"eval", "exec", "execfile", "compile", "open", "__import__", "getattr", "setattr",
                          "delattr", "globals", "locals", "vars", "input", "breakpoint", "apply", "reload",
                          "file", "memoryview", "type", "object", "super", "classmethod", "staticmethod"}


class HostilePickle(pickle.UnpicklingError):
    """The file names a global that runs code (os.system, eval, subprocess...)."""


def _runs_code(module: str, name: str) -> bool:
    if module in ("builtins", "__builtin__"):
        return name in _CODE_RUNNING_BUILTINS
    return module.split(".")[0] in _CODE_RUNNING_MODULES


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals from the allowlist only; storages come from `read_storage`."""

    def __init__(self, file, read_storage=None):
        super().__init__(file, encoding="latin1")
        self.read_storage = read_storage

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        if _runs_code(module, name):
            raise HostilePickle(f"{module}.{name}")
        return _stub_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:5]
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else None
        if dtype is None or self.read_storage is None:
            raise pickle.UnpicklingError(f"unsupported storage {storage_type!r:.80}")
        return self.read_storage(str(key), dtype, int(numel))


def _unpickle(file, read_storage=None):
    return RestrictedUnpickler(file, read_storage).load()


def read_legacy_stream(f):
    """A pre-zip torch.save stream: five pickles, then each storage as int64 count + bytes."""
    if _unpickle(f) != LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a legacy torch.save stream")
    _unpickle(f)  # protocol version
    _unpickle(f)  # sys_info (sizes, endianness)
    wanted = {}

    def record(key, dtype, numel):
        wanted.setdefault(key, (dtype, numel))
        return ("__storage__", key)

    result = _unpickle(f, record)
    keys = _unpickle(f)
    storages = {}
    for key in keys:
        dtype, _ = wanted[str(key)]
        (count,) = struct.unpack("<q", f.read(8))
        itemsize = torch.empty((), dtype=dtype).element_size()
        raw = f.read(count * itemsize)
        if len(raw) != count * itemsize:
            raise pickle.UnpicklingError("truncated storage data")
        storages[str(key)] = torch.frombuffer(bytearray(raw), dtype=dtype) if count else torch.empty(0, dtype=dtype)
    if isinstance(result, tuple) and len(result) == 2 and result[0] == "__storage__":
        return storages[result[1]]
    raise pickle.UnpicklingError("legacy stream holds something other than one storage")


def _load_zip(path: Path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("no data.pkl in the archive")
        root = pickles[0][: -len("data.pkl")]
        cache = {}

        def read_storage(key, dtype, numel):
            if key not in cache:
                raw = archive.read(f"{root}data/{key}")
                cache[key] = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            return cache[key]

        with archive.open(pickles[0]) as f:
            return _unpickle(io.BytesIO(f.read()), read_storage)


def safe_load(path):
    """Load a torch.save file (zip or legacy) or a plain/dill pickle, executing nothing."""
    path = Path(path)
    if not path.is_file():
        raise SteerError(f"checkpoint {path} does not exist")
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        with open(path, "rb") as f:
            head = f.read(32)
            f.seek(0)
            try:
                return read_legacy_stream(f) if b"\x8a\x0a" in head[:4] else _unpickle(f)
            except pickle.UnpicklingError:
                f.seek(0)
                return _unpickle(f)
    except HostilePickle as e:
        raise SteerError(f"refusing {path}: it asks to run code ({e}); steer never executes what a "
                         "checkpoint contains. Get the file from a source you trust") from None
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, struct.error, zipfile.BadZipFile,
            RuntimeError, TypeError, AttributeError, IndexError, OverflowError) as e:
        raise SteerError(f"cannot read {path} as a checkpoint: {type(e).__name__}: {e}") from None
    except MemoryError:  # a corrupt length field asks for more bytes than the machine has
        raise SteerError(f"cannot read {path} as a checkpoint: it declares a record larger than "
                         "memory (a corrupt or truncated file?)") from None


def module_state_dict(stub) -> dict:
    """The state_dict of a pickled nn.Module (as a Stub), from its recorded __dict__:
    parameters and persistent buffers, with dotted names, like Module.state_dict()."""
    out = {}

    def walk(node, prefix):
        state = node.state if isinstance(node, Stub) else None
        if not isinstance(state, dict):
            return
        for name, value in (state.get("_parameters") or {}).items():
            value = materialize(value)
            if value is not None:
                out[prefix + name] = value.detach() if isinstance(value, torch.Tensor) else value
        skip = set(state.get("_non_persistent_buffers_set") or ())
        for name, value in (state.get("_buffers") or {}).items():
            if value is not None and name not in skip:
                out[prefix + name] = materialize(value)
        for name, child in (state.get("_modules") or {}).items():
            walk(child, f"{prefix}{name}.")

    walk(stub, "")
    return out
