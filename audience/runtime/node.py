"""A node: its storage (a Store, or a ShardedStore for a sharded node) and
what works over it: the compiled-segment cache, the trigger engine (which
watches every ingest through the store's ``watcher``) and the saved
segments with their referential checks.

``audience.open`` returns one; it compiles, evaluates, ingests and saves as
the store alone did, so callers keep their method names.  The compiler and
the trigger path are imported on first use: opening a node to evaluate, or
ingesting into a node without triggers, does not pay for them.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pyarrow as pa

from audience.runtime.shards.layout import is_sharded
from audience.runtime.shards.store import ShardedStore, ShardRef
from audience.runtime.store.definitions import SavedSegmentsMixin
from audience.runtime.store.errors import IngestReport, Reject, SegmentInUse
from audience.runtime.store.layout import DEFINITIONS_FILE
from audience.runtime.store.store import Store

if TYPE_CHECKING:
    import numpy as np

    from audience.runtime.api import SegmentCompiler, StoreSegment
    from audience.runtime.shards.program import ShardProgram
    from audience.runtime.shards.segment import ShardedCompiler, ShardedSegment
    from audience.runtime.shards.triggers import ShardedTriggers
    from audience.runtime.store.dedup import SortedIds
    from audience.runtime.store.sources import Source
    from audience.runtime.triggers.definitions import TriggerDefinitions
    from audience.runtime.triggers.engine import TriggerEngine
    from audience.schema import Schema
    from audience.snapshot import Snapshot


S = TypeVar("S", Store, ShardedStore)


class _Storage(SavedSegmentsMixin, Generic[S]):
    """What a node answers straight from its storage ``store``."""

    def __init__(self, store: S) -> None:
        self.store: S = store
        self.definitions = store.definitions
        self._lock = threading.Lock()

    @property
    def schema(self) -> Schema:
        return self.store.schema

    @property
    def node(self) -> str:
        return self.store.node

    def snapshot(self) -> Snapshot:
        return self.store.snapshot()  # a sharded node's raises NotOnShards

    def ingest_events(self, source: Any, *, progress: bool = False) -> IngestReport:
        """As ``Store.ingest_events``; the node's triggers match the new events."""
        return self.store.ingest_events(source, progress=progress)

    def ingest_profiles(
        self, source: Any, *, progress: bool = False, merge_lists: Collection[str] = ()
    ) -> IngestReport:
        return self.store.ingest_profiles(source, progress=progress, merge_lists=merge_lists)

    def rejected(self, limit: int | None = None) -> list[Reject]:
        return self.store.rejected(limit)

    def checkpoint(self) -> None:
        self.store.checkpoint()


class Node(_Storage[Store]):
    """One (unsharded) node: ``store`` is its storage."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._compiler: SegmentCompiler | None = None
        self._triggers: TriggerEngine | None = None
        self._trigger_defs: TriggerDefinitions | None = None  # see _watcher
        store.watcher = self._watcher

    # -------------------------------------------------------------- creation
    @classmethod
    def init(cls, path: str | Path, schema: Schema | str | Path, node: str = "main") -> Node:
        """A new store directory (or a new node of one), as ``audience init``."""
        return cls(Store.init(path, schema, node))

    @classmethod
    def open(cls, path: str | Path, node: str = "main") -> Node:
        return cls(Store.open(path, node))

    @classmethod
    def from_arrow(
        cls,
        events: pa.Table | None,
        profiles: pa.Table | None = None,
        schema: Schema | str | Path | None = None,
    ) -> Node:
        """A node in memory: see ``Store.from_arrow``."""
        return cls(Store.from_arrow(events, profiles, schema))

    # ------------------------------------------------------------ the store
    @property
    def path(self) -> Path | None:
        return self.store.path

    @property
    def home(self) -> Path | None:
        return self.store.home

    def snapshots(self) -> list[Snapshot]:
        """Its snapshot, alone: what a sharded node's ``snapshots`` gives per shard."""
        return [self.snapshot()]

    def open_input(self, source: Any, kind: str) -> Source:
        return self.store.open_input(source, kind)

    def known_ids(self, ids: pa.Array, hashed: SortedIds | None = None) -> np.ndarray:
        return self.store.known_ids(ids, hashed)

    # -------------------------------------------------------------- segments
    def compile(self, text: str, *, filename: str = "<segment>") -> StoreSegment:
        """Parse, check and compile a segment (a bare condition or one ``segment``
        definition) against this node; cached, so a repeated text costs nothing."""
        return self.segment_compiler.compile(text, filename=filename)

    @property
    def segment_compiler(self) -> SegmentCompiler:
        from audience.runtime.api import SegmentCompiler

        with self._lock:
            if self._compiler is None:
                self._compiler = SegmentCompiler(self)
            return self._compiler

    def delete_segment(self, name: str) -> bool:
        """Delete a saved segment (False: there is none).  Raises SegmentInUse
        when other saved segments or triggers refer to it."""
        from audience.runtime.saved import segment_users

        if self.get_segment(name) is None:
            return False
        users = segment_users(self, name)
        if users:
            raise SegmentInUse(name, users)
        return self.definitions.delete_segment(name)

    # -------------------------------------------------------------- triggers
    @property
    def triggers(self) -> TriggerEngine:
        """The triggers, DND policies and templates of this node (created on first use)."""
        from audience.runtime.triggers.engine import TriggerEngine

        with self._lock:
            if self._triggers is None:
                self._triggers = TriggerEngine(self)
            return self._triggers

    def _watcher(self) -> TriggerEngine | None:
        """The store's ``watcher``: the trigger engine when there may be
        triggers to match.  Making it imports the trigger path (half a
        second), which an ingest into a store without triggers need not pay:
        until then a query of the saved triggers decides."""
        if self._triggers is None:
            if self.path is None:
                return None  # in memory, triggers are added through the engine
            if self._trigger_defs is None:
                from audience.runtime.triggers.definitions import TriggerDefinitions

                self._trigger_defs = TriggerDefinitions(self.path / DEFINITIONS_FILE)
            if not self._trigger_defs.any_trigger():
                from audience.runtime.journeys.definitions import any_running

                if not any_running(self.path, self.node):
                    return None
        return self.triggers

    def __repr__(self) -> str:
        where = self.path if self.path is not None else "memory"
        return f"Node({where}, node={self.node!r})"


