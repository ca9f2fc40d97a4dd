"""Ingest into a sharded node: each source batch is checked once here, split
by contact, and each shard's part handed to that shard's own ingest.

Duplicates are decided for the node, as one store decides them: an event
whose id any shard holds already, or that an earlier valid row of the input
carries, is dropped, whichever contact it names (the same id with two
contacts lands in two shards otherwise).  Each shard's lookup is made once
per ingest (NodeIds), and a shard takes its parts' ids without looking them
up again.  Each batch's parts land (one ingest per shard) before the next
batch is checked.  Rejected rows are all
kept by shard 0, in input order.  The shards land one after the other: a
crash part way (or an input unreadable part way) leaves some batches' parts
in; ingesting the input again is harmless (duplicate events are dropped,
profiles are upserted).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from audience.runtime.shards.layout import shard_of
from audience.runtime.store.dedup import SPILL_IDS, IdIndex, SortedIds, sort_ids, take_chunked
from audience.runtime.store.encode import event_property_types, one_array
from audience.runtime.store.errors import IngestReport
from audience.runtime.store.sources import Batch, Source
from audience.runtime.store.store import _progress
from audience.runtime.store.validate import Checked, validate_events, validate_profiles

if TYPE_CHECKING:
    from audience.runtime.shards.store import ShardedStore


def ingest_events(node: ShardedStore, source: Any, progress: bool = False) -> IngestReport:
    if node.count == 1:
        return node.shard(0).ingest_events(source, progress=progress)
    src = node.shard(0).open_input(source, "events")
    props = event_property_types(node.schema)
    report = IngestReport()
    known = NodeIds(node)
    for batch in _progress(src.batches, src.total, src.name, progress):
        checked = validate_events(batch.table, node.schema, props, batch.pre)
        keep = known.first_unknown(one_array(checked.table.column("id")))
        report.duplicates += int(len(keep) - keep.sum())
        _land(node, src.name, batch, checked, keep, "events", (), report)
    return report


def ingest_profiles(
    node: ShardedStore, source: Any, merge_lists: Collection[str], progress: bool = False
) -> IngestReport:
    if node.count == 1:
        return node.shard(0).ingest_profiles(source, merge_lists=merge_lists, progress=progress)
    src = node.shard(0).open_input(source, "profiles")
    report = IngestReport()
    for batch in _progress(src.batches, src.total, src.name, progress):
        checked = validate_profiles(batch.table, node.schema, batch.pre)
        keep = np.ones(checked.table.num_rows, dtype=bool)
        _land(node, src.name, batch, checked, keep, "profiles", merge_lists, report)
    return report


class NodeIds:
    """Which event ids a sharded node holds, asked batch after batch by one
    ingest into it (under the node's lock, so nothing else lands meanwhile).
    Each shard's lookup (its duplicate index read, its filter built) is made
    once and used for the next batches too; the ids let through since it was
    made are an index of their own, in memory.  Once they are ``SPILL_IDS``,
    the lookups are made again (they then hold those ids: every batch's parts
    land before the next batch is checked), so memory stays bounded."""

    def __init__(self, node: ShardedStore) -> None:
        self.node = node
        self._lookups: list[Callable[[pa.Array, SortedIds | None], np.ndarray]] = []
        self._ids: list[pa.Array] = []  # the ids let through, batch by batch
        self._starts = np.zeros(0, dtype=np.int64)  # each batch's first position
        self._count = 0
        self.seen = IdIndex([], self._fetch)
        self.lookups_made = 0  # how many times the shards' lookups were made

    def _renew(self) -> None:
        """The shards' lookups as the shards are now; nothing seen besides."""
        self._lookups = [store.id_lookup() for store in self.node.shards()]
        self.lookups_made += 1
        self._ids, self._starts, self._count = [], np.zeros(0, dtype=np.int64), 0
        self.seen = IdIndex([], self._fetch)

    def first_unknown(self, ids: pa.Array) -> np.ndarray:
        """Per valid row: it has no id (never a duplicate), or its id is
        neither held by a shard nor on an earlier row (of any batch)."""
        if pa.types.is_dictionary(ids.type):
            ids = ids.dictionary_decode()
        present = np.flatnonzero(ids.is_valid().to_numpy(zero_copy_only=False))
        keep = np.ones(len(ids), dtype=bool)
        if not len(present):
            return keep
        named = ids if len(present) == len(ids) else ids.take(pa.array(present))
        # hashed and sorted once, for every shard's lookup and this ingest's
        hashed = sort_ids(named)
        if not self._lookups or self._count >= SPILL_IDS:
            self._renew()
        fresh = self.seen.fresh(hashed, self._count)  # nor on an earlier row
        let = named.filter(pa.array(fresh))
        if len(let):
            self._ids.append(let)
            self._starts = np.append(self._starts, self._count)
            self._count += len(let)
        for known in self._lookups:
            fresh &= ~known(named, hashed)
        keep[present[~fresh]] = False
        return keep

    def _fetch(self, locs: np.ndarray) -> pa.Array:
        return take_chunked(self._starts, self._ids.__getitem__, locs)


def _land(
    node: ShardedStore,
    name: str,
    batch: Batch,
    checked: Checked,
    keep: np.ndarray,
    kind: str,
    merge_lists: Collection[str],
    report: IngestReport,
) -> None:
    """Hand each shard its rows of ``batch`` (the valid ones ``keep`` keeps;
    shard 0 the rejected ones too) and add up what the shards report."""
    valid = checked.table.filter(pa.array(keep)) if not keep.all() else checked.table
    rows = checked.rows[keep]
    shards = shard_of(one_array(valid.column("contact_id")), node.count)
    bad = np.array(sorted(checked.problems), dtype=np.int64)
    for k in range(node.count):
        parts: list[Batch] = []
        if k == 0 and len(bad):
            pre = {j: checked.problems[int(i)] for j, i in enumerate(bad)}
            parts.append(_part(batch, bad, batch.table.take(pa.array(bad)), pre))
        mine = np.flatnonzero(shards == k)
        if len(mine):
            parts.append(_part(batch, rows[mine], valid.take(pa.array(mine))))
        if not parts:
            continue
        part = Source(name, iter(parts), None)
        store = node.shard(k)
        if kind == "events":  # their duplicates decided above, over every shard
            got = store.ingest_checked_events(part)
        else:
            got = store.ingest_profiles(part, merge_lists=merge_lists)
        report.merge(got)
        if got.triggers is not None:
            if report.triggers is None:
                report.triggers = got.triggers
            else:
                report.triggers.merge(got.triggers)


def _part(
    batch: Batch, rows: np.ndarray, table: pa.Table, pre: dict[int, Any] | None = None
) -> Batch:
    """The rows ``rows`` of ``batch`` (``table``: those rows, raw or checked)."""
    return Batch(
        table,
        batch.lines[rows],
        batch.label,
        lambda i: batch.raw(int(rows[i])),
        pre or {},
        units=len(rows),
    )
