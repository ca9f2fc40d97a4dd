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
        # a sharded node: every shard's snapshot (each holds its own contacts)
        snapshots = store.snapshots()
        cond = segment_condition({s.name for s in store.list_segments()}, sync.segment)
        segment = store.segment_compiler.compile(cond, filename=f"<sync {sync.name!r}>")
    except Exception as exc:  # a DslError, a node gone or changed: the job fails saying why
        raise EligibleError(f"the sync's segment cannot be evaluated: {exc}") from None
    members = Members(
        [(snap, segment.compiled.evaluate(snap, now_ms).indexes()) for snap in snapshots]
    )
    counts: dict[str, Any] = {"segment": len(members)}
    if sync.consent_field:
        ok = members.bools(sync.consent_field)
        counts["no_consent"] = int((~ok).sum())
        members = members.filter(ok)
    emails = phones = None
    if sync.email_field:
        emails = members.strings(sync.email_field)
        off = suppressed_mask(root, emails)
        counts["suppressed"] = int(off.sum())
        if off.any():
            members, keep = members.filter(~off), pa.array(~off)
            emails = emails.filter(keep)
    invalid: dict[str, int] = {}
    columns: dict[str, pa.Array] = {}
    if emails is not None:
        h = hash_emails(emails)
        invalid.update({f"email_{k}": v for k, v in h.invalid.items()})
        columns["email"] = h.hashes
    if sync.phone_field:
        phones = members.strings(sync.phone_field)
        h = hash_phones(phones, sync.country_code)
        invalid.update({f"phone_{k}": v for k, v in h.invalid.items()})
        columns["phone"] = h.hashes
    some = np.zeros(len(members), dtype=bool)
    for col in columns.values():
        some |= ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    counts["without_keys"] = int((~some).sum())
    counts["invalid"] = invalid
    keep = pa.array(some)
    rows = rows_table({n: c.filter(keep) for n, c in columns.items()})
    counts["eligible"] = rows.num_rows
    return Eligible(rows, counts)


class Members:
    """The segment's members: dense indexes per snapshot (one for a node, one
    per shard of a sharded node), their fields read a column at a time and
    laid side by side in that order."""

    def __init__(self, parts: list[tuple[Snapshot, np.ndarray]]) -> None:
        self.parts = [(snap, np.asarray(idx, dtype=np.int64)) for snap, idx in parts]

    def __len__(self) -> int:
        return sum(len(idx) for _, idx in self.parts)

    def filter(self, keep: np.ndarray) -> Members:
        """The members where ``keep`` (one bool per member, in order) holds."""
        out, start = [], 0
        for snap, idx in self.parts:
            out.append((snap, idx[keep[start : start + len(idx)]]))
            start += len(idx)
        return Members(out)

    def bools(self, name: str) -> np.ndarray:
        parts = [_bools(snap, name, idx) for snap, idx in self.parts]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)

    def strings(self, name: str) -> pa.StringArray:
        parts = [_strings(snap, name, idx) for snap, idx in self.parts]
        return pa.concat_arrays(parts) if parts else pa.array([], pa.string())


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
