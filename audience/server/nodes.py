"""The nodes of a store, and what the server keeps per node while it runs.

A node is one database of contacts and events (STORE/nodes/NAME).  The
server opens each node (audience.runtime.node) once and shares it between request
threads (ingests serialise on the store's lock; evaluations each take one
snapshot), together with the node's recent snapshots and audiences (for
cursors), and an index from contact id to its dense position.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from audience.runtime.node import Node, ShardedNode, open_node, open_store
from audience.runtime.shards.layout import shard_of
from audience.runtime.store import Store, StoreError
from audience.runtime.store.layout import STORE_FILE
from audience.runtime.store.layout import list_nodes as layout_list_nodes
from audience.runtime.triggers.engine import TriggerEngine
from audience.schema import Schema
from audience.server.paging import AudienceCache
from audience.snapshot import Snapshot

if TYPE_CHECKING:
    from audience.dist import ClusterStore


def list_nodes(store_path: str | Path) -> list[str]:
    root = Path(store_path)
    if not (root / STORE_FILE).is_file():
        raise StoreError(f"{root}: not an audience store (no {STORE_FILE})")
    return layout_list_nodes(root)


def create_node(
    store_path: str | Path,
    name: str,
    schema: Schema | str | Path | None = None,
    *,
    shards: int | None = None,
) -> None:
    """Add node ``name`` to an existing store; without ``schema`` it takes the
    schema of node ``main`` (or of the first node).  ``shards``: a sharded
    node of that many shards (audience.runtime.shards)."""
    nodes = list_nodes(store_path)
    if schema is None:
        if not nodes:
            raise StoreError(f"{store_path}: no node to copy a schema from; give --schema")
        schema = open_store(store_path, "main" if "main" in nodes else nodes[0]).schema
    if shards is None:
        Store.init(store_path, schema, node=name)
    else:
        ShardedNode.init(store_path, schema, node=name, shards=shards)


class ContactIndex:
    """Contact id -> dense index.  Contact codes are append-only across
    versions, so the index only ever grows by the ids of newer snapshots."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: dict[str, int] = {}
        self._size = 0

    def find(self, snapshot: Snapshot, contact_id: str) -> int | None:
        ids = snapshot.contact_ids
        with self._lock:
            if len(ids) > self._size:
                for i in range(self._size, len(ids)):
                    self._index[ids[i]] = i
                self._size = len(ids)
            pos = self._index.get(contact_id)
        return pos if pos is not None and pos < len(ids) else None


class NodeRuntime:
    def __init__(self, store: Node, cache_size: int, client: Any = None) -> None:
        self.store = store
        # a sharded node's segments evaluated on the server's Dask cluster
        self.cluster: ClusterStore | None = None
        if client is not None and isinstance(store, ShardedNode):
            from audience.dist import ClusterStore

            self.cluster = ClusterStore(store, client)
        self.audiences = AudienceCache(cache_size)
        self.contacts = ContactIndex()
        self._shard_contacts: dict[int, ContactIndex] = {}  # a sharded node's, per shard
        self._lock = threading.Lock()

    def contact_home(self, contact_id: str) -> tuple[Snapshot, ContactIndex, int]:
        """The snapshot that holds ``contact_id`` if any contact's does, the
        index of its contacts, and the node's version: on a sharded node, the
        contact's shard (by the hash of its id) and the shards' version."""
        store = self.store
        if not isinstance(store, ShardedNode):
            snap = store.snapshot()
            return snap, self.contacts, snap.version
        k = int(shard_of(pa.array([contact_id], pa.string()), store.count)[0])
        snaps = store.snapshots()
        with self._lock:
            index = self._shard_contacts.setdefault(k, ContactIndex())
        return snaps[k], index, store.version_of(snaps)

    @property
    def triggers(self) -> TriggerEngine:
        return self.store.triggers


class Nodes:
    """The nodes of one store, opened on first use (thread-safe)."""

    def __init__(self, store_path: str | Path, cache_size: int = 32, client: Any = None) -> None:
        self.path = Path(store_path)
        self.cache_size = cache_size
        self.client = client  # a Dask client for sharded nodes (audience.dist), or None
        self._lock = threading.Lock()
        self._open: dict[str, NodeRuntime] = {}

    def names(self) -> list[str]:
        return list_nodes(self.path)

    def get(self, node: str) -> NodeRuntime:
        with self._lock:
            rt = self._open.get(node)
            if rt is None:
                rt = NodeRuntime(open_node(self.path, node), self.cache_size, self.client)
                self._open[node] = rt
            return rt
