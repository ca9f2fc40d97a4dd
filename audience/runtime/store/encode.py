"""Normalized Arrow tables -> encoded tables (what partitions hold on disk or
in memory) -> numpy views for the Snapshot.

An encoded table has no Arrow null bitmaps: the evaluator wants one bool per
row, so each column ``v:NAME`` (values, nulls filled with 0 / empty lists) has
a companion ``m:NAME`` (uint8, 1 = present) only when some row lacks a value;
a property with no value in the whole partition has neither column and reads
as all-missing.  Built-in event columns are ``__ts`` (int64 ms), ``__contact``
and ``__type`` (int32).  Bool values are uint8, dates int32 days, datetimes
int64 ms, strings int32 dictionary codes, list<string> a list<int32> of codes.
Every array handed to the Snapshot is a zero-copy numpy view of these buffers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from audience import lazy_compute as pc
from audience.runtime.store.errors import StoreError
from audience.runtime.store.layout import CONTACTS, TYPES
from audience.schema import Schema
from audience.snapshot import Column, ColumnKind, Partition, dictionary_key

if TYPE_CHECKING:  # (imported by an ingest, which loads its kernels; a read does not)
    from audience.runtime.store.dictionaries import DictState

KIND: dict[str, ColumnKind] = {
    "string": "code",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "date": "date",
    "datetime": "datetime",
    "list<string>": "list",
}
_DTYPE: dict[str, type] = {
    "code": np.int32,
    "int": np.int64,
    "float": np.float64,
    "bool": np.bool_,
    "date": np.int32,
    "datetime": np.int64,
}
TS, CONTACT, TYPE = "__ts", "__contact", "__type"
# The event's id (string, null when it had none): read by the trigger
# journal, never by the evaluator.
ID = "__id"


def event_property_types(schema: Schema, source: str = "<schema>") -> dict[str, str]:
    """One type per event property name across event types: they share a
    column and a dictionary, so two types may not disagree about one."""
    out: dict[str, str] = {}
    first: dict[str, str] = {}
    for etype, props in schema.events.items():
        for name, ftype in props.items():
            if name in out and out[name] != ftype:
                raise StoreError(
                    f"{source}: property '{name}' is {out[name]} in events.{first[name]} but "
                    f"{ftype} in events.{etype}; a store needs one type per property name"
                )
            out.setdefault(name, ftype)
            first.setdefault(name, etype)
    return out


def encode_column(
    col: pa.Array,
    ftype: str,
    key: str,
    dicts: DictState,
    name: str,
    codes: np.ndarray | None = None,
) -> dict[str, pa.Array]:
    """The ``v:``/``m:`` columns of one normalized column (empty: all missing);
    ``codes``: a string column's codes, when the caller has them already."""
    n = len(col)
    if col.null_count == n:
        return {}
    valid = None if col.null_count == 0 else valid_rows(col)
    kind = KIND[ftype]
    values: pa.Array
    if kind == "code":
        values = pa.array(dicts.encode_any(key, col, valid) if codes is None else codes)
    elif kind == "list":
        codes = dicts.encode(key, pc.list_flatten(col))
        lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        values = pa.ListArray.from_arrays(pa.array(offsets), pa.array(codes, type=pa.int32()))
    elif kind == "bool":
        values = pc.cast(pc.fill_null(col, False), pa.uint8())
    elif kind == "date":
        values = pc.fill_null(pc.cast(col, pa.int32()), 0)
    elif kind == "float":
        values = pc.fill_null(col, 0.0)
    else:
        values = pc.fill_null(col, 0)
    out = {f"v:{name}": values}
    if valid is not None:
        out[f"m:{name}"] = pa.array(valid.view(np.uint8))
    return out


