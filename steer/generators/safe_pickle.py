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
import functools
import hashlib
import io
import math
import pickle
import struct
import types
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


# ---- the budget: how much one file may make steer allocate -------------------------------
#
# A pickle is a program for a tiny machine; a few bytes of it can ask for gigabytes (a huge
# memo index, a stride-0 view that is cloned, a zip member that inflates a thousandfold).
# Every allocation the unpickler makes on a file's behalf is charged to a Budget that scales
# with the file's size on disk, and is refused once it would exceed it.

MAX_PICKLE_BYTES = 1 << 30        # no pickle stream (a zip's data.pkl included) beyond 1 GiB
PICKLE_SLACK = 1 << 20            # a zip member may inflate to 2 x the file + 1 MiB
ITEMS_BASE = 100_000              # memo entries + container items: 100,000 + file bytes / 4
TENSOR_SLACK = 64 << 20           # rebuilt tensors and arrays: 2 x the file + 64 MiB in all
MAX_TENSOR_DIMS = 32


class BudgetExceeded(pickle.UnpicklingError):
    """The file asks for more than its size allows (a corrupt or hostile file)."""


class Budget:
    """Limits for one file of `file_bytes` bytes, and what has been used of them."""

    def __init__(self, file_bytes: int):
        self.file_bytes = max(0, int(file_bytes))
        self.pickle_bytes = min(MAX_PICKLE_BYTES, 2 * self.file_bytes + PICKLE_SLACK)
        self.items = ITEMS_BASE + self.file_bytes // 4
        self.storage_bytes = 2 * self.file_bytes + PICKLE_SLACK
        self.tensor_bytes = 2 * self.file_bytes + TENSOR_SLACK
        self.used = {"items": 0, "storage_bytes": 0, "tensor_bytes": 0}

    @classmethod
    def for_stream(cls, f):
        """A budget for a seekable stream, from its length."""
        try:
            here = f.tell()
            size = f.seek(0, io.SEEK_END)
            f.seek(here)
        except (AttributeError, OSError, ValueError):
            size = 0
        return cls(size)

    def take(self, kind: str, amount: int, what: str = ""):
        amount = int(amount)
        limit = getattr(self, kind)
        if amount < 0 or self.used[kind] + amount > limit:
            raise BudgetExceeded(f"{what or kind} asks for {amount:,} more {kind.replace('_', ' ')} than a "
                                 f"{self.file_bytes:,}-byte file may use (limit {limit:,})")
        self.used[kind] += amount


