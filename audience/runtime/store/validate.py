"""Checking input tables against the schema, column by column.

A row that does not fit gets one reason (the first problem found, builtin
fields first, then properties in column order) and is left out; the others
come back as a normalized table (types of ``coerce.NORMALIZED``).  The checks
are vectorised; Python only runs for the rows being rejected, to word them.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from audience import lazy_compute as pc
from audience.runtime.store.coerce import NORMALIZED, coerce, describe
from audience.schema import CONTEXTS, Schema

Problem = tuple[str | None, str]  # (field, reason)


@dataclass
class Checked:
    table: pa.Table  # normalized, accepted rows only, input order
    rows: np.ndarray  # input index of each accepted row
    problems: dict[int, Problem]  # input index -> why it was rejected


class _Flags:
    def __init__(self, n: int, pre: Mapping[int, Problem] | None) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.problems: dict[int, Problem] = dict(pre or {})
        if self.problems:
            self.bad[np.fromiter(self.problems, dtype=np.int64)] = True

    def flag(self, mask: np.ndarray, field: str | None, reason: Callable[[int], str]) -> None:
        if not mask.any():  # the usual case: nothing to reject
            return
        for i in np.flatnonzero(mask & ~self.bad):
            self.problems[int(i)] = (field, reason(int(i)))
        self.bad |= mask


def flatten_structs(table: pa.Table) -> pa.Table:
    """``properties`` struct fields stand at the top level; other structs
    become dotted names (``product.name``), as in the schema."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        cols: dict[str, pa.ChunkedArray] = {}
        for name, col in zip(table.column_names, table.columns, strict=True):
            if not pa.types.is_struct(col.type):
                _put(cols, name, col)
                continue
            prefix = "" if name == "properties" else name + "."
            for i in range(col.type.num_fields):
                child = pc.struct_field(col, [i])
                _put(cols, prefix + col.type.field(i).name, child)
        table = pa.table(cols)
    return table


def _put(cols: dict[str, pa.ChunkedArray], name: str, col: pa.ChunkedArray) -> None:
    if name in cols:
        # Both at the top level and under properties: a value under properties wins.
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            col = pc.coalesce(col, cols[name])
    cols[name] = col


def _np(arr: pa.Array) -> np.ndarray:
    out: np.ndarray = arr.to_numpy(zero_copy_only=False)
    return out