def valid_rows(col: pa.Array) -> np.ndarray:
    """Whether each row has a value, as numpy bools: the validity bitmap
    unpacked (``is_valid().to_numpy()`` costs some 15 times as much)."""
    n, off = len(col), col.offset
    bitmap = col.buffers()[0]
    if bitmap is None:  # no nulls, or a null-typed array: all nulls
        return np.full(n, col.null_count == 0, dtype=np.bool_)
    bits = np.frombuffer(bitmap, dtype=np.uint8)[off // 8 : (off + n + 7) // 8]
    out: np.ndarray = np.unpackbits(bits, bitorder="little")[off % 8 : off % 8 + n]
    return out.view(np.bool_)


def encode_events(
    table: pa.Table,
    schema: Schema,
    props: Mapping[str, str],
    dicts: DictState,
    contacts: np.ndarray | None = None,
    strings: Mapping[str, np.ndarray] | None = None,
) -> pa.Table:
    """Encode a validated events table (input order kept; sorting is per
    partition).  ``contacts``: the rows' contact codes, ``strings``: the
    codes of the type and string columns (``encode_strings``), when the
    caller has them already."""
    codes = strings or {}
    cols: dict[str, pa.Array] = {}
    cols[TS] = one_array(table.column("ts")).cast(pa.int64())
    cols[ID] = one_array(table.column("id"))
    if contacts is None:
        contacts = dicts.encode_any(CONTACTS, one_array(table.column("contact_id")))
    cols[CONTACT] = pa.array(contacts)
    types = codes.get("type")
    if types is None:
        types = dicts.encode_any(TYPES, one_array(table.column("type")))
    cols[TYPE] = pa.array(types)
    for name, ftype, key in _event_columns(table, props):
        col = one_array(table.column(name))
        cols.update(encode_column(col, ftype, key, dicts, name, codes.get(name)))
    return pa.table(cols)


def encode_strings(
    table: pa.Table, props: Mapping[str, str], dicts: DictState
) -> dict[str, np.ndarray]:
    """The codes of an events table's type and string columns (what
    ``encode_events`` would give them), by column name: run on a thread of
    its own, a batch ahead (each dictionary still sees the batches in order)."""
    out = {"type": dicts.encode_any(TYPES, one_array(table.column("type")))}
    for name, ftype, key in _event_columns(table, props):
        col = one_array(table.column(name))
        if KIND[ftype] == "code" and col.null_count < len(col):
            valid = None if col.null_count == 0 else valid_rows(col)
            out[name] = dicts.encode_any(key, col, valid)
    return out


def _event_columns(table: pa.Table, props: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(name, type, dictionary key) of the context and property columns."""
    out = [("context", "string", "context")]
    names = set(table.column_names)
    out += [(n, t, dictionary_key("event", n)) for n, t in props.items() if n in names]
    return out


def one_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The column as one array; a single chunk is returned as is (Arrow's
    ``combine_chunks`` would copy it, e.g. a whole memory-mapped column)."""
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


# ----------------------------------------------------------------- snapshot views
def view(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A zero-copy numpy view of a null-free primitive column."""
    a = one_array(arr)
    out: np.ndarray = a.to_numpy(zero_copy_only=True)
    return out


def column_view(table: pa.Table, name: str, ftype: str, n: int) -> Column:
    kind = KIND[ftype]
    vname, mname = f"v:{name}", f"m:{name}"
    if vname not in table.column_names or n == 0:
        return missing_column(kind, n)
    valid = view(table.column(mname)).view(np.bool_) if mname in table.column_names else None
    if kind == "list":
        lists = one_array(table.column(vname))
        offsets = view(lists.offsets)
        values = view(lists.values)
        return Column(kind, values, valid, offsets)
    values = view(table.column(vname))
    if kind == "bool":
        values = values.view(np.bool_)
    return Column(kind, values, valid)


def missing_column(kind: ColumnKind, n: int) -> Column:
    """A column in which no row has a value (np.zeros is lazily mapped: cheap)."""
    if kind == "list":
        return Column(kind, np.zeros(0, np.int32), np.zeros(n, bool), np.zeros(n + 1, np.int32))
    return Column(kind, np.zeros(n, _DTYPE[kind]), np.zeros(n, bool))


class _Columns(Mapping[str, Column]):
    """A partition's columns by name, each viewed on first access: a query
    reads a few of a store's dozens of properties, and a new process's first
    snapshot would otherwise view every column of every partition (at 48
    properties and 13 partitions, 624 views).  Views are cheap and
    idempotent: two threads viewing one column at once both get a right one."""

    def __init__(self, table: pa.Table, fields: dict[str, str], n: int) -> None:
        self._table = table
        self._fields = fields
        self._n = n
        self._done: dict[str, Column] = {}

    def __getitem__(self, name: str) -> Column:
        col = self._done.get(name)
        if col is None:
            ftype = self._fields[name]  # KeyError: no such column
            col = self._done.setdefault(name, column_view(self._table, name, ftype, self._n))
        return col

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def partition_view(table: pa.Table, props: Mapping[str, str]) -> Partition:
    n = table.num_rows
    if n == 0:
        raise StoreError("internal: an empty partition")
    ts = view(table.column(TS))
    columns = _Columns(table, {"context": "string", **props}, n)
    return Partition(
        min_ts=int(ts[0]),
        max_ts=int(ts[-1]),
        ts=ts,
        contact=view(table.column(CONTACT)),
        type=view(table.column(TYPE)),
        columns=columns,
    )


def sort_partition(tables: list[pa.Table]) -> pa.Table:
    """One partition table from the encoded pieces of one time bucket, sorted
    by ts (stable: events of one ms keep their input order), one chunk."""
    table = pa.concat_tables(tables, promote_options="permissive")
    ts = table.column(TS).to_numpy()
    # Time-ordered input (the usual case) needs no reordering copy.
    if len(ts) > 1 and not (ts[1:] >= ts[:-1]).all():
        table = table.take(pa.array(np.argsort(ts, kind="stable")))
    return _fill_missing_masks(table).combine_chunks()


def _fill_missing_masks(table: pa.Table) -> pa.Table:
    """Pieces concatenated where one had a full column and another lacked it
    (or its mask) get nulls; turn them back into values + masks."""
    names = table.column_names
    for name in list(names):
        if not name.startswith("v:"):
            continue
        col = one_array(table.column(name))
        mname = "m:" + name[2:]
        mask = table.column(mname) if mname in names else None
        if col.null_count == 0 and (mask is None or mask.null_count == 0):
            continue
        present = col.is_valid()
        if mask is not None:
            present = pc.and_(present, pc.fill_null(pc.cast(one_array(mask), pa.bool_()), True))
        if pa.types.is_list(col.type):
            filled = pc.if_else(present, col, pa.scalar([], type=col.type))
            fixed = _relist(filled)
        else:
            fixed = pc.fill_null(col, pa.scalar(0, type=col.type))
        table = table.set_column(names.index(name), name, fixed)
        m = pc.cast(present, pa.uint8())
        if mname in table.column_names:
            table = table.set_column(table.column_names.index(mname), mname, m)
        else:
            table = table.append_column(mname, m)
        names = table.column_names
    return table


def _relist(col: pa.Array) -> pa.Array:
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(col) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pc.list_flatten(col))
