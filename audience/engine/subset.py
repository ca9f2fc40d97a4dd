"""Evaluate a compiled program for a few contacts only (a trigger's ``if``).

A full evaluation scans every row of every partition; a trigger needs the
answer for the one contact of the event it reacts to.  ``subset_snapshot``
builds a small Snapshot holding only those contacts (dense indexes remapped to
0..k-1) and only their events, so the unchanged program and kernels run over a
handful of rows with exactly the semantics of the full evaluation.

The rows of a contact are found through a per-partition index (the partition's
rows sorted by contact), built once per immutable partition and cached.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping

import numpy as np

from audience.snapshot import Column, Partition, Snapshot


class _ContactIndex:
    """``order``: the partition's row numbers sorted by contact (stable, so each
    contact's rows stay in ts order); ``sorted_contacts``: contacts in that order."""

    def __init__(self, part: Partition) -> None:
        self.order = np.argsort(part.contact, kind="stable").astype(np.int64)
        self.sorted_contacts = np.ascontiguousarray(part.contact[self.order])

    def rows(self, contacts: np.ndarray) -> np.ndarray:
        """Row numbers (ascending, so in ts order) of the sorted unique ``contacts``."""
        lo = np.searchsorted(self.sorted_contacts, contacts, "left")
        hi = np.searchsorted(self.sorted_contacts, contacts, "right")
        if len(contacts) == 1:
            out = self.order[int(lo[0]) : int(hi[0])]
        else:
            out = np.concatenate([self.order[a:b] for a, b in zip(lo, hi, strict=True)])
        return np.sort(out)


# Keyed by id(): a Partition holds arrays, so it is not hashable.  The weakref
# check guards against a recycled id; the finalizer drops dead entries.
_indexes: dict[int, tuple[weakref.ref[Partition], _ContactIndex]] = {}
_lock = threading.Lock()


def contact_index(part: Partition) -> _ContactIndex:
    key = id(part)
    with _lock:
        hit = _indexes.get(key)
    if hit is not None and hit[0]() is part:
        return hit[1]
    index = _ContactIndex(part)
    with _lock:
        _indexes[key] = (weakref.ref(part), index)
    weakref.finalize(part, _indexes.pop, key, None)
    return index


def warm(snapshot: Snapshot) -> None:
    """Build the contact index of every partition now (a worker's start-up),
    so the first trigger does not pay for it."""
    for part in snapshot.partitions:
        contact_index(part)


def _take(col: Column, rows: np.ndarray) -> Column:
    valid = None if col.valid is None else col.valid[rows]
    if col.kind == "list":
        assert col.offsets is not None
        starts = col.offsets[rows].astype(np.int64)
        lengths = col.offsets[rows + 1].astype(np.int64) - starts
        offsets = np.zeros(len(rows) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        pos = (
            np.arange(total, dtype=np.int64)
            - np.repeat(offsets[:-1], lengths)
            + np.repeat(starts, lengths)
        )
        return Column(col.kind, col.values[pos], valid, offsets)
    return Column(col.kind, col.values[rows], valid)


class _TakenColumns(Mapping[str, Column]):
    """``rows`` of each column, gathered when first read: a program reads a
    few of a store's columns, so the others are never copied."""

    def __init__(self, cols: Mapping[str, Column], rows: np.ndarray) -> None:
        self._cols = cols
        self._rows = rows
        self._taken: dict[str, Column] = {}

    def __getitem__(self, name: str) -> Column:
        hit = self._taken.get(name)
        if hit is None:
            hit = self._taken[name] = _take(self._cols[name], self._rows)
        return hit

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)


def take_columns(cols: Mapping[str, Column], rows: np.ndarray) -> Mapping[str, Column]:
    return _TakenColumns(cols, rows)


def subset_snapshot(
    snapshot: Snapshot,
    contacts: np.ndarray,
    *,
    events: bool = True,
    until_ms: int | None = None,
) -> Snapshot:
    """The snapshot restricted to ``contacts`` (sorted unique dense indexes):
    contact ``contacts[j]`` becomes contact ``j``; dictionaries are shared.
    ``events`` False leaves the events out (a program that reads none);
    partitions that start after ``until_ms`` are left out (nothing reads them)."""
    contacts = np.asarray(contacts, dtype=np.int32)
    parts: list[Partition] = []
    for part in snapshot.partitions if events else ():
        if len(part) == 0 or (until_ms is not None and part.min_ts > until_ms):
            continue
        rows = contact_index(part).rows(contacts)
        if len(rows) == 0:
            continue
        ts = part.ts[rows]
        remapped = np.searchsorted(contacts, part.contact[rows]).astype(np.int32)
        parts.append(
            Partition(
                min_ts=int(ts[0]),
                max_ts=int(ts[-1]),
                ts=ts,
                contact=remapped,
                type=part.type[rows],
                columns=take_columns(part.columns, rows),
            )
        )
    ids = snapshot.contact_ids
    return Snapshot(
        version=snapshot.version,
        schema=snapshot.schema,
        contact_ids=[ids[i] for i in contacts.tolist()],
        event_types=snapshot.event_types,
        dictionaries=snapshot.dictionaries,
        has_profile=snapshot.has_profile[contacts],
        first_event_ts=snapshot.first_event_ts[contacts],
        profile=take_columns(snapshot.profile, contacts),
        partitions=tuple(parts),
    )
