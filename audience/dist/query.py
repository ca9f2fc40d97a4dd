"""A sharded store evaluated on a Dask cluster.

A query is compiled once, here on the client; its program travels to the
workers as plain data.  Each worker holding shards is called directly (over
its channel, a plain socket: dist/channel_calls.py; or, for a worker without
one, its Dask comm handler: dist/direct.py), all at once, and
answers with each shard's members as Arrow; the members are merged here.
Shards are disjoint by contact, so the merge is a concatenation.

When a direct call fails (the worker killed, gone or hung), that worker's
shards go the task path: one task per worker through the scheduler (soft
pinning: another worker may take it when the owner is gone), whose retries
reopen the shards elsewhere.  The answer is the same either way.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from audience.dist.channel_calls import channels
from audience.dist.cluster import ALLOWED_FAILURES, ClusterError, LocalOptions, connect
from audience.dist.direct import Timeouts, membership
from audience.dist.worker import ShardResult, direct_functions, keep_freed_memory, ping, stats
from audience.runtime.evaluate import AsOf, Audience, parse_as_of
from audience.runtime.node import ShardedNode
from audience.runtime.shards import ShardProgram, ShardRef
from audience.snapshot import LazyStrings


@dataclass(frozen=True)
class QueryTimes:
    """Where one query's time went (ms): each shard inside its worker, the
    merge on the client, and the rest (scheduling, transfer).  Compiling is
    not in it: it happens once, in ``compile``."""

    shards_ms: tuple[float, ...]  # each shard's evaluation inside its worker
    opens_ms: tuple[float, ...]  # each shard's opening in this query (0 once resident)
    merge_ms: float
    total_ms: float
    worker_pids: tuple[int, ...]  # the process that answered each shard
    versions: tuple[int, ...] = ()  # the version each shard answered from, in shard order
    # each direct call that failed ("address: error"), its shards then
    # answered by the task path; empty when every shard came directly
    failures: tuple[str, ...] = ()

    @property
    def busiest_worker_ms(self) -> float:
        """The longest time a worker spent on its shards (opening and
        evaluating them, one after the other)."""
        per: dict[int, float] = {}
        for pid, o, e in zip(self.worker_pids, self.opens_ms, self.shards_ms, strict=True):
            per[pid] = per.get(pid, 0.0) + o + e
        return max(per.values(), default=0.0)

    @property
    def overhead_ms(self) -> float:
        """The query's time but its busiest worker's shards and the merge:
        the calls, the program out and the members back."""
        return self.total_ms - self.busiest_worker_ms - self.merge_ms


@dataclass
class ClusterSegment:
    """A segment compiled once for a cluster store; ``evaluate`` runs it on
    every shard."""

    store: ClusterStore
    text: str
    program: ShardProgram
    compile_ms: float = 0.0
    last_times: QueryTimes | None = field(default=None, repr=False)

    def evaluate(self, as_of: AsOf = None) -> Audience:
        now_ms = parse_as_of(as_of, self.program.timezone)
        audience, self.last_times = self.store.run(self.program, now_ms)
        return audience


class ClusterStore:
    """A sharded store whose segments are evaluated by a Dask cluster."""

    def __init__(
        self,
        sharded: ShardedNode,
        client: Any,
        local: Any | None = None,
        *,
        owned: bool = False,
        timeouts: Timeouts | None = None,
        direct: bool = True,
    ) -> None:
        self.sharded = sharded
        self.client = client
        # the members' ids come back in fresh buffers, megabytes for a
        # shard's hundreds of thousands of ids, which glibc's malloc maps
        # anew and returns at their end: at 50M events the client faulted in
        # 950 to 2,250 pages a dense query, 2 to 3 ms of it (none once kept).
        # The thresholds set are where glibc's own adaptive ones end.
        keep_freed_memory()
        self.members = membership(client)
        self.channels = channels(client)
        self.timeouts = timeouts or Timeouts()
        # False: every query by the task path (a client that cannot reach
        # the workers, only the scheduler; or to measure the difference)
        self.direct = direct
        self._local = local  # the local cluster we started, closed with us
        self._owned = owned or local is not None  # the client is ours to close
        self._queries = itertools.count()

    @classmethod
    def open(
        cls,
        path: str | Path,
        cluster: Any,
        node: str = "main",
        options: LocalOptions | None = None,
    ) -> ClusterStore:
        return cls.on(ShardedNode.open(path, node), cluster, options)

    @classmethod
    def on(
        cls, sharded: ShardedNode, cluster: Any, options: LocalOptions | None = None
    ) -> ClusterStore:
        """``sharded`` on ``cluster`` (see ``connect``); a client made here is
        closed with the store, a client given is left open."""
        client, local = connect(cluster, options)
        return cls(sharded, client, local, owned=client is not cluster)

    def refs(self) -> list[ShardRef]:
        return self.sharded.refs()

    def compile(self, text: str, *, filename: str = "<segment>") -> ClusterSegment:
        """Parse, check and compile once, here (against the node's schema and
        the store's saved segments); raises ``DslError``."""
        t0 = time.perf_counter()
        program = self.sharded.compile_program(text, filename=filename)
        return ClusterSegment(self, text, program, (time.perf_counter() - t0) * 1000)

    def evaluate(self, program: ShardProgram, as_of: AsOf = None) -> Audience:
        """The audience of a compiled program as of ``as_of``, from every shard."""
        return self.run(program, parse_as_of(as_of, program.timezone))[0]

    def owners(
        self, refs: Sequence[ShardRef] | None = None, exclude: frozenset[str] = frozenset()
    ) -> dict[ShardRef, str]:
        """Each shard's worker: the workers in address order (but those in
        ``exclude``, unless that leaves none), dealt round the shards, so the
        same workers own the same shards query after query."""
        workers = [w for w in self.members.workers() if w not in exclude]
        workers = workers or list(self.members.workers())
        every = self.refs()
        mine = {ref: workers[i % len(workers)] for i, ref in enumerate(every)}
        return {ref: mine[ref] for ref in (every if refs is None else refs)}

    def run(
        self, program: ShardProgram, now_ms: int, refs: Sequence[ShardRef] | None = None
    ) -> tuple[Audience, QueryTimes]:
        """Evaluate ``program`` on every shard (or on ``refs``) as of ``now_ms``."""
        t0 = time.perf_counter()
        results, failures = self._gather(program, now_ms, refs, dense=False)
        t1 = time.perf_counter()
        audience = union(results, now_ms)
        t2 = time.perf_counter()
        times = QueryTimes(
            shards_ms=tuple(r.eval_ms for r in results),
            opens_ms=tuple(r.open_ms for r in results),
            merge_ms=(t2 - t1) * 1000,
            total_ms=(t2 - t0) * 1000,
            worker_pids=tuple(r.worker_pid for r in results),
            versions=tuple(r.version for r in results),
            failures=failures,
        )
        return audience, times

    def dense_members(self, program: ShardProgram, now_ms: int) -> list[tuple[int, np.ndarray]]:
        """Every shard's (version, dense indexes of its members), in shard
        order: for a client that reads the shards too (their indexes hold in
        that version and every later one)."""
        results, _ = self._gather(program, now_ms, None, dense=True)
        return [(r.version, r.members.to_numpy(zero_copy_only=False)) for r in results]

    def _gather(
        self, program: ShardProgram, now_ms: int, refs: Sequence[ShardRef] | None, *, dense: bool
    ) -> tuple[list[ShardResult], tuple[str, ...]]:
        """The shards' results, in shard order, and the direct calls that
        failed (their shards answered by the task path)."""
        return self.answers("members", program, (now_ms, dense), refs)

    def answers(
        self,
        fn: str,
        program: ShardProgram,
        args: tuple[Any, ...],
        refs: Sequence[ShardRef] | None = None,
    ) -> tuple[list[Any], tuple[str, ...]]:
        """Every shard's answer to ``fn`` (a name of
        ``worker.direct_functions``) with ``program`` and ``args`` (plain
        values), in shard order, and the
        direct calls that failed ("address: error"; those owners' shards
        then answered by the task path)."""
        if not self.direct:
            every = self.refs() if refs is None else refs
            return sorted(self._by_tasks(fn, program, args, every, frozenset()), key=_index), ()
        calls = {owner: tuple(mine) for owner, mine in self._by_owner(refs).items()}
        replies = self.channels.call_all(calls, fn, program, args, self.timeouts)
        results: list[Any] = []
        failed: dict[str, BaseException] = {}
        for owner, reply in replies.items():
            if isinstance(reply, BaseException):
                failed[owner] = reply
            else:
                results.extend(reply)
        if failed:
            # the scheduler decides who is in the cluster now; the failed
            # owners' shards go to the others as tasks (a hung worker may
            # still be listed)
            self.members.invalidate()
            redo = [ref for owner in failed for ref in calls[owner]]
            results.extend(self._by_tasks(fn, program, args, redo, frozenset(failed)))
        failures = tuple(f"{o}: {type(e).__name__}: {e}" for o, e in failed.items())
        return sorted(results, key=_index), failures

    def _by_tasks(
        self,
        fn: str,
        program: ShardProgram,
        args: tuple[Any, ...],
        refs: Sequence[ShardRef],
        exclude: frozenset[str],
    ) -> list[Any]:
        """The answers of ``refs`` from one task per worker, through the scheduler."""
        from distributed import KilledWorker

        run = direct_functions()[fn]
        tag = f"{uuid.uuid4().hex[:8]}-{next(self._queries)}"
        futures = [
            self.client.submit(
                run,
                tuple(mine),
                program,
                *args,
                key=f"audience-{fn}-{mine[0].index}-{tag}",
                workers=[owner],
                allow_other_workers=True,
                pure=False,
            )
            for owner, mine in self._by_owner(refs, exclude).items()
        ]
        try:
            return [r for part in self.client.gather(futures) for r in part]
        except KilledWorker as exc:
            raise ClusterError(
                f"a task of shards was given up after its worker died running it "
                f"{ALLOWED_FAILURES + 1} times: {exc}"
            ) from None

    def _by_owner(
        self, refs: Sequence[ShardRef] | None, exclude: frozenset[str] = frozenset()
    ) -> dict[str, list[ShardRef]]:
        out: dict[str, list[ShardRef]] = {}
        for ref, owner in self.owners(refs, exclude).items():
            out.setdefault(owner, []).append(ref)
        return out

    def round_trip_ms(self, refs: Sequence[ShardRef] | None = None) -> float:
        """One empty direct call to each worker holding shards, all at once:
        a query's round trip without its work."""
        t0 = time.perf_counter()
        self.channels.ping_all(list(self._by_owner(refs)), self.timeouts)
        return (time.perf_counter() - t0) * 1000

    def task_round_trip_ms(self, refs: Sequence[ShardRef] | None = None) -> float:
        """One empty task per worker, pinned as the task path's are: the scheduling alone."""
        t0 = time.perf_counter()
        futures = [
            self.client.submit(ping, key=f"audience-ping-{uuid.uuid4().hex}", workers=[w])
            for w in self._by_owner(refs)
        ]
        self.client.gather(futures)
        return (time.perf_counter() - t0) * 1000

    def worker_stats(self) -> dict[str, Any]:
        """Each worker's open shards, open counts and kernel counters."""
        out: dict[str, Any] = self.client.run(stats)
        return out

    def close(self) -> None:
        if self._owned:
            self.client.close()  # its channels with it (cluster.AudienceClient)
            self._owned = False
        if self._local is not None:
            self._local.close()
            self._local = None

    def __enter__(self) -> ClusterStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _index(answer: Any) -> int:
    index: int = answer.index
    return index


def union(results: list[ShardResult], now_ms: int) -> Audience:
    """The shards' members as one audience (every contact in it a member)."""
    parts = [r.members for r in results if len(r.members)]
    merged = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
    n = len(merged)
    ids = LazyStrings(n, merged.to_pylist, arrow=merged)
    contacts = sum(r.contacts for r in results)
    return Audience(np.ones(n, dtype=np.bool_), ids, now_ms, contacts=contacts)
