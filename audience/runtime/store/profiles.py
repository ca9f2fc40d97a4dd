"""Profiles: one encoded row per contact, upserted field by field.

The profile table of a version has a row per contact known when it was
written (row i = contact code i) and, per profile property, ``v:NAME`` and
``m:NAME`` columns as in encode.py (the mask is always stored here).  An
ingest sets, for each contact and field, the last non-null value the batch
gives and leaves every other field as it was; a null never clears a field
(CSV and Parquet cannot tell "not given" from null).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from audience import lazy_compute as pc
from audience.runtime.store.encode import _DTYPE, KIND, column_view, encode_column, missing_column
from audience.snapshot import Column, dictionary_key

if TYPE_CHECKING:
    from audience.runtime.store.dictionaries import DictState

# Upserts of at least this many rows encode their columns on two threads.
PARALLEL_ROWS = 100_000


def last_per_contact(contacts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(contact codes, input positions) of the last occurrence of each contact,
    positions ascending."""
    rev = contacts[::-1]
    uniq, first_in_rev = np.unique(rev, return_index=True)
    pos = len(contacts) - 1 - first_in_rev
    order = np.argsort(pos, kind="stable")
    return uniq[order], pos[order]


def upsert(
    old: pa.Table | None,
    n_old: int,
    n_new: int,
    contacts: np.ndarray,
    updates: pa.Table,
    profile_types: Mapping[str, str],
    dicts: DictState,
    merge_lists: Collection[str] = (),
) -> pa.Table:
    """``merge_lists``: list properties whose given values are added to the
    stored list (those not in it yet, in order) instead of replacing it."""
    # A batch naming each contact once (the usual profile file) needs no
    # "last row per contact" sort per column: every present value is chosen.
    distinct = _distinct(contacts, n_new)

    def column(item: tuple[str, str]) -> tuple[pa.Array, pa.Array]:
        name, ftype = item
        return _upsert_column(
            old, n_old, n_new, contacts, updates, name, ftype, dicts, merge_lists, distinct
        )

    items = list(profile_types.items())
    if len(contacts) >= PARALLEL_ROWS and len(items) > 1:
        # The columns are independent (each its own dictionary), and their
        # hashing and Arrow work releases the GIL: two cores share them.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="profile-upsert") as pool:
            done = list(pool.map(column, items))
    else:
        done = [column(item) for item in items]
    cols: dict[str, pa.Array] = {}
    for (name, _), (values, valid) in zip(items, done, strict=True):
        cols[f"v:{name}"] = values
        cols[f"m:{name}"] = valid
    if not cols:
        return pa.table({"rows": pa.array(np.zeros(n_new, dtype=np.uint8))})
    return pa.table(cols)


def _upsert_column(
    old: pa.Table | None,
    n_old: int,
    n_new: int,
    contacts: np.ndarray,
    updates: pa.Table,
    name: str,
    ftype: str,
    dicts: DictState,
    merge_lists: Collection[str],
    distinct: bool,
) -> tuple[pa.Array, pa.Array]:
    """One profile property's (values, mask) columns after the upsert."""
    kind = KIND[ftype]
    base = column_view(old, name, ftype, n_old) if old is not None else missing_column(kind, 0)
    arr = updates.column(name).combine_chunks() if name in updates.column_names else None
    if arr is not None and arr.null_count < len(arr):
        all_present = arr.null_count == 0
        present = (
            np.ones(len(arr), dtype=bool)
            if all_present
            else arr.is_valid().to_numpy(zero_copy_only=False)
        )
        if kind == "list" and name in merge_lists:
            # every value given for a contact counts, not only its last row
            chosen, who = _gather(arr, present, contacts)
        elif distinct:
            chosen = arr if all_present else arr.filter(pa.array(present))
            who = contacts if all_present else contacts[present]
        else:
            who, pos = last_per_contact(contacts[present])
            chosen = arr.filter(pa.array(present)).take(pa.array(pos))
        enc = encode_column(chosen, ftype, dictionary_key("profile", name), dicts, name)
        new_values = enc[f"v:{name}"]
        if kind == "list" and name in merge_lists:
            new_values = _union(base, n_old if old is not None else 0, who, new_values)
    else:
        who, new_values = np.empty(0, np.int64), None
    n_base = n_old if old is not None else 0
    valid = np.zeros(n_new, dtype=bool)
    valid[:n_base] = base.valid if base.valid is not None else True
    if kind == "list":
        values = _merge_lists(base, n_old, n_new, who, new_values)
    else:
        full: np.ndarray = np.zeros(n_new, dtype=_DTYPE[kind])
        full[: len(base.values)] = base.values
        if new_values is not None:
            full[who] = new_values.to_numpy(zero_copy_only=False)
        values = pa.array(full.view(np.uint8) if kind == "bool" else full)
    valid[who] = True
    return values, pa.array(valid.view(np.uint8))


def _distinct(contacts: np.ndarray, n: int) -> bool:
    """Whether no contact code (0 <= code < n) occurs twice."""
    if len(contacts) > n:
        return False
    return len(contacts) == 0 or int(np.bincount(contacts, minlength=n).max()) <= 1