def _valid(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return _np(arr.is_valid())


def _column(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows)
    col = table.column(name)
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def _by_value(arr: pa.Array, fn: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """``fn`` per row; for a dictionary array, run on its distinct values only
    (Arrow's kernels would decode every row first)."""
    if pa.types.is_dictionary(arr.type):
        return fn(arr.dictionary).take(arr.indices)
    return fn(arr)


def _contact_ids(
    table: pa.Table, flags: _Flags, out: dict[str, pa.Array], keep_dictionary: bool = False
) -> None:
    raw = _column(table, "contact_id")
    cid, bad = coerce(raw, "string", numbers_as_text=True, keep_dictionary=keep_dictionary)
    flags.flag(
        bad,
        "contact_id",
        lambda i: f"contact_id: expected a string or an integer, got {describe(raw[i].as_py())}",
    )
    empty = pc.fill_null(_by_value(cid, lambda v: pc.equal(v, "")), True)
    flags.flag(_np(empty) & ~bad, "contact_id", lambda i: "missing contact_id")
    out["contact_id"] = cid


def validate_events(
    table: pa.Table,
    schema: Schema,
    props: Mapping[str, str],
    pre: Mapping[int, Problem] | None = None,
) -> Checked:
    table = flatten_structs(table)
    n = table.num_rows
    flags = _Flags(n, pre)
    out: dict[str, pa.Array] = {}
    # String columns that arrive dictionary-encoded (Parquet) stay so: checked
    # and encoded per distinct value.
    _contact_ids(table, flags, out, keep_dictionary=True)

    raw_type = _column(table, "type")
    etype, bad = coerce(raw_type, "string", keep_dictionary=True)
    flags.flag(
        bad, "type", lambda i: f"type: expected a string, got {describe(raw_type[i].as_py())}"
    )
    flags.flag(~_valid(etype) & ~bad, "type", lambda i: "missing type")
    types = list(schema.events)
    # The row's type as an index into ``types`` (-1: none or unknown), so a
    # property's "declared for this type" check is a numpy lookup.
    known_types = pa.array(types, pa.string())
    tcode = _np(pc.fill_null(_by_value(etype, lambda v: pc.index_in(v, known_types)), -1))
    known = tcode >= 0
    flags.flag(_valid(etype) & ~known, "type", lambda i: _unknown_type(etype[i].as_py(), types))
    out["type"] = etype

    raw_ts = _column(table, "ts")
    ts, bad = coerce(raw_ts, "datetime")
    flags.flag(~_valid(raw_ts), "ts", lambda i: "missing ts")
    flags.flag(
        bad,
        "ts",
        lambda i: (
            f"ts: cannot parse {describe(raw_ts[i].as_py())} as a timestamp "
            "(ISO 8601 with an offset, or epoch milliseconds)"
        ),
    )
    out["ts"] = ts

    raw_ctx = _column(table, "context")
    ctx, bad = coerce(raw_ctx, "string", keep_dictionary=True)
    flags.flag(
        bad, "context", lambda i: f"context: expected a string, got {describe(raw_ctx[i].as_py())}"
    )
    contexts = pa.array(CONTEXTS)
    ok = _np(pc.fill_null(_by_value(ctx, lambda v: pc.is_in(v, contexts)), False))
    flags.flag(
        _valid(ctx) & ~ok,
        "context",
        lambda i: f"unknown context {describe(ctx[i].as_py())}; use one of {', '.join(CONTEXTS)}",
    )
    out["context"] = ctx

    raw_id = _column(table, "id")
    eid, bad = coerce(raw_id, "string", numbers_as_text=True)
    flags.flag(
        bad,
        "id",
        lambda i: f"id: expected a string or an integer, got {describe(raw_id[i].as_py())}",
    )
    out["id"] = eid

    builtins = {"id", "contact_id", "type", "ts", "context"}
    # Per set of event types declaring a property: which rows are of one of
    # them (an Arrow mask, so the check against the values' validity bitmap
    # stays in bitmaps; most properties share a few such sets).
    fits_by_set: dict[tuple[bool, ...], pa.Array] = {}
    for name in table.column_names:
        if name in builtins:
            continue
        raw = _column(table, name)
        if name not in props:
            flags.flag(_valid(raw), name, _const(f"unknown property '{name}'"))
            continue
        ftype = props[name]
        value, bad = coerce(raw, ftype, keep_dictionary=True)
        declared = tuple(name in schema.events[t] for t in types)
        fits = fits_by_set.get(declared)
        if fits is None:
            # tcode -1 (no known type) picks the trailing False
            fits = pa.array(np.array([*declared, False])[tcode])
            fits_by_set[declared] = fits
        stray = pc.and_not(raw.is_valid(), fits)
        if stray.true_count:
            flags.flag(_np(stray), name, _undeclared(name, etype))
        flags.flag(
            bad,
            name,
            _wrong_type(name, ftype, raw),
        )
        out[name] = value
    return _finish(out, flags, n)


def _const(text: str) -> Callable[[int], str]:
    return lambda i: text


def _undeclared(name: str, etype: pa.Array) -> Callable[[int], str]:
    return lambda i: f"property '{name}' is not declared for event type '{etype[i].as_py()}'"


def _wrong_type(name: str, ftype: str, raw: pa.Array) -> Callable[[int], str]:
    return lambda i: f"{name}: expected {ftype}, got {describe(raw[i].as_py())}"


def _unknown_type(value: str, types: list[str]) -> str:
    msg = f"unknown event type {describe(value)}"
    close = difflib.get_close_matches(value, types, n=1)
    return msg + (f"; did you mean '{close[0]}'?" if close else "")


def validate_profiles(
    table: pa.Table, schema: Schema, pre: Mapping[int, Problem] | None = None
) -> Checked:
    table = flatten_structs(table)
    n = table.num_rows
    flags = _Flags(n, pre)
    out: dict[str, pa.Array] = {}
    _contact_ids(table, flags, out)
    for name in table.column_names:
        if name == "contact_id":
            continue
        raw = _column(table, name)
        if name not in schema.profile:
            flags.flag(_valid(raw), name, _const(f"unknown profile property '{name}'"))
            continue
        ftype = schema.profile[name]
        # a string column read as a dictionary stays one: encoded per distinct value
        value, bad = coerce(raw, ftype, keep_dictionary=True)
        flags.flag(
            bad,
            name,
            _wrong_type(name, ftype, raw),
        )
        out[name] = value
    return _finish(out, flags, n)


def _finish(out: dict[str, pa.Array], flags: _Flags, n: int) -> Checked:
    good = ~flags.bad
    rows = np.flatnonzero(good)
    mask = pa.array(good)
    table = pa.table({k: (v if good.all() else v.filter(mask)) for k, v in out.items()})
    return Checked(table, rows, flags.problems)


def empty_events(props: Mapping[str, str]) -> pa.Table:
    cols = {
        "id": pa.array([], pa.string()),
        "contact_id": pa.array([], pa.string()),
        "type": pa.array([], pa.string()),
        "ts": pa.array([], pa.int64()),
        "context": pa.array([], pa.string()),
    }
    for name, ftype in props.items():
        cols[name] = pa.array([], NORMALIZED[ftype])
    return pa.table(cols)
