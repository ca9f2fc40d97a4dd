"""The events of one ingest as the trigger engine reads them.

An ingest hands over its accepted events encoded as the store keeps them
(``__ts``/``__contact``/``__type`` and ``v:``/``m:`` columns) plus their ids
(``__id``).  ``EventBatch`` sorts them by (type, ts) so each event type is one
contiguous slice that the compiled ``where`` predicates scan vectorised, and
decodes single values (for keys, action arguments and template fields) on demand
through the snapshot's dictionaries.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from audience.engine.subset import subset_snapshot, take_columns
from audience.runtime.store.encode import event_property_types, partition_view
from audience.runtime.store.encode import sort_partition as _sort_by_ts
from audience.snapshot import Column, Dictionary, Partition, Snapshot, dictionary_key
from audience.timecalc import iso_utc

ID = "__id"
_EPOCH = dt.date(1970, 1, 1)


def journal_table(new_events: list[tuple[pa.Array, pa.Table]]) -> pa.Table:
    """One table of an ingest's accepted events (encoded + ``__id``), by ts."""
    pieces = [enc.append_column(ID, ids.cast(pa.string())) for ids, enc in new_events]
    return _sort_by_ts(pieces)


def iso_ms(ms: int) -> str:
    return iso_utc(ms)


def column_value(col: Column | None, i: int, d: Dictionary | None) -> Any:
    """The plain Python value of row ``i`` (None: missing).  Dates are
    ``datetime.date``, datetimes ISO 8601 strings, lists lists of strings."""
    if col is None or (col.valid is not None and not col.valid[i]):
        return None
    kind = col.kind
    if kind == "list":
        assert col.offsets is not None and d is not None
        codes = col.values[int(col.offsets[i]) : int(col.offsets[i + 1])]
        return [d.values[int(c)] for c in codes]
    v = col.values[i]
    if kind == "code":
        assert d is not None
        return d.values[int(v)]
    if kind == "float":
        return float(v)
    if kind == "bool":
        return bool(v)
    if kind == "date":
        return _EPOCH + dt.timedelta(days=int(v))
    if kind == "datetime":
        return iso_ms(int(v))
    return int(v)


def profile_value(snapshot: Snapshot, contact: int, name: str) -> Any:
    col = snapshot.profile.get(name)
    if col is None or contact >= snapshot.n_contacts:
        return None
    d = snapshot.dictionaries.get(dictionary_key("profile", name))
    return column_value(col, contact, d)


