"""What a query asks of a cluster's shards beyond their members: each
shard's explain report (its counts per rule, step and block, summed on the
client into the node's report), or its members' dense indexes (for a client
that reads their profile fields from the shards itself, as ``eval --fields``
and a plan's preview do).

It runs on the worker that owns the shards, with the shards that worker
keeps open (audience.dist.worker), one direct call a worker per query (a
task when the call fails), as a plain query's does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from audience.dist.cluster import ClusterError
from audience.runtime.evaluate import Audience
from audience.runtime.shards.program import ShardProgram, run_on
from audience.runtime.shards.store import ShardRef
from audience.runtime.shards.union import merge_explain, union_mask
from audience.snapshot import LazyStrings

if TYPE_CHECKING:
    from audience.dist.query import ClusterStore
    from audience.snapshot import Snapshot


@dataclass(frozen=True)
class ShardAnswer:
    """One shard's answer to a detailed query."""

    index: int
    members: pa.Array  # contact ids; with ``dense``, dense indexes (int64)
    version: int  # the shard's version it answered from
    contacts: int  # the shard's contacts in that version
    report: dict[str, Any] | None  # its explain report, with ``explain``


def answer_shards(
    refs: tuple[ShardRef, ...], program: ShardProgram, as_of_ms: int, dense: bool, explain: bool
) -> list[ShardAnswer]:
    """One worker's part of a query: every shard it owns, from its newest version."""
    from audience.dist import worker

    worker.use_kernel_threads()
    out = []
    for ref in refs:
        store, _ = worker.shard(ref)
        snap = store.snapshot()
        mask, report = run_on(snap, program, int(as_of_ms), explain=explain)
        if dense:
            members = pa.array(np.flatnonzero(mask), pa.int64())
        else:
            members = worker.ids_of(snap.contact_ids, mask)
        out.append(ShardAnswer(ref.index, members, snap.version, len(snap.contact_ids), report))
    return out


def ask(
    cluster: ClusterStore, program: ShardProgram, now_ms: int, *, dense: bool, explain: bool
) -> list[ShardAnswer]:
    """Every shard's answer, in shard order: each owner of shards called
    directly, as a plain query's are (the task path for a failed call)."""
    answers, _ = cluster.answers("details", program, (now_ms, dense, explain))
    return answers


def explained(cluster: ClusterStore, program: ShardProgram, now_ms: int) -> tuple[Audience, int]:
    """The audience with its explain report: the shards' counts summed, as
    the in-process sharded path sums them (the same numbers as one store
    holding every contact); and the node's version it was read from (the
    shards' versions summed, as ``ShardedStore.version_of``)."""
    t0 = time.perf_counter()
    answers = ask(cluster, program, now_ms, dense=False, explain=True)
    parts = [a.members for a in answers if len(a.members)]
    ids = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
    reports = [a.report for a in answers if a.report is not None]
    report = merge_explain(reports, (time.perf_counter() - t0) * 1000)
    report["plan"] = program.plan_text
    n = len(ids)
    contacts = sum(a.contacts for a in answers)
    members = LazyStrings(n, ids.to_pylist, arrow=ids)
    audience = Audience(np.ones(n, dtype=np.bool_), members, now_ms, report, contacts=contacts)
    return audience, sum(a.version for a in answers)


def over_snapshots(
    cluster: ClusterStore, program: ShardProgram, now_ms: int, *, explain: bool = False
) -> tuple[Audience, list[Snapshot]]:
    """The audience decided by the workers, over this process's snapshots of
    the shards (taken once they answered, so each is at least as new as the
    version its worker read: a contact's dense index never changes), and
    those snapshots: the caller reads the members' profiles from them, as
    from an in-process sharded audience."""
    t0 = time.perf_counter()
    answers = ask(cluster, program, now_ms, dense=True, explain=explain)
    snaps = cluster.sharded.snapshots()
    masks = []
    for answer, snap in zip(answers, snaps, strict=True):
        if snap.version < answer.version:  # versions only grow: not the same shards
            raise ClusterError(
                f"shard {answer.index} is at version {snap.version} here, "
                f"its worker read version {answer.version}"
            )
        mask = np.zeros(snap.n_contacts, dtype=np.bool_)
        mask[answer.members.to_numpy(zero_copy_only=False)] = True
        masks.append(mask)
    report = None
    if explain:
        reports = [a.report for a in answers if a.report is not None]
        report = merge_explain(reports, (time.perf_counter() - t0) * 1000)
        report["plan"] = program.plan_text
    ids = cluster.sharded.segment_compiler.union_ids.of(snaps)
    return Audience(union_mask(masks), ids, now_ms, report), snaps
