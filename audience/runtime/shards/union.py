"""The audience of a sharded node: the union of its shards' members.

Shards hold disjoint contacts, so the union is the shards' member masks side
by side, over their contact ids side by side (shard 0's first): the same
``Audience`` a single store gives, in that order.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from audience.runtime.ids import arrow_of
from audience.snapshot import LazyStrings, Snapshot

_SUMMED = ("count", "universe")


class UnionIds:
    """The contact ids of the shards' snapshots side by side, built once per
    set of shard versions (a new version of any shard makes new ones)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, ...] | None = None
        self._ids: Sequence[str] = ()
        self._snaps: list[Snapshot] = []  # keep the ids' owners alive (the key is by id)

    def of(self, snaps: Sequence[Snapshot]) -> Sequence[str]:
        key = tuple(id(s.contact_ids) for s in snaps)
        with self._lock:
            if key == self._key:
                return self._ids
        ids = union_ids([s.contact_ids for s in snaps])
        with self._lock:
            self._key, self._ids = key, ids
            self._snaps = list(snaps)
        return ids


def union_ids(parts: Sequence[Sequence[str]]) -> Sequence[str]:
    arrays = [arrow_of(p) for p in parts]
    if all(a is not None for a in arrays):
        # (plain strings, as one store's: up to 2 GiB of ids in all)
        arr = pa.concat_arrays([a.cast(pa.string()) for a in arrays if a is not None])
        return LazyStrings(len(arr), arr.to_pylist, arrow=arr)
    return [i for p in parts for i in p]


def union_mask(masks: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(masks) if masks else np.zeros(0, dtype=np.bool_)


def merge_explain(reports: Sequence[dict[str, Any]], total_ms: float) -> dict[str, Any]:
    """One explain report for the node: the shards' counts summed step by
    step (every shard runs the same program, so the steps line up), their
    milliseconds summed too (time spent in all shards), the fields read
    joined; ``shards`` says over how many."""
    out = dict(reports[0])
    for key in _SUMMED:
        out[key] = sum(r[key] for r in reports)
    for key, field in (("rules", "label"), ("operands", "text")):
        out[key] = [
            {field: first[field], "count": sum(r[key][i]["count"] for r in reports)}
            for i, first in enumerate(reports[0][key])
        ]
    steps = []
    for i, first in enumerate(reports[0]["steps"]):
        step = dict(first)
        for name, value in first.items():
            if name not in ("step", "what") and isinstance(value, int | float):
                total = sum(r["steps"][i].get(name, 0) for r in reports)
                step[name] = round(total, 3) if isinstance(total, float) else total
        steps.append(step)
    out["steps"] = steps
    out["partitions"] = {
        k: sum(r["partitions"][k] for r in reports) for k in reports[0]["partitions"]
    }
    out["columns"] = sorted({c for r in reports for c in r["columns"]})
    out["total_ms"] = round(total_ms, 3)
    out["shards"] = len(reports)
    return out