class _Bounded:
    """A file view that never reads past `size` bytes: a length field declaring 2**62 bytes
    then reads what is there instead of asking the allocator for it."""

    def __init__(self, f, size: int):
        self.f, self.left = f, int(size)

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(int(n), self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data

    def readline(self, limit=-1):
        limit = self.left if limit is None or limit < 0 else min(limit, self.left)
        data = self.f.readline(limit)
        self.left -= len(data)
        return data

    def readinto(self, buffer):
        view = memoryview(buffer)[: self.left]
        n = self.f.readinto(view)
        self.left -= n
        return n


def _element_size(dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _check_view(storage_numel: int, offset, size, stride):
    """(offset, shape, stride) of a tensor view, refused unless it lies inside its storage."""
    try:
        shape, stride, offset = tuple(int(v) for v in size), tuple(int(v) for v in stride), int(offset)
    except (TypeError, ValueError):
        raise pickle.UnpicklingError("a tensor's size, stride and offset must be integers") from None
    if len(shape) != len(stride) or len(shape) > MAX_TENSOR_DIMS:
        raise pickle.UnpicklingError(f"a tensor view with {len(shape)} sizes and {len(stride)} strides")
    if offset < 0 or min(shape + stride, default=0) < 0:
        raise pickle.UnpicklingError("a tensor view with a negative size, stride or offset")
    numel = math.prod(shape)
    if numel and storage_numel is not None:
        last = offset + sum((n - 1) * s for n, s in zip(shape, stride))
        if last >= storage_numel:
            raise pickle.UnpicklingError(f"a tensor view reaches element {last:,} of a storage of "
                                         f"{storage_numel:,}")
    return offset, shape, stride, numel


class LazyStorage:
    """A storage pickled as torch.save bytes (StyleGAN-XL files hold one per tensor), decoded
    only when a tensor that uses it is asked for: a snapshot's discriminator, which we never
    use, is then never materialised. Decoding is charged to the budget of the file it came from."""

    def __init__(self, data, budget: Budget | None = None):
        self.data = data
        self.budget = budget if budget is not None else Budget(len(data))
        self._storage = None

    def materialize(self):
        if self._storage is None:
            try:
                self._storage = read_legacy_stream(io.BytesIO(bytes(self.data)), budget=self.budget)
            except HostilePickle as e:
                raise SteerError(f"refusing a tensor in this checkpoint: it asks to run code ({e})") from None
            except (BudgetExceeded, TamperingPickle) as e:
                raise SteerError(f"refusing a tensor in this checkpoint: {e}") from None
            except Exception as e:  # only allowlisted code ran on the file's bytes: the file is corrupt
                raise SteerError(f"corrupt tensor data in this checkpoint: {type(e).__name__}: "
                                 f"{(str(e).splitlines() or [''])[0][:200]}") from None
            self.data = None
        return self._storage


class LazyTensor:
    """A tensor view of a LazyStorage: shape known at once, values on materialize()."""

    def __init__(self, storage: LazyStorage, offset, size, stride):
        self.offset, self.shape, self.stride, _ = _check_view(None, offset, size, stride)
        self.storage = storage
        self.shape = torch.Size(self.shape)
        self.is_parameter = False

    @property
    def ndim(self):
        return len(self.shape)

    def materialize(self):
        storage = self.storage.materialize()
        try:
            tensor = _rebuild_tensor(storage, self.offset, self.shape, self.stride, budget=self.storage.budget)
        except pickle.UnpicklingError as e:  # a corrupt offset or size in the file
            raise SteerError(f"corrupt tensor in this checkpoint: {e}") from None
        return torch.nn.Parameter(tensor, requires_grad=False) if self.is_parameter else tensor


def materialize(value):
    """A tensor from a LazyTensor (anything else is returned as it is)."""
    return value.materialize() if isinstance(value, LazyTensor) else value


# ---- reimplementations of the rebuild functions a torch pickle names --------------------
# The allowlist maps names to these; the unpickler hands each call its file's budget.

def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None, *,
                    budget: Budget | None = None):
    if isinstance(storage, LazyStorage):
        return LazyTensor(storage, offset, size, stride)
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("tensor without a storage")
    offset, shape, stride, numel = _check_view(storage.numel(), offset, size, stride)
    if budget is not None:  # the clone below allocates the view's elements, however few the storage holds
        budget.take("tensor_bytes", numel * storage.element_size(), f"a tensor of shape {list(shape)}")
    return storage.as_strided(shape, stride, offset).clone()


def _rebuild_parameter(data, requires_grad, hooks, state=None):
    if isinstance(data, LazyTensor):
        data.is_parameter = True
        return data
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("a parameter without a tensor")
    param = torch.nn.Parameter(data, requires_grad=bool(requires_grad))
    if isinstance(state, dict):
        param.python_attributes = dict(state)  # e.g. mamba's _no_weight_decay flags, kept as data
    return param


def _load_from_bytes(data, *, budget: Budget | None = None):
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("storage bytes expected")
    return LazyStorage(data, budget)


def _dill_import_module(name, safe=False):
    if name in _NUMPY_MODULES:
        return _AllowedModule(name)
    return _stub_class("dill._dill", f"_import_module({name})")()


def _dill_get_attr(module, name, *, resolve=None):
    if isinstance(module, _AllowedModule) and (module.name, name) in _ALLOWED:
        return resolve(module.name, name) if resolve else _ALLOWED[(module.name, name)]
    return _stub_class("dill._dill", f"_get_attr({name})")


def _dill_create_array(f, args, state, npdict=None, *, budget: Budget | None = None):
    """dill >= 0.3.5 writes numpy arrays as _create_array(_reconstruct, args, state)."""
    if getattr(f, "__wrapped__", f) is not _multiarray._reconstruct:
        raise pickle.UnpicklingError("dill array whose constructor is not numpy's _reconstruct")
    array = f(*args)
    _set_array_state(array, state, budget)
    return array


def _array_bytes(shape, dtype) -> int:
    try:
        shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(v) for v in shape)
        itemsize = np.dtype(dtype).itemsize
    except (TypeError, ValueError):
        raise pickle.UnpicklingError("an array with a malformed shape or dtype") from None
    if any(v < 0 for v in shape) or len(shape) > MAX_TENSOR_DIMS:
        raise pickle.UnpicklingError(f"an array of shape {shape!r:.80}")
    # object arrays hold a pointer per element, and a pointer is 8 bytes
    return math.prod(shape) * max(itemsize, 8)


