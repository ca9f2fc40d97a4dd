"""Segments of a sharded node: compiled once (against the node's schema and
the store's saved segments), evaluated by every shard, members united."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from audience.runtime.evaluate import AsOf, Audience, parse_as_of
from audience.runtime.shards.program import ShardProgram, run_on
from audience.runtime.shards.union import UnionIds, merge_explain, union_mask

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from audience.dsl.ast import Segment
    from audience.runtime.api import StoreSegment
    from audience.runtime.evaluate import CompiledSegment
    from audience.runtime.node import ShardedNode
    from audience.snapshot import Snapshot


class ShardedSegment:
    """A compiled segment bound to a sharded node: ``evaluate`` reads every
    shard's newest version and returns one ``Audience``."""

    def __init__(self, store: ShardedNode, bound: StoreSegment) -> None:
        self.store = store
        self.segment: Segment = bound.segment
        self.compiled: CompiledSegment = bound.compiled
        self.program = ShardProgram(
            self.compiled.program,
            self.compiled.timezone,
            self.compiled.schema_version,
            self.compiled.plan_text,
        )

    @property
    def name(self) -> str:
        return self.segment.name

    @property
    def plan_text(self) -> str:
        return self.compiled.plan_text

    def evaluate(self, as_of: AsOf = None, *, explain: bool = False) -> Audience:
        now_ms = parse_as_of(as_of, self.compiled.timezone)
        return self.evaluate_on(self.store.snapshots(), now_ms, explain=explain)

    def evaluate_on(
        self, snaps: Sequence[Snapshot], now_ms: int, *, explain: bool = False
    ) -> Audience:
        """The audience over the given snapshots, one per shard in order."""
        t0 = time.perf_counter()
        runs = [run_on(snap, self.program, now_ms, explain=explain) for snap in snaps]
        mask = union_mask([m for m, _ in runs])
        ids = self.store.segment_compiler.union_ids.of(snaps)
        report = None
        if explain:
            reports = [r for _, r in runs if r is not None]
            report = merge_explain(reports, (time.perf_counter() - t0) * 1000)
            report["plan"] = self.plan_text
        return Audience(mask, ids, now_ms, report)

    def __repr__(self) -> str:
        return f"<ShardedSegment {self.segment.name!r} over {self.store.count} shards>"


class ShardedCompiler:
    """Compiles through shard 0's compiler (the shards share the node's
    schema and the store's definitions, so any shard compiles alike) and
    keeps one ShardedSegment per compiled segment."""

    def __init__(self, store: ShardedNode) -> None:
        self.store = store
        self.union_ids = UnionIds()
        self._lock = threading.Lock()
        self._bound: dict[int, tuple[StoreSegment, ShardedSegment]] = {}

    def _wrap(self, bound: StoreSegment) -> ShardedSegment:
        with self._lock:
            hit = self._bound.get(id(bound))
            if hit is not None and hit[0] is bound:
                return hit[1]
            out = ShardedSegment(self.store, bound)
            if len(self._bound) >= 256:
                self._bound.clear()
            self._bound[id(bound)] = (bound, out)
            return out

    def compile(self, text: str, *, filename: str = "<segment>") -> ShardedSegment:
        return self._wrap(self.store.shard(0).segment_compiler.compile(text, filename=filename))

    def compile_segment(
        self,
        segment: Segment,
        *,
        text: str,
        filename: str,
        siblings: Mapping[str, Segment] | None = None,
    ) -> ShardedSegment:
        compiler = self.store.shard(0).segment_compiler
        bound = compiler.compile_segment(segment, text=text, filename=filename, siblings=siblings)
        return self._wrap(bound)
