"""String predicates decided once per distinct dictionary value.

The result is a bool lookup table by code that the kernels index.  Tables
are cached per (dictionary, test): a snapshot's dictionary object is
immutable, so a table built for it stays right for as long as it is used.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import numpy as np

from audience.compiler.plan import StrTest
from audience.snapshot import Dictionary

_CMP: dict[str, Callable[[str, str], bool]] = {
    "<": lambda s, v: s < v,
    "<=": lambda s, v: s <= v,
    ">": lambda s, v: s > v,
    ">=": lambda s, v: s >= v,
    "contains": lambda s, v: v in s,
    "starts_with": lambda s, v: s.startswith(v),
    "ends_with": lambda s, v: s.endswith(v),
}


def build_lut(d: Dictionary, test: StrTest) -> np.ndarray:
    """``lut[code]``: does the dictionary value of ``code`` pass ``test``."""
    n = len(d)
    op, values = test.op, test.values
    if op in ("=", "in", "!=", "not_in"):
        # membership tests touch only the named values, never the whole dictionary
        hit = np.zeros(n, dtype=np.bool_)
        for v in values:
            code = d.code(v)
            if 0 <= code < n:
                hit[code] = True
        return hit if op in ("=", "in") else ~hit
    if op == "between":
        lo, hi = values
        return np.fromiter((lo <= s <= hi for s in d.values), dtype=np.bool_, count=n)
    if op == "matches":
        rx = re.compile(values[0])
        return np.fromiter((rx.search(s) is not None for s in d.values), np.bool_, count=n)
    fn = _CMP.get(op)
    if fn is None:
        raise ValueError(f"no rule for string operator {op!r}")
    v = values[0]
    return np.fromiter((fn(s, v) for s in d.values), dtype=np.bool_, count=n)


def membership_lut(d: Dictionary, values: tuple[str, ...]) -> np.ndarray:
    return build_lut(d, StrTest("in", values))


class LutCache:
    """Thread-safe cache of lookup tables, keyed by the dictionary's identity."""

    def __init__(self, max_entries: int = 256) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, StrTest], tuple[Dictionary, np.ndarray]] = {}
        self._max = max_entries

    def get(self, d: Dictionary, test: StrTest) -> np.ndarray:
        key = (id(d), test)
        with self._lock:
            hit = self._entries.get(key)
        # the entry keeps its dictionary alive, so an equal id means the same object
        if hit is not None and hit[0] is d:
            return hit[1]
        lut = build_lut(d, test)
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (d, lut)
        return lut
