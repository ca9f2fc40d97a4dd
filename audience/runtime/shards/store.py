"""A sharded node: N shards, each a node's worth of files, holding the
contacts whose id hashes to it (layout.py) with all their events and their
profile.  Every shard decides its own contacts, so an audience is the union
of the shards' members; ingests are split by contact and handed to each
shard's own ingest (ingest.py).  Definitions and the delivery log stay at
the store level, shared.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audience.runtime.shards import layout
from audience.runtime.shards.errors import NotOnShards
from audience.runtime.store.definitions import Definitions
from audience.runtime.store.errors import IngestReport, Reject, StoreError
from audience.runtime.store.layout import DEFINITIONS_FILE, DiskBackend, create_node_dir, node_dir
from audience.runtime.store.store import Store, _write_atomic, init_root
from audience.schema import Schema

if TYPE_CHECKING:
    from audience.snapshot import Snapshot


@dataclass(frozen=True)
class ShardRef:
    """One shard of a sharded node, by name: what a worker needs to open it."""

    store: str  # the store directory
    node: str
    index: int
    count: int

    @property
    def path(self) -> Path:
        return layout.shard_dir(Path(self.store), self.node, self.index)


def open_shard(ref: ShardRef) -> Store:
    """The Store over one shard (its snapshots, for evaluations).  Write
    to a sharded node through its ShardedStore: an ingest straight into a
    shard would skip the routing by contact and the node's duplicate check."""
    root = Path(ref.store)
    schema = _load_schema(root, ref.node)
    return _shard_store(root, ref.node, ref.index, schema, Definitions(root / DEFINITIONS_FILE))


class ShardedStore:
    """The storage of a sharded node; answers as a Store does where it can,
    and says so where it cannot (``snapshot``: there is no one version of
    all shards).  Its node (audience.runtime.shards.node) compiles and
    matches triggers."""

    def __init__(self, root: Path, node: str, schema: Schema, count: int) -> None:
        self.path = root
        self.node = node
        self.schema = schema
        self.count = count
        self.definitions = Definitions(root / DEFINITIONS_FILE)
        self._lock = threading.Lock()
        self._shards: list[Store | None] = [None] * count
        # the node's ingest lock (a lock file in the node directory)
        self._node_lock = DiskBackend(node_dir(root, node))

    # -------------------------------------------------------------- creation
    @classmethod
    def init(
        cls, path: str | Path, schema: Schema | str | Path, node: str = "main", *, shards: int
    ) -> ShardedStore:
        """A store (or a new node of one) whose node ``node`` has ``shards`` shards."""
        count = layout.check_count(shards)
        root = Path(path)
        schema, defs = init_root(root, schema, node)
        nd = node_dir(root, node)
        nd.mkdir(parents=True)
        _write_atomic(nd / "schema.toml", schema.to_toml())
        for k in range(count):
            sd = layout.shard_dir(root, node, k)
            create_node_dir(sd)
            _write_atomic(sd / "schema.toml", schema.to_toml())
            Store.init_dir(sd, schema, node, root, defs)
        # written last: until it exists the node is not a sharded node
        meta = {"count": count, "hash": layout.HASH}
        _write_atomic(nd / layout.SHARDS_FILE, json.dumps(meta))
        return cls(root, node, schema, count)

    @classmethod
    def open(cls, path: str | Path, node: str = "main") -> ShardedStore:
        root = Path(path)
        if not layout.is_sharded(root, node):
            Store.open(root, node)  # raises the plain store's error (no store, no node)
            raise StoreError(f"{root}: node '{node}' is not sharded")
        return cls(root, node, _load_schema(root, node), layout.read_count(root, node))

    # ---------------------------------------------------------------- shards
    def refs(self) -> list[ShardRef]:
        return [ShardRef(str(self.path), self.node, k, self.count) for k in range(self.count)]

    def shard(self, index: int) -> Store:
        """Shard ``index``'s Store, opened once."""
        with self._lock:
            store = self._shards[index]
            if store is None:
                store = _shard_store(self.path, self.node, index, self.schema, self.definitions)
                self._shards[index] = store
            return store

    def shards(self) -> list[Store]:
        return [self.shard(k) for k in range(self.count)]

    def snapshots(self) -> list[Snapshot]:
        return [s.snapshot() for s in self.shards()]

    @staticmethod
    def version_of(snaps: list[Snapshot]) -> int:
        """One number for a set of shard versions: their sum, which grows
        whenever any shard's does (each only ever grows)."""
        return sum(s.version for s in snaps)

    def snapshot(self) -> Snapshot:
        raise NotOnShards(self.node, self.count, "one snapshot of the whole node (what this needs)")

    # ---------------------------------------------------------------- ingest
    def ingest_events(self, source: Any, *, progress: bool = False) -> IngestReport:
        """Events, each to the shard of its contact; an event id already held
        by any shard (or earlier in the input) is a duplicate, as in one store."""
        from audience.runtime.shards.ingest import ingest_events

        with self._node_lock.locked():
            return ingest_events(self, source, progress)

    def ingest_profiles(
        self, source: Any, *, progress: bool = False, merge_lists: Collection[str] = ()
    ) -> IngestReport:
        """Profiles, each to the shard of its contact (upserted there)."""
        from audience.runtime.shards.ingest import ingest_profiles

        for name in merge_lists:
            if self.schema.profile.get(name) != "list<string>":
                raise StoreError(f"merge_lists: '{name}' is not a list profile property")
        with self._node_lock.locked():
            return ingest_profiles(self, source, merge_lists, progress)

    def checkpoint(self) -> None:
        for store in self.shards():
            store.checkpoint()

    def rejected(self, limit: int | None = None) -> list[Reject]:
        """The rejected records the node keeps (shard 0 keeps them all, in order)."""
        return self.shard(0).rejected(limit)

    def __repr__(self) -> str:
        return f"ShardedStore({self.path}, node={self.node!r}, shards={self.count})"


def _load_schema(root: Path, node: str) -> Schema:
    from audience.schema import SchemaError

    try:
        return Schema.load(node_dir(root, node) / "schema.toml")
    except SchemaError as exc:
        raise StoreError(str(exc)) from None


def _shard_store(root: Path, node: str, index: int, schema: Schema, defs: Definitions) -> Store:
    sd = layout.shard_dir(root, node, index)
    if not (sd / "manifest.json").is_file():
        raise StoreError(f"{sd}: shard {index} of node '{node}' is missing")
    return Store(DiskBackend(sd), schema, node, root, defs)