class ShardedNode(_Storage[ShardedStore]):
    """A sharded node: ``store`` is its storage, each shard a Node of its own
    (whose trigger engine matches the events that shard takes in)."""

    def __init__(self, store: ShardedStore) -> None:
        super().__init__(store)
        # every shard's Node now: an ingest into a shard must meet its watcher
        self._nodes = [Node(store.shard(k)) for k in range(store.count)]
        self._compiler: ShardedCompiler | None = None
        self._triggers: ShardedTriggers | None = None

    @classmethod
    def init(
        cls, path: str | Path, schema: Schema | str | Path, node: str = "main", *, shards: int
    ) -> ShardedNode:
        return cls(ShardedStore.init(path, schema, node, shards=shards))

    @classmethod
    def open(cls, path: str | Path, node: str = "main") -> ShardedNode:
        return cls(ShardedStore.open(path, node))

    # ------------------------------------------------------------ the store
    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def count(self) -> int:
        return self.store.count

    def refs(self) -> list[ShardRef]:
        return self.store.refs()

    def shard(self, index: int) -> Node:
        return self._nodes[index]

    def shards(self) -> list[Node]:
        return list(self._nodes)

    def snapshots(self) -> list[Snapshot]:
        return self.store.snapshots()

    version_of = staticmethod(ShardedStore.version_of)

    # -------------------------------------------------------------- segments
    @property
    def segment_compiler(self) -> ShardedCompiler:
        from audience.runtime.shards.segment import ShardedCompiler

        with self._lock:
            if self._compiler is None:
                self._compiler = ShardedCompiler(self)
            return self._compiler

    def compile(self, text: str, *, filename: str = "<segment>") -> ShardedSegment:
        """Parse, check and compile a segment once for every shard (cached)."""
        return self.segment_compiler.compile(text, filename=filename)

    def compile_program(self, text: str, *, filename: str = "<segment>") -> ShardProgram:
        """The compiled program of a segment text, as plain data a shard anywhere evaluates."""
        return self.compile(text, filename=filename).program

    def delete_segment(self, name: str) -> bool:
        # The definitions are the store's: any shard's node checks their users.
        return self.shard(0).delete_segment(name)

    # -------------------------------------------------------------- triggers
    @property
    def triggers(self) -> ShardedTriggers:
        """The node's triggers (definitions shared; each shard matches its events)."""
        from audience.runtime.shards.triggers import ShardedTriggers

        with self._lock:
            if self._triggers is None:
                self._triggers = ShardedTriggers(self)
            return self._triggers

    def __repr__(self) -> str:
        return f"ShardedNode({self.path}, node={self.node!r}, shards={self.count})"


def open_store(path: str | Path, node: str = "main") -> Store:
    """The storage of node ``node`` of the store at ``path``; a sharded node's
    is a ``ShardedStore``, which answers as a Store does."""
    if is_sharded(Path(path), node):
        return ShardedStore.open(path, node)  # type: ignore[return-value]
    return Store.open(path, node)


def open_node(path: str | Path, node: str = "main") -> Node:
    """The node ``node`` of the store at ``path``; a sharded node opens as a
    ``ShardedNode``, which answers as a Node does."""
    if is_sharded(Path(path), node):
        return ShardedNode.open(path, node)  # type: ignore[return-value]
    return Node.open(path, node)
