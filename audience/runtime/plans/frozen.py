"""A run's audience, frozen: the contacts with an email, their email and the
profile fields their delivery uses, as one Arrow table (columnar all the
way: a million contacts cost no Python object each)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audience.dsl.ast import MapValue, Ref
from audience.dsl.ast_sending import DeliveryDef
from audience.runtime.triggers.batch import column_value
from audience.snapshot import Snapshot, dictionary_key

FIELD_PREFIX = "f."

# A store's dictionaries (contact ids, emails) as Arrow arrays, kept while
# their sequence lives: a scheduler's next run of the same version reuses them.
_arrays: dict[int, tuple[Sequence[str], pa.Array]] = {}
_arrays_lock = threading.Lock()


def strings(values: Sequence[str]) -> pa.Array:
    """``values`` as an Arrow string array (the store's own when it has one,
    else converted once and cached by the sequence)."""
    source = getattr(values, "arrow", None)
    if isinstance(source, pa.Array) and len(source) == len(values):
        return source
    with _arrays_lock:
        hit = _arrays.get(id(values))
        if hit is not None and hit[0] is values:
            return hit[1]
    arr = pa.array(values if isinstance(values, list) else list(values), pa.string())
    with _arrays_lock:
        if len(_arrays) >= 16:
            _arrays.clear()
        _arrays[id(values)] = (values, arr)
    return arr


def profile_values(snapshot: Snapshot, name: str, idx: np.ndarray) -> pa.Array:
    """Profile property ``name`` of the dense contacts ``idx`` (null: missing)."""
    col = snapshot.profile.get(name)
    n = len(idx)
    if col is None:
        return pa.nulls(n)
    d = snapshot.dictionaries.get(dictionary_key("profile", name))
    if col.kind == "code" and d is not None:
        codes = np.asarray(col.values)[idx].astype(np.int64)
        mask = None if col.valid is None else ~np.asarray(col.valid)[idx]
        return strings(d.values).take(pa.array(codes, mask=mask))
    return pa.array([column_value(col, int(i), d) for i in idx.tolist()])


def field_items(delivery: DeliveryDef) -> tuple[tuple[str, Any], ...]:
    return delivery.fields.items if isinstance(delivery.fields, MapValue) else ()


def frozen_table(
    snapshot: Snapshot, idx: np.ndarray, delivery: DeliveryDef
) -> tuple[pa.Table, int]:
    """The audience with an email (contact, email, profile fields), and how
    many contacts had none."""
    idx = np.asarray(idx, dtype=np.int64)
    emails = pc.utf8_trim_whitespace(profile_values(snapshot, "email", idx).cast(pa.string()))
    has = pc.fill_null(pc.not_equal(emails, ""), False)
    columns: dict[str, pa.Array] = {
        "contact_id": strings(snapshot.contact_ids).take(pa.array(idx)),
        "email": emails,
    }
    for key, value in field_items(delivery):
        if isinstance(value, Ref) and value.scope == "profile":
            columns[FIELD_PREFIX + key] = profile_values(snapshot, value.name, idx)
    table = pa.table(columns).filter(has)
    return table, len(idx) - table.num_rows


@dataclass(frozen=True)
class FrozenAudience:
    table: pa.Table  # frozen_table's: the members with an email
    members: int  # the audience's size
    without: int  # members without an email
    no_email: list[str]  # some of those, from the first members (with ``sample``)


def freeze_audience(
    store: Any,
    segment: Any,
    at_ms: int,
    delivery: DeliveryDef,
    sample: int = 0,
    cluster: Any = None,
) -> FrozenAudience:
    """A compiled segment's audience at ``at_ms`` over the store's newest
    version, frozen.  On a sharded node (audience.runtime.shards) every
    shard's members, its own contacts: the shards' frozen tables just add up.
    With ``cluster`` (an ``audience.dist.ClusterStore`` over that node) the
    shards' workers decide the members and send back their dense indexes;
    their emails and fields are read here, from each shard's version at least
    as new as the one the workers read (a contact's index never changes)."""
    decided = None if cluster is None else cluster.dense_members(segment.program, at_ms)
    snapshots = store.snapshots()
    tables: list[pa.Table] = []
    no_email: list[str] = []
    members = without = 0
    for k, snapshot in enumerate(snapshots):
        if decided is None:
            idx = segment.compiled.evaluate(snapshot, at_ms).indexes()
        else:
            version, idx = decided[k]
            if snapshot.version < version:  # versions only grow: another store's shards
                raise ValueError(
                    f"shard {k} is at version {snapshot.version}, its worker's {version}"
                )
        part, lacking = frozen_table(snapshot, idx, delivery)
        tables.append(part)
        members, without = members + len(idx), without + lacking
        if sample and len(no_email) < sample:
            # a sample of those without an email, from the audience's first contacts
            first = idx[: sample * 50]
            has = set(frozen_table(snapshot, first, delivery)[0].column("contact_id").to_pylist())
            ids = strings(snapshot.contact_ids).take(first).to_pylist()
            no_email += [c for c in ids if c not in has]
    return FrozenAudience(pa.concat_tables(tables), members, without, no_email)