class EventBatch:
    """Events sorted by (type, ts); ``slices[type code] = (a, b)``."""

    def __init__(self, part: Partition, ids: list[str | None], snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.props = event_property_types(snapshot.schema)
        order = np.lexsort((part.ts, part.type))
        if not np.array_equal(order, np.arange(len(order))):
            part = take_rows(part, order)
            ids = [ids[i] for i in order.tolist()]
        elif len(part):
            part = dataclasses.replace(part, min_ts=int(part.ts.min()), max_ts=int(part.ts.max()))
        self.part = part
        self.ids = ids
        # ``where`` reads profiles too: over a few contacts, evaluate it on a
        # snapshot of just those (profile masks then cost per contact of the
        # batch, not of the store).  ``match_part`` has the contacts remapped.
        self.match_snapshot, self.match_part = snapshot, part
        uniq, inverse = np.unique(part.contact, return_inverse=True)
        if len(uniq) * 4 < snapshot.n_contacts:
            self.match_snapshot = subset_snapshot(snapshot, uniq, events=False)
            remapped = inverse.astype(np.int32).reshape(-1)
            self.match_part = dataclasses.replace(part, contact=remapped)
        codes, starts = np.unique(part.type, return_index=True)
        ends = [*starts[1:].tolist(), len(part)]
        self.slices: dict[int, tuple[int, int]] = {
            int(c): (int(a), int(b)) for c, a, b in zip(codes, starts, ends, strict=True)
        }

    @classmethod
    def from_table(cls, table: pa.Table, snapshot: Snapshot) -> EventBatch:
        """From a journal table (encoded columns + ``__id``)."""
        table = table.combine_chunks()  # the views want one buffer per column
        part = partition_view(table, event_property_types(snapshot.schema))
        return cls(part, table.column(ID).to_pylist(), snapshot)

    @classmethod
    def from_partitions(cls, parts: list[Partition], snapshot: Snapshot) -> EventBatch:
        """Stored events (they keep no ids: their keys are content hashes)."""
        part = _concat(parts)
        return cls(part, [None] * len(part), snapshot)

    def __len__(self) -> int:
        return len(self.part)

    def ts(self, i: int) -> int:
        return int(self.part.ts[i])

    def contact(self, i: int) -> int:
        return int(self.part.contact[i])

    def contact_id(self, i: int) -> str:
        return self.snapshot.contact_ids[self.contact(i)]

    def type_name(self, i: int) -> str:
        return self.snapshot.event_types.values[int(self.part.type[i])]

    def value(self, name: str, i: int) -> Any:
        """``event.NAME`` of row ``i``: a property or a built-in field."""
        if name == "type":
            return self.type_name(i)
        if name == "ts":
            return iso_ms(self.ts(i))
        if name == "id":
            return self.ids[i]
        if name == "contact_id":
            return self.contact_id(i)
        col = self.part.columns.get(name)
        return column_value(col, i, self.snapshot.dictionaries.get(dictionary_key("event", name)))

    def properties(self, i: int) -> dict[str, Any]:
        """Every property the event has (missing ones left out)."""
        out: dict[str, Any] = {}
        for name in self.props:
            v = self.value(name, i)
            if v is not None:
                out[name] = v
        return out

    def event_key(self, i: int) -> str:
        """The event's id, or (no id) a hash of what it is: contact, type, ts, properties."""
        eid = self.ids[i]
        if eid is not None:
            return eid
        return content_key(
            self.contact_id(i),
            self.type_name(i),
            self.ts(i),
            self.properties(i),
            self.value("context", i),
        )


def content_key(
    contact_id: str, etype: str, ts: int, props: Mapping[str, Any], context: str | None
) -> str:
    blob = json.dumps([contact_id, etype, ts, context, sorted(props.items())], default=str)
    return "h:" + hashlib.sha256(blob.encode()).hexdigest()[:32]


def take_rows(part: Partition, rows: np.ndarray) -> Partition:
    """The partition's ``rows`` (contacts keep their codes; columns taken when read)."""
    ts = part.ts[rows]
    return Partition(
        min_ts=int(ts.min()),
        max_ts=int(ts.max()),
        ts=ts,
        contact=part.contact[rows],
        type=part.type[rows],
        columns=take_columns(part.columns, rows),
    )


def _concat_column(cols: list[Column]) -> Column:
    kind = cols[0].kind
    valid = None
    if any(c.valid is not None for c in cols):
        valid = np.concatenate(
            [np.ones(_rows(c), np.bool_) if c.valid is None else c.valid for c in cols]
        )
    if kind != "list":
        return Column(kind, np.concatenate([c.values for c in cols]), valid)
    offsets = [np.zeros(1, np.int64)]
    values = []
    base = 0
    for c in cols:
        assert c.offsets is not None
        o = c.offsets.astype(np.int64)
        values.append(c.values[o[0] : o[-1]])
        offsets.append(o[1:] - o[0] + base)
        base += int(o[-1] - o[0])
    return Column(kind, np.concatenate(values), valid, np.concatenate(offsets).astype(np.int32))


def _rows(c: Column) -> int:
    return len(c.offsets) - 1 if c.offsets is not None else len(c.values)


def _concat(parts: list[Partition]) -> Partition:
    if len(parts) == 1:
        return parts[0]
    ts = np.concatenate([p.ts for p in parts])
    names = parts[0].columns.keys()
    return Partition(
        min_ts=int(ts.min()),
        max_ts=int(ts.max()),
        ts=ts,
        contact=np.concatenate([p.contact for p in parts]),
        type=np.concatenate([p.type for p in parts]),
        columns={n: _concat_column([p.columns[n] for p in parts]) for n in names},
    )