def _set_array_state(array, state, budget):
    """ndarray.__setstate__ after charging the shape it declares (its data must then match)."""
    if not (isinstance(state, tuple) and len(state) in (4, 5)):
        raise pickle.UnpicklingError("an array state that is not numpy's ([version,] shape, dtype, order, data)")
    shape, dtype = state[-4], state[-3]
    if budget is not None:
        budget.take("tensor_bytes", _array_bytes(shape, dtype), "an array")
    array.__setstate__(state)


def _reconstruct(subtype, shape, dtype, *, budget: Budget | None = None):
    """numpy's _reconstruct(ndarray, shape, dtype), after charging the array it allocates."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("numpy _reconstruct of something other than ndarray")
    if budget is not None:
        budget.take("tensor_bytes", _array_bytes(shape, np.uint8), "an array")
    return _multiarray._reconstruct(subtype, shape, dtype)



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
_reconstruct.__wrapped__ = _multiarray._reconstruct
for _module in _NUMPY_MODULES:
    _ALLOWED[(_module, "_reconstruct")] = _reconstruct
    _ALLOWED[(_module, "scalar")] = _multiarray.scalar
for _prefix in ("torch", "torch.cuda"):
    for _name, _dtype in STORAGE_DTYPES.items():
        _ALLOWED[(_prefix, _name)] = _StorageType(_dtype)

# the allowlisted functions that allocate on the file's behalf take its budget as a keyword
_BUDGETED = {_rebuild_tensor, _load_from_bytes, _dill_create_array, _reconstruct}
# constructors whose one argument they copy element by element: its length is charged
_COPYING = (list, tuple, set, frozenset, torch.Size, dict, collections.OrderedDict)


# globals whose only use in a pickle is to run something: a file naming one is refused outright
_CODE_RUNNING_MODULES = ("os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib",
                         "runpy", "pty", "ctypes", "code", "codeop", "webbrowser", "pickle", "marshal",
                         "multiprocessing", "signal", "commands", "popen2", "asyncio", "threading")
_CODE_RUNNING_BUILTINS = {"eval", "exec", "execfile", "compile", "open", "__import__", "getattr", "setattr",
                          "delattr", "globals", "locals", "vars", "input", "breakpoint", "apply", "reload",
                          "file", "memoryview", "type", "object", "super", "classmethod", "staticmethod"}


class HostilePickle(pickle.UnpicklingError):
    """The file names a global that runs code (os.system, eval, subprocess...)."""


class TamperingPickle(pickle.UnpicklingError):
    """The file tries to change (BUILD, setattr, item-set) an object the allowlist hands out."""


def _describe(obj) -> str:
    inner = getattr(obj, "func", obj)  # a budget-bound partial names its function
    name = getattr(inner, "__qualname__", None) or type(inner).__name__
    return f"{getattr(inner, '__module__', None) or 'steer'}.{name}"


def _runs_code(module: str, name: str) -> bool:
    if module in ("builtins", "__builtin__"):
        return name in _CODE_RUNNING_BUILTINS
    return module.split(".")[0] in _CODE_RUNNING_MODULES


def _is_shared(obj) -> bool:
    """Objects the allowlist hands out (classes, functions, storage types...): they live on
    after this file is read, so no opcode may change their state."""
    return isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                            functools.partial, types.ModuleType, _StorageType, _AllowedModule))


_D = pickle._Unpickler.dispatch


class RestrictedUnpickler(pickle._Unpickler):
    """Resolves globals from the allowlist only; storages come from `read_storage`.

    The pure-Python unpickler, so that every opcode that stores, builds or calls goes through
    steer's checks: memo entries and container items are charged to the file's budget, every
    call is one of the allowlisted callables with its allocation charged, and BUILD (state
    setting) reaches only objects this file made, as data, never an allowlisted global."""

    dispatch = dict(_D)

    def __init__(self, file, read_storage=None, budget: Budget | None = None):
        self.budget = budget if budget is not None else Budget.for_stream(file)
        super().__init__(_Bounded(file, self.budget.pickle_bytes + 1), encoding="latin1")
        self.read_storage = read_storage

    # -- names --------------------------------------------------------------------------
    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is not None:
            return self._bind(module, name)
        if _runs_code(module, name):
            raise HostilePickle(f"{module}.{name}")
        return _stub_class(module, name)

    def _bind(self, module, name):
        """An allowlisted object; the allocating functions get this file's budget."""
        found = _ALLOWED[(module, name)]
        if found is _dill_get_attr:
            return functools.partial(_dill_get_attr, resolve=self._bind)
        if found in _BUDGETED:
            bound = functools.partial(found, budget=self.budget)
            bound.__wrapped__ = getattr(found, "__wrapped__", found)
            return bound
        return found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:5]
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else None
        if dtype is None or self.read_storage is None:
            raise pickle.UnpicklingError(f"unsupported storage {storage_type!r:.80}")
        if not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"a storage of {numel!r:.40} elements")
        return self.read_storage(str(key), dtype, numel)

    # -- the memo and containers: charged per entry -------------------------------------
    def _memo_put(self, index):
        if index < 0 or index >= self.budget.items:
            raise BudgetExceeded(f"memo index {index:,} is beyond what a {self.budget.file_bytes:,}-byte "
                                 f"file can hold (limit {self.budget.items:,})")
        if not self.stack:
            raise pickle.UnpicklingError("memo store with an empty stack")
        if index not in self.memo:
            self.budget.take("items", 1, "the memo")
        self.memo[index] = self.stack[-1]

    def load_put(self):
        self._memo_put(int(self.readline()[:-1]))

    def load_binput(self):
        self._memo_put(self.read(1)[0])

    def load_long_binput(self):
        self._memo_put(struct.unpack("<I", self.read(4))[0])

    def load_memoize(self):
        self._memo_put(len(self.memo))

    def pop_mark(self):
        items = super().pop_mark()
        self.budget.take("items", len(items), "a container")
        return items

    def _target(self, obj):
        if _is_shared(obj):
            raise TamperingPickle(_describe(obj))
        return obj

    def load_append(self):
        value = self.stack.pop()
        self.budget.take("items", 1, "a list")
        self._target(self.stack[-1]).append(value)

    def load_appends(self):
        items = self.pop_mark()
        target = self._target(self.stack[-1])
        if isinstance(target, list):
            target.extend(items)
        else:
            for item in items:
                target.append(item)

    def load_setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        self.budget.take("items", 1, "a dict")
        self._target(self.stack[-1])[key] = value

    def load_setitems(self):
        items = self.pop_mark()
        target = self._target(self.stack[-1])
        for i in range(0, len(items) - 1, 2):
            target[items[i]] = items[i + 1]

    def load_additems(self):
        items = self.pop_mark()
        target = self._target(self.stack[-1])
        if isinstance(target, set):
            target.update(items)
        else:
            for item in items:
                target.add(item)

    # -- state: only onto objects of this file, as data ---------------------------------
    def load_build(self):
        state = self.stack.pop()
        inst = self._target(self.stack[-1])
        if isinstance(inst, Stub):
            Stub.__setstate__(inst, state)  # recorded, never applied through setattr
        elif isinstance(inst, np.ndarray):
            _set_array_state(inst, state, self.budget)
        elif isinstance(inst, np.dtype):
            inst.__setstate__(state)
        elif isinstance(inst, collections.OrderedDict) and isinstance(state, dict):
            # a state_dict's _metadata: kept as a plain attribute of this file's own dict
            inst.__dict__.update({k: v for k, v in state.items() if isinstance(k, str)})
        elif state:
            raise pickle.UnpicklingError(f"the file sets the state of a {type(inst).__name__}, which steer "
                                         "does not allow")

    # -- calls: allowlisted callables only, their allocations charged ------------------
    def _call(self, func, args, kwargs=None):
        if not isinstance(args, tuple) or not isinstance(kwargs or {}, dict):
            raise pickle.UnpicklingError("call arguments are not a tuple")
        if func is np.ndarray or func is np.ndarray.__new__:
            raise pickle.UnpicklingError("numpy arrays are only rebuilt through numpy's _reconstruct")
        for arg in args:
            if isinstance(arg, range):  # a range expands to its length wherever it is copied
                try:
                    self.budget.take("items", len(arg), "a range")
                except OverflowError:
                    raise BudgetExceeded("a range longer than any file may ask for") from None
        if func is bytearray and args and isinstance(args[0], int):
            self.budget.take("tensor_bytes", args[0], "a bytearray")
        if func in _COPYING and args and hasattr(args[0], "__len__") and not isinstance(args[0], range):
            self.budget.take("items", len(args[0]), f"a {func.__name__}")
        return func(*args, **(kwargs or {}))

    def load_reduce(self):
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def _new(self, cls, args, kwargs=None):
        if not isinstance(cls, type):
            raise pickle.UnpicklingError(f"NEWOBJ of {cls!r:.60}, which is not a class")
        if not (issubclass(cls, Stub) or cls in _BUILTIN_TYPES.values() or cls in _COPYING):
            raise pickle.UnpicklingError(f"the file asks to create a {cls.__name__} directly")
        return self._call(cls.__new__, (cls, *args), kwargs)

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args))

    def load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._new(cls, args, kwargs))

    def _instantiate(self, klass, args):
        self.append(self._call(klass, tuple(args)))

    def load(self):
        """pickle._Unpickler.load with every opcode charged: each one makes at most one
        object, so the count bounds what a stream of tiny no-op records can pile up."""
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)
        self.read, self.readinto, self.readline = (self._unframer.read, self._unframer.readinto,
                                                   self._unframer.readline)
        self.metastack, self.stack = [], []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch, limit, count = self.read, self.dispatch, self.budget.items, 0
        try:
            while True:
                key = read(1)
                if not key:
                    raise EOFError("the pickle ends before its STOP opcode")
                count += 1
                if count > limit:
                    raise BudgetExceeded(f"the pickle runs more than {limit:,} opcodes, more than a "
                                         f"{self.budget.file_bytes:,}-byte file may")
                dispatch[key[0]](self)
        except pickle._Stop as stop:
            return stop.value

