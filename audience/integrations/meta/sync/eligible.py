"""Who a sync uploads now: the node's contacts in its segment, with consent (the
consent field true: false or missing is no consent), not on the suppression list
(unsubscribed, bounced, complained), with at least one match key that normalizes;
their keys normalized and SHA-256 hashed (normalize.py), a column at a time.

The result is a table of hashed rows, one column per match key in the upload
schema's order ("" for a key a contact lacks) and a ``key`` column joining them,
on which the diff with the previous upload is computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audience.integrations.meta.normalize import hash_emails, hash_phones
from audience.integrations.meta.sync.definitions import Sync
from audience.integrations.meta.sync.service import segment_condition
from audience.runtime.plans.frozen import profile_values
from audience.snapshot import Snapshot

KEY = "key"


@dataclass(frozen=True)
class Eligible:
    rows: pa.Table  # one column per match key (lower-case names) and ``key``
    counts: dict[str, Any]


class EligibleError(ValueError):
    """The sync's segment or fields no longer work against the store."""


def rows_table(columns: dict[str, pa.Array]) -> pa.Table:
    """Hashed key columns ("" where unknown) with their ``key`` column, unique keys."""
    table = pa.table({n: pc.fill_null(a, "") for n, a in columns.items()})
    return unique_rows(with_key(table))


def with_key(table: pa.Table) -> pa.Table:
    """``table`` with its ``key`` column: the key columns joined (files keep them only)."""
    arrays = [table[c] for c in table.column_names if c not in (KEY, "op")]
    key = arrays[0] if len(arrays) == 1 else pc.binary_join_element_wise(*arrays, "|")
    return table.append_column(KEY, key)


def unique_rows(table: pa.Table) -> pa.Table:
    """The first row of each ``key`` (two contacts sharing an email upload one row)."""
    keys = table[KEY].combine_chunks() if isinstance(table[KEY], pa.ChunkedArray) else table[KEY]
    unique = pc.unique(keys)
    if len(unique) == len(keys):  # the usual case: no second pass
        return table
    first = pc.index_in(unique, value_set=keys).to_numpy(zero_copy_only=False)
    return table.take(pa.array(np.sort(first)))


def eligible(root: Path, sync: Sync, now_ms: int) -> Eligible:
    from audience.runtime.node import open_node
    from audience.runtime.tracking.suppression import suppressed_mask

    try:
        store = open_node(root, sync.node)
        snapshot = store.snapshot()
        cond = segment_condition({s.name for s in store.list_segments()}, sync.segment)
        segment = store.segment_compiler.compile(cond, filename=f"<sync {sync.name!r}>")
    except Exception as exc:  # a DslError, a node gone or changed: the job fails saying why
        raise EligibleError(f"the sync's segment cannot be evaluated: {exc}") from None
    idx = np.asarray(segment.compiled.evaluate(snapshot, now_ms).indexes(), dtype=np.int64)
    counts: dict[str, Any] = {"segment": len(idx)}
    if sync.consent_field:
        ok = _bools(snapshot, sync.consent_field, idx)
        counts["no_consent"] = int((~ok).sum())
        idx = idx[ok]
    emails = phones = None
    if sync.email_field:
        emails = _strings(snapshot, sync.email_field, idx)
        off = suppressed_mask(root, emails)
        counts["suppressed"] = int(off.sum())
        if off.any():
            idx, keep = idx[~off], pa.array(~off)
            emails = emails.filter(keep)
    invalid: dict[str, int] = {}
    columns: dict[str, pa.Array] = {}
    if emails is not None:
        h = hash_emails(emails)
        invalid.update({f"email_{k}": v for k, v in h.invalid.items()})
        columns["email"] = h.hashes
    if sync.phone_field:
        phones = _strings(snapshot, sync.phone_field, idx)
        h = hash_phones(phones, sync.country_code)
        invalid.update({f"phone_{k}": v for k, v in h.invalid.items()})
        columns["phone"] = h.hashes
    some = np.zeros(len(idx), dtype=bool)
    for col in columns.values():
        some |= ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    counts["without_keys"] = int((~some).sum())
    counts["invalid"] = invalid
    keep = pa.array(some)
    rows = rows_table({n: c.filter(keep) for n, c in columns.items()})
    counts["eligible"] = rows.num_rows
    return Eligible(rows, counts)


def _bools(snapshot: Snapshot, name: str, idx: np.ndarray) -> np.ndarray:
    """True where the bool field is true (false and missing: False)."""
    col = snapshot.profile.get(name)
    if col is None:
        return np.zeros(len(idx), dtype=bool)
    values = np.asarray(col.values)[idx].astype(bool)
    if col.valid is not None:
        values &= np.asarray(col.valid)[idx].astype(bool)
    return values


def _strings(snapshot: Snapshot, name: str, idx: np.ndarray) -> pa.StringArray:
    values = profile_values(snapshot, name, idx)
    return values.cast(pa.string())
