"""The shard API the Dask layer builds on, as a stand-in until the store's own
sharded nodes (audience.runtime.shards) land: a sharded store here is a
directory ``ROOT/shards/KKKK/`` of N plain stores, each holding the contacts
whose id hashes to it.  The names and signatures are those of
``audience.runtime.shards`` so that switching is an import.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audience.compiler.physical import Program
from audience.runtime.evaluate import CompiledSegment
from audience.runtime.store import Store, StoreError
from audience.runtime.store.hashing import hash_ids


@dataclass(frozen=True)
class ShardRef:
    """One shard, as plain picklable data: what a worker needs to open it."""

    path: str
    node: str
    index: int
    count: int


@dataclass(frozen=True)
class ShardProgram:
    """A segment compiled once, as plain data: the physical program, the
    definition's time zone and a digest that names it in the workers' caches."""

    program: Program
    timezone: str
    schema_version: str
    digest: str


def shard_dir(root: str | Path, index: int) -> Path:
    return Path(root) / "shards" / f"{index:04d}"


def shard_of(contact_ids: pa.Array | pa.ChunkedArray, count: int) -> np.ndarray:
    """The shard of each contact id (a stable hash of its text, mod ``count``)."""
    ids = pc.cast(contact_ids, pa.string())
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    return (hash_ids(ids) % np.uint64(count)).astype(np.int64)


def open_shard(ref: ShardRef) -> Store:
    return Store.open(shard_dir(ref.path, ref.index), ref.node)


class ShardedStore:
    def __init__(self, path: Path, node: str, count: int) -> None:
        self.path = path
        self.node = node
        self.count = count
        self._first: Store | None = None

    @classmethod
    def open(cls, path: str | Path, node: str = "main") -> ShardedStore:
        root = Path(path)
        count = len(list((root / "shards").glob("[0-9][0-9][0-9][0-9]")))
        if count == 0:
            raise StoreError(f"{root}: not a sharded store (no shards)")
        return cls(root, node, count)

    @classmethod
    def build(
        cls,
        path: str | Path,
        schema: Any,
        count: int,
        events: pa.Table | None,
        profiles: pa.Table | None = None,
    ) -> ShardedStore:
        """N plain stores, each given the events and profiles of its contacts."""
        for k in range(count):
            store = Store.init(shard_dir(path, k), schema)
            if profiles is not None and len(profiles):
                part = profiles.filter(pa.array(shard_of(profiles["contact_id"], count) == k))
                store.ingest_profiles(part)
            if events is not None and len(events):
                part = events.filter(pa.array(shard_of(events["contact_id"], count) == k))
                store.ingest_events(part)
        return cls(Path(path), "main", count)

    def refs(self) -> list[ShardRef]:
        return [ShardRef(str(self.path), self.node, k, self.count) for k in range(self.count)]

    def compile_program(self, text: str) -> ShardProgram:
        if self._first is None:
            self._first = open_shard(self.refs()[0])
        return program_of(self._first.compile(text).compiled)


def program_of(compiled: CompiledSegment) -> ShardProgram:
    """A compiled segment as plain data for the shards."""
    blob = pickle.dumps((compiled.program, compiled.timezone), protocol=5)
    digest = hashlib.blake2b(blob, digest_size=16).hexdigest()
    return ShardProgram(compiled.program, compiled.timezone, compiled.schema_version, digest)


_compiled: dict[str, CompiledSegment] = {}


def shard_members(store: Store, program: ShardProgram, as_of_ms: int) -> pa.Array:
    """The member contact ids of one shard, as Arrow strings."""
    compiled = _compiled.get(program.digest)
    if compiled is None:
        if len(_compiled) >= 256:
            _compiled.clear()
        compiled = CompiledSegment(None, program.program, program.timezone, program.schema_version)  # type: ignore[arg-type]
        _compiled[program.digest] = compiled
    return compiled.evaluate(store.snapshot(), as_of_ms).id_array()