for _op, _method in ((pickle.PUT, "load_put"), (pickle.BINPUT, "load_binput"),
                     (pickle.LONG_BINPUT, "load_long_binput"), (pickle.MEMOIZE, "load_memoize"),
                     (pickle.APPEND, "load_append"), (pickle.APPENDS, "load_appends"),
                     (pickle.SETITEM, "load_setitem"), (pickle.SETITEMS, "load_setitems"),
                     (pickle.ADDITEMS, "load_additems"), (pickle.BUILD, "load_build"),
                     (pickle.REDUCE, "load_reduce"), (pickle.NEWOBJ, "load_newobj"),
                     (pickle.NEWOBJ_EX, "load_newobj_ex")):
    RestrictedUnpickler.dispatch[_op[0]] = getattr(RestrictedUnpickler, _method)


def _unpickle(file, read_storage=None, budget: Budget | None = None):
    return RestrictedUnpickler(file, read_storage, budget).load()


def read_legacy_stream(f, budget: Budget | None = None):
    """A pre-zip torch.save stream: five pickles, then each storage as int64 count + bytes."""
    budget = budget if budget is not None else Budget.for_stream(f)
    if _unpickle(f, budget=budget) != LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a legacy torch.save stream")
    _unpickle(f, budget=budget)  # protocol version
    _unpickle(f, budget=budget)  # sys_info (sizes, endianness)
    wanted = {}

    def record(key, dtype, numel):
        wanted.setdefault(key, (dtype, numel))
        return ("__storage__", key)

    result = _unpickle(f, record, budget)
    keys = _unpickle(f, budget=budget)
    if not isinstance(keys, (list, tuple)):
        raise pickle.UnpicklingError("legacy stream without a list of storage keys")
    storages = {}
    for key in keys:
        dtype, _ = wanted[str(key)]
        (count,) = struct.unpack("<q", f.read(8))
        nbytes = count * _element_size(dtype)
        # charged before reading: a corrupt count cannot make the read allocate
        budget.take("storage_bytes", nbytes, "a storage")
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise pickle.UnpicklingError("truncated storage data")
        storages[str(key)] = torch.frombuffer(bytearray(raw), dtype=dtype) if count else torch.empty(0, dtype=dtype)
    if isinstance(result, tuple) and len(result) == 2 and result[0] == "__storage__":
        return storages[result[1]]
    raise pickle.UnpicklingError("legacy stream holds something other than one storage")


