"""Declared config schemas: what a family's recorded config may hold, checked once by the
registry before anything is built.

A schema is made of a few plain specs (Int, Num, Bool, Text, Items, Fixed, Table, Mapping,
Maybe). `check(spec, value, where)` returns the value normalised (numpy scalars become
Python numbers, tuples lists) or raises one SteerError line naming the entry and what it
must be. Ranges carry the documented ceilings below, so a config cannot ask for a latent of
10**9 entries or a 2**20 px image; cross-entry rules (sizes that must fit together) are plain
functions in each family, run after the per-entry checks.
"""
from __future__ import annotations

import math
import numbers
import re

from ..errors import SteerError

# documented ceilings for every family (README, "Files steer reads")
MAX_LATENT_DIM = 4096        # z, w, embeddings
MAX_CHANNELS = 4096          # any layer's width
MAX_RESOLUTION = 2048        # pixels per side
MAX_CLASSES = 100_000
MAX_LAYERS = 256             # blocks, layers or stages in one network
MAX_PARAMETERS = 1_000_000_000  # elements of one generator's weights (4 GB as float32)


class Spec:
    def check(self, value, path):
        raise NotImplementedError


def _fail(path, wanted, value):
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    raise SteerError(f"'{path}' must be {wanted}, got {text}")


class Int(Spec):
    def __init__(self, lo, hi, power_of_two=False):
        self.lo, self.hi, self.power_of_two = lo, hi, power_of_two

    def check(self, value, path):
        wanted = f"an integer in [{self.lo}, {self.hi:,}]" + (", a power of two" if self.power_of_two else "")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            _fail(path, wanted, value)
        value = int(value)
        if not self.lo <= value <= self.hi or (self.power_of_two and value & (value - 1)):
            _fail(path, wanted, value)
        return value


class Num(Spec):
    """A finite real number in [lo, hi] (NaN and inf are refused)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def check(self, value, path):
        wanted = f"a finite number in [{self.lo:g}, {self.hi:g}]"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            _fail(path, wanted, value)
        value = float(value)
        if not math.isfinite(value) or not self.lo <= value <= self.hi:
            _fail(path, wanted, value)
        return value


class Bool(Spec):
    def check(self, value, path):
        if type(value).__name__ in ("bool", "bool_"):
            return bool(value)
        _fail(path, "true or false", value)


class Text(Spec):
    def __init__(self, choices=None, pattern=None, max_len=256):
        self.choices, self.pattern, self.max_len = choices, pattern, max_len

    def check(self, value, path):
        if not isinstance(value, str) or len(value) > self.max_len:
            _fail(path, f"a string of at most {self.max_len} characters", value)
        if self.choices is not None and value not in self.choices:
            _fail(path, f"one of {', '.join(map(str, self.choices))}", value)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            _fail(path, f"a name matching {self.pattern}", value)
        return value


class Maybe(Spec):
    """None, or what `spec` accepts."""

    def __init__(self, spec):
        self.spec = spec

    def check(self, value, path):
        return None if value is None else self.spec.check(value, path)


class Items(Spec):
    """A list of min_len..max_len entries, each checked by `item`."""

    def __init__(self, item, min_len=0, max_len=MAX_LAYERS, distinct=False):
        self.item, self.min_len, self.max_len, self.distinct = item, min_len, max_len, distinct

    def check(self, value, path):
        if not isinstance(value, (list, tuple)) or not self.min_len <= len(value) <= self.max_len:
            _fail(path, f"a list of {self.min_len} to {self.max_len:,} entries", value)
        out = [self.item.check(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if self.distinct and len(set(map(repr, out))) != len(out):
            _fail(path, "a list without repeats", value)
        return out


class Fixed(Spec):
    """A list of exactly len(specs) entries, entry i checked by specs[i]."""

    def __init__(self, *specs):
        self.specs = specs

    def check(self, value, path):
        if not isinstance(value, (list, tuple)) or len(value) != len(self.specs):
            _fail(path, f"a list of {len(self.specs)} entries", value)
        return [spec.check(v, f"{path}[{i}]") for i, (spec, v) in enumerate(zip(self.specs, value))]


class Mapping(Spec):
    """An object whose keys match `key` (a regex) and whose values `value` accepts."""

    def __init__(self, key, value, max_len=MAX_LAYERS):
        self.key, self.value, self.max_len = key, value, max_len

    def check(self, value, path):
        if not isinstance(value, dict) or len(value) > self.max_len:
            _fail(path, f"an object of at most {self.max_len} entries", value)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not re.fullmatch(self.key, k):
                _fail(f"{path}", f"an object whose keys match {self.key}", k)
            out[k] = self.value.check(v, f"{path}.{k}")
        return out


class Table(Spec):
    """An object with declared entries: `required` must be there, the others may be; entries
    not declared are kept as they are (a config may carry notes such as training_data)."""

    def __init__(self, fields: dict, required=()):
        self.fields, self.required = fields, tuple(required)

    def check(self, value, path):
        if not isinstance(value, dict):
            _fail(path or "the config", "an object", value)
        missing = [k for k in self.required if k not in value]
        if missing:
            where = f"'{path}'" if path else "it"
            raise SteerError(f"{where} lacks {', '.join(repr(k) for k in missing)}")
        out = dict(value)
        for key, spec in self.fields.items():
            if key in value:
                out[key] = spec.check(value[key], f"{path}.{key}" if path else key)
        return out


def check(spec: Spec, value, where: str):
    """`value` checked by `spec`; a failure is one SteerError line starting with `where`."""
    try:
        return spec.check(value, "")
    except SteerError as e:
        raise SteerError(f"{where}: {e}") from None


def rule(ok: bool, where: str, message: str):
    """A cross-entry rule of a schema: one SteerError line unless `ok`."""
    if not ok:
        raise SteerError(f"{where}: {message}")