def _gather(
    arr: pa.Array, present: np.ndarray, contacts: np.ndarray
) -> tuple[pa.Array, np.ndarray]:
    """One list per contact given: all its rows' values, concatenated in row
    order (the rows grouped by a stable sort on the contact)."""
    rows = np.flatnonzero(present)
    by_contact = np.argsort(contacts[rows], kind="stable")
    ordered = contacts[rows][by_contact]
    lists = arr.take(pa.array(rows[by_contact]))
    who, starts = np.unique(ordered, return_index=True)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False)
    ends = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ends[1:])
    offsets = ends[np.append(starts, len(ordered))].astype(np.int32)
    joined = pa.ListArray.from_arrays(pa.array(offsets), pc.list_flatten(lists))
    return joined.cast(arr.type), who


def _segments(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions ``starts[k] .. starts[k] + lengths[k]`` for every k, in order."""
    total = int(lengths.sum())
    before = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=before[1:])
    return np.arange(total, dtype=np.int64) + np.repeat(starts - before, lengths)


def _union(base: Column, n_base: int, who: np.ndarray, given: pa.Array) -> pa.Array:
    """Each contact's stored codes, then the given ones it lacks (in order,
    each once): grouped, and deduplicated on (contact, code) keys."""
    k = len(who)
    stored_len = np.zeros(k, dtype=np.int64)
    stored_start = np.zeros(k, dtype=np.int64)
    has = who < n_base
    if base.valid is not None:
        has[has] = base.valid[who[has]]
    if has.any():
        assert base.offsets is not None
        stored_start[has] = base.offsets[who[has]]
        stored_len[has] = base.offsets[who[has] + 1] - stored_start[has]
    s_codes = (
        np.asarray(base.values, dtype=np.int64)[_segments(stored_start, stored_len)]
        if stored_len.any()
        else np.zeros(0, np.int64)
    )
    s_grp = np.repeat(np.arange(k, dtype=np.int64), stored_len)
    g_len = pc.fill_null(pc.list_value_length(given), 0).to_numpy(zero_copy_only=False)
    g_codes = pc.list_flatten(given).to_numpy(zero_copy_only=False).astype(np.int64)
    g_grp = np.repeat(np.arange(k, dtype=np.int64), g_len)
    width = int(max(s_codes.max(initial=0), g_codes.max(initial=0))) + 1
    s_key, g_key = s_grp * width + s_codes, g_grp * width + g_codes
    _, first = np.unique(g_key, return_index=True)
    keep = np.zeros(len(g_key), dtype=bool)
    keep[first] = True
    keep &= ~np.isin(g_key, s_key)
    # stored first, then the given kept, each group's in order (a stable sort)
    grp = np.concatenate([s_grp, g_grp[keep]])
    codes = np.concatenate([s_codes, g_codes[keep]])
    order = np.argsort(grp, kind="stable")
    offsets = np.zeros(k + 1, dtype=np.int32)
    np.cumsum(np.bincount(grp, minlength=k), out=offsets[1:])
    values = pa.array(codes[order].astype(np.int32))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _merge_lists(
    base: Column, n_old: int, n_new: int, who: np.ndarray, new_values: pa.Array | None
) -> pa.Array:
    assert base.offsets is not None
    old_offsets = np.asarray(base.offsets, dtype=np.int32)
    if len(old_offsets) == 0:
        old_offsets = np.zeros(1, dtype=np.int32)
    # Pad the old lists to n_new contacts with empty lists.
    pad = np.full(n_new - (len(old_offsets) - 1), old_offsets[-1], dtype=np.int32)
    offsets = np.concatenate([old_offsets, pad])
    old = pa.ListArray.from_arrays(pa.array(offsets), pa.array(base.values, type=pa.int32()))
    if new_values is None:
        return _relist(old)
    idx = np.arange(n_new, dtype=np.int64)
    idx[who] = n_new + np.arange(len(who))
    merged = pa.concat_arrays([old, new_values.cast(old.type)]).take(pa.array(idx))
    return _relist(merged)


def _relist(col: pa.Array) -> pa.Array:
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(col) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pc.list_flatten(col))


def profile_columns(
    table: pa.Table | None, rows: int, n_contacts: int, profile_types: Mapping[str, str]
) -> dict[str, Column]:
    """Snapshot columns aligned with the contacts: views when the table covers
    every contact, padded copies when contacts arrived later through events."""
    out: dict[str, Column] = {}
    for name, ftype in profile_types.items():
        kind = KIND[ftype]
        if table is None or rows == 0:
            out[name] = missing_column(kind, n_contacts)
            continue
        col = column_view(table, name, ftype, rows)
        if rows < n_contacts:
            col = _pad(col, n_contacts)
        out[name] = col
    return out


def _pad(col: Column, n: int) -> Column:
    rows = len(col.valid) if col.valid is not None else len(col.values)
    valid = np.zeros(n, dtype=bool)
    valid[:rows] = True if col.valid is None else col.valid
    if col.kind == "list":
        assert col.offsets is not None
        offsets = np.concatenate([col.offsets, np.full(n - rows, col.offsets[-1], dtype=np.int32)])
        return Column(col.kind, col.values, valid, offsets)
    values = np.zeros(n, dtype=col.values.dtype)
    values[:rows] = col.values
    return Column(col.kind, values, valid)