def _load_zip(path: Path, budget: Budget):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("no data.pkl in the archive")
        root = pickles[0][: -len("data.pkl")]
        cache = {}

        def read_storage(key, dtype, numel):
            if key not in cache:
                info = archive.getinfo(f"{root}data/{key}")
                nbytes = numel * _element_size(dtype)
                if info.file_size != nbytes:
                    raise pickle.UnpicklingError(f"storage {key} declares {numel:,} elements but its record "
                                                 f"holds {info.file_size:,} bytes")
                budget.take("storage_bytes", nbytes, f"storage {key}")
                with archive.open(info) as member:
                    raw = member.read(nbytes + 1)
                if len(raw) != nbytes:
                    raise pickle.UnpicklingError(f"storage {key} is truncated")
                cache[key] = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            return cache[key]

        info = archive.getinfo(pickles[0])
        # the declared size is checked before inflating anything; the read is bounded too
        if info.file_size > budget.pickle_bytes:
            raise BudgetExceeded(f"its data.pkl declares {info.file_size:,} bytes, more than a "
                                 f"{budget.file_bytes:,}-byte file may hold (limit {budget.pickle_bytes:,})")
        with archive.open(info) as f:
            data = f.read(budget.pickle_bytes + 1)
        if len(data) > budget.pickle_bytes:
            raise BudgetExceeded(f"its data.pkl inflates beyond {budget.pickle_bytes:,} bytes")
        return _unpickle(io.BytesIO(data), read_storage, budget)


