"""Vectorised conversion of input columns to the store's normalized Arrow types.

Every function returns the converted column (null where the input was null or
did not fit) and a numpy bool mask of the rows whose non-null value did not
fit, so the caller can reject exactly those rows and keep the rest.  Text
(CSV cells, string columns of a Parquet file, JSON timestamps) is parsed with
Arrow casts; when a cast fails the column is split in halves until the bad
values are isolated, so one bad value costs O(log n) casts, not a Python loop.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pyarrow as pa

from audience import lazy_compute as pc
from audience.runtime.store.hashing import int64_dictionary

# The normalized Arrow type of each schema type: what validation produces and
# encoding consumes.  Datetimes are int64 ms UTC.
NORMALIZED: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.int64(),
    "list<string>": pa.list_(pa.string()),
}
_SPLIT_BELOW = 16
_INT64_MAX = 2**63 - 1


def coerce(
    col: pa.Array, ftype: str, *, numbers_as_text: bool = False, keep_dictionary: bool = False
) -> tuple[pa.Array, np.ndarray]:
    """Convert ``col`` to ``NORMALIZED[ftype]``; ``numbers_as_text`` lets integer
    columns stand for strings (``contact_id`` and ``id`` accept numbers).
    ``keep_dictionary``: a dictionary-encoded string column stays one (as
    ``dictionary<int32, string>``), so its values are checked and encoded
    once per distinct value instead of once per row."""
    if keep_dictionary and ftype == "string":
        strings = string_dictionary(col)
        if strings is not None:
            return strings, np.zeros(len(strings), dtype=bool)
    col = _plain(col)
    n = len(col)
    if keep_dictionary and numbers_as_text and ftype == "string" and pa.types.is_integer(col.type):
        # Integer ids (a contact's, repeated in every event of it) are made
        # text once per distinct value: a dictionary of their strings.
        return _integer_dictionary(col), np.zeros(n, dtype=bool)
    target = NORMALIZED[ftype]
    if pa.types.is_null(col.type):
        return pa.nulls(n, target), np.zeros(n, dtype=bool)
    t = col.type
    if ftype == "string":
        if pa.types.is_string(t):
            return col, np.zeros(n, dtype=bool)
        if numbers_as_text and pa.types.is_integer(t):
            return pc.cast(col, pa.string()), np.zeros(n, dtype=bool)
        return _all_bad(col, target)
    if ftype == "list<string>":
        return _to_list(col)
    if pa.types.is_string(t):
        return _from_text(col, ftype)
    if ftype == "int":
        if pa.types.is_integer(t):
            return _int_to_int64(col)
        if pa.types.is_floating(t):
            return _float_to_int64(col)
    elif ftype == "float":
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            return pc.cast(col, pa.float64(), safe=False), np.zeros(n, dtype=bool)
    elif ftype == "bool":
        if pa.types.is_boolean(t):
            return col, np.zeros(n, dtype=bool)
    elif ftype == "date":
        if pa.types.is_date(t):
            return pc.cast(col, pa.date32()), np.zeros(n, dtype=bool)
    elif ftype == "datetime":
        if pa.types.is_timestamp(t):
            # A naive timestamp is UTC; an aware one stores the UTC instant already.
            ms = pc.cast(col, pa.timestamp("ms", tz=t.tz), safe=False)
            return ms.view(pa.int64()), np.zeros(n, dtype=bool)
        if pa.types.is_integer(t):
            return _int_to_int64(col)
    return _all_bad(col, target)


def string_dictionary(col: pa.Array | pa.ChunkedArray) -> pa.DictionaryArray | None:
    """``col`` as ``dictionary<int32, string>`` when it is a dictionary of
    strings with no null among its values (else None: decode it)."""
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks != 1:  # chunks may have dictionaries of their own
            return None
        col = col.chunk(0)
    t = col.type
    if not pa.types.is_dictionary(t):
        return None
    vt = t.value_type
    if not (pa.types.is_string(vt) or pa.types.is_large_string(vt) or pa.types.is_string_view(vt)):
        return None
    values = col.dictionary
    if values.null_count:
        return None
    if pa.types.is_string(vt) and t.index_type == pa.int32():
        return col
    if not pa.types.is_string(vt):
        values = pc.cast(values, pa.string())
    return pa.DictionaryArray.from_arrays(pc.cast(col.indices, pa.int32()), values)


def _integer_dictionary(col: pa.Array) -> pa.DictionaryArray:
    """Arrow's ``dictionary_encode`` with its values made text; without nulls,
    from a table of exact integer keys (it costs Arrow's own a third more)."""
    if col.null_count == 0 and (pa.types.is_signed_integer(col.type) or col.type.bit_width < 64):
        ints = pc.cast(col, pa.int64()).to_numpy()
        rows, indices = int64_dictionary(ints)
        values = pa.array(ints[rows]).cast(pa.string())
        return pa.DictionaryArray.from_arrays(pa.array(indices), values)
    enc = pc.dictionary_encode(col)
    text = pc.cast(enc.dictionary, pa.string())
    return pa.DictionaryArray.from_arrays(pc.cast(enc.indices, pa.int32()), text)


def decode_dictionaries(table: pa.Table) -> pa.Table:
    """``table`` with its dictionary columns decoded (what the store's log holds)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, pc.cast(table.column(i), field.type.value_type))
    return table


def _plain(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    t = col.type
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        col = pc.cast(col, pa.string())
    return col


def _valid(col: pa.Array) -> np.ndarray:
    if col.null_count == 0:
        return np.ones(len(col), dtype=bool)
    out: np.ndarray = col.is_valid().to_numpy(zero_copy_only=False)
    return out


def _all_bad(col: pa.Array, target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    return pa.nulls(len(col), target), _valid(col)


def _null_where(arr: pa.Array, bad: np.ndarray) -> pa.Array:
    if not bad.any():
        return arr
    return pc.if_else(pa.array(bad), pa.nulls(len(arr), arr.type), arr)


def _int_to_int64(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    if pa.types.is_uint64(col.type):
        big = pc.fill_null(pc.greater(col, _INT64_MAX), False).to_numpy(zero_copy_only=False)
        col = _null_where(col, big)
        return pc.cast(col, pa.int64()), big
    return pc.cast(col, pa.int64()), np.zeros(len(col), dtype=bool)


def _float_to_int64(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    # Integral floats are accepted: a nullable integer column often arrives as
    # float64 (pandas), and JSON writers emit 3.0 for 3.
    vals = col.to_numpy(zero_copy_only=False)
    valid = _valid(col)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(vals) & (np.floor(vals) == vals) & (np.abs(vals) < 2.0**63)
    bad = valid & ~ok
    out = pa.array(np.where(ok, vals, 0).astype(np.int64), mask=~(valid & ok))
    return out, bad


def _from_text(col: pa.Array, ftype: str) -> tuple[pa.Array, np.ndarray]:
    text = pc.utf8_trim_whitespace(col)
    if ftype == "bool":
        text = pc.utf8_lower(text)
        ok = pc.is_in(text, value_set=pa.array(["true", "false", "1", "0"]))
        bad = _valid(col) & ~pc.fill_null(ok, True).to_numpy(zero_copy_only=False)
        return pc.cast(_null_where(text, bad), pa.bool_()), bad
    if ftype == "datetime":
        return _datetime_from_text(text)
    return _cast_isolating(text, NORMALIZED[ftype])


def _datetime_from_text(text: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """ISO 8601 with an offset (``Z`` or ``+HH:MM``), or epoch milliseconds."""
    digits = pc.fill_null(pc.match_substring_regex(text, r"^-?\d+$"), False)
    digits_np = digits.to_numpy(zero_copy_only=False)
    out = np.zeros(len(text), dtype=np.int64)
    good = np.zeros(len(text), dtype=bool)
    if digits_np.any():
        ints, bad_i = _cast_isolating(text.filter(digits), pa.int64())
        idx = np.flatnonzero(digits_np)
        out[idx] = ints.fill_null(0).to_numpy(zero_copy_only=False)
        good[idx] = ~bad_i
    iso_mask = _valid(text) & ~digits_np
    if iso_mask.any():
        idx = np.flatnonzero(iso_mask)
        ts, bad_t = _cast_isolating(text.take(pa.array(idx)), pa.timestamp("ms", tz="UTC"))
        ms = ts.view(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).copy()
        if bad_t.any():
            # Arrow's parser stops at milliseconds; Python's reads finer fractions.
            for j in np.flatnonzero(bad_t):
                parsed = _py_iso(str(text[int(idx[j])].as_py()))
                if parsed is not None:
                    ms[j] = parsed
                    bad_t[j] = False
        out[idx] = ms
        good[idx] = ~bad_t
    bad = _valid(text) & ~good
    return pa.array(out, mask=~good), bad


def _py_iso(s: str) -> int | None:
    try:
        d = dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    if d.tzinfo is None:
        return None
    return (d - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)


def _cast_isolating(text: pa.Array, target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Cast, and where the whole cast fails, find the values that fail by halving."""
    try:
        return pc.cast(text, target), np.zeros(len(text), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    if len(text) <= _SPLIT_BELOW:
        parts: list[pa.Array] = []
        bad = np.zeros(len(text), dtype=bool)
        for i in range(len(text)):
            try:
                parts.append(pc.cast(text.slice(i, 1), target))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                parts.append(pa.nulls(1, target))
                bad[i] = True
        return pa.concat_arrays(parts), bad
    half = len(text) // 2
    a, bad_a = _cast_isolating(text.slice(0, half), target)
    b, bad_b = _cast_isolating(text.slice(half), target)
    return pa.concat_arrays([a, b]), np.concatenate([bad_a, bad_b])


def _to_list(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    target = NORMALIZED["list<string>"]
    t = col.type
    n = len(col)
    if pa.types.is_string(t):
        # A CSV cell (or a string column) holds the list as a JSON array.
        return _list_from_json_text(col)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        vt = t.value_type
        if pa.types.is_null(vt):
            out = pc.cast(col, pa.list_(pa.null()))
            return pa.ListArray.from_arrays(
                out.offsets, pa.nulls(0, pa.string()), mask=out.is_null()
            ), np.zeros(n, dtype=bool)
        if pa.types.is_dictionary(vt) or pa.types.is_large_string(vt) or pa.types.is_string(vt):
            lists = pc.cast(col, pa.list_(pa.string()))
            # A list with a null element does not fit list<string>.
            flat_null = pc.is_null(pc.list_flatten(lists)).to_numpy(zero_copy_only=False)
            if not flat_null.any():
                return lists, np.zeros(n, dtype=bool)
            parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
            bad = np.zeros(n, dtype=bool)
            bad[parents[flat_null]] = True
            return _null_where(lists, bad), bad
    return _all_bad(col, target)


def _list_from_json_text(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    out: list[list[str] | None] = []
    bad = np.zeros(len(col), dtype=bool)
    for i, s in enumerate(col.to_pylist()):
        if s is None:
            out.append(None)
            continue
        value = _parse_json_list(s)
        if value is None:
            bad[i] = True
        out.append(value)
    return pa.array(out, type=NORMALIZED["list<string>"]), bad


def _parse_json_list(s: str) -> list[str] | None:
    try:
        value: Any = json.loads(s)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def describe(value: Any) -> str:
    """A short rendering of an offending value for a reject reason."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