def safe_load(path):
    """Load a torch.save file (zip or legacy) or a plain/dill pickle, executing nothing; every
    allocation is charged to a budget that scales with the file's size (see Budget)."""
    path = Path(path)
    if not path.is_file():
        raise SteerError(f"checkpoint {path} does not exist")
    budget = Budget(path.stat().st_size)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path, budget)
        with open(path, "rb") as f:
            head = f.read(32)
            f.seek(0)
            try:
                return read_legacy_stream(f, budget) if b"\x8a\x0a" in head[:4] else _unpickle(f, budget=budget)
            except (BudgetExceeded, TamperingPickle, HostilePickle):
                raise
            except pickle.UnpicklingError:
                f.seek(0)
                return _unpickle(f, budget=Budget(budget.file_bytes))
    except HostilePickle as e:
        raise SteerError(f"refusing {path}: it asks to run code ({e}); steer never executes what a "
                         "checkpoint contains. Get the file from a source you trust") from None
    except BudgetExceeded as e:
        raise SteerError(f"refusing {path}: {e} (a corrupt or hostile file?)") from None
    except TamperingPickle as e:
        raise SteerError(f"refusing {path}: it tries to change the state of {e}, which the loader hands "
                         "out; steer never lets a checkpoint change the loader. Get the file from a source "
                         "you trust") from None
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, struct.error, zipfile.BadZipFile,
            RuntimeError, TypeError, AttributeError, IndexError, OverflowError, UnicodeDecodeError) as e:
        raise SteerError(f"cannot read {path} as a checkpoint: {type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0][:200]}") from None
    except MemoryError:  # a corrupt length field asks for more bytes than the machine has
        raise SteerError(f"cannot read {path} as a checkpoint: it declares a record larger than "
                         "memory (a corrupt or truncated file?)") from None
    except RecursionError:
        raise SteerError(f"cannot read {path} as a checkpoint: it nests deeper than steer follows") from None
    except Exception as e:  # only allowlisted code ran, on the file's data: any failure is the file's
        raise SteerError(f"cannot read {path} as a checkpoint: {type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0][:200]}") from None


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
