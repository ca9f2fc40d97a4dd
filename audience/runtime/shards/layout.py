"""Where a sharded node keeps its shards, and the hash that picks a contact's.

STORE/nodes/NODE/schema.toml     the node's schema (each shard holds a copy)
STORE/nodes/NODE/shards.json     {"count": N, "hash": HASH}
STORE/nodes/NODE/lock            serialises ingests into the node (all shards)
STORE/nodes/NODE/shards/KKKK/    shard K (zero-padded): the layout of a node
                                 (manifest, partitions, ..., wal, triggers)

A contact's shard is ``h(id) mod N``, where ``h`` is FNV-1a (64 bits) over the
UTF-8 bytes of the id, then the murmur3 64-bit finaliser.  An integer id is
its decimal text (the store keeps it so: 42 and "42" are one contact).  The
hash never depends on the process or the version (unlike Python's ``hash``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from audience import lazy_compute as pc
from audience.runtime.store.errors import StoreError
from audience.runtime.store.layout import MANIFEST, node_dir

SHARDS_FILE = "shards.json"
HASH = "fnv1a64-fmix64"
MAX_SHARDS = 4096


def shards_dir(root: Path, node: str) -> Path:
    return node_dir(root, node) / "shards"


def shard_dir(root: Path, node: str, index: int) -> Path:
    return shards_dir(root, node) / f"{index:04d}"


def is_sharded(root: Path, node: str) -> bool:
    nd = node_dir(root, node)
    return (nd / SHARDS_FILE).is_file() and not (nd / MANIFEST).is_file()


def read_count(root: Path, node: str) -> int:
    """The number of shards of a sharded node (its ``shards.json``, checked)."""
    path = node_dir(root, node) / SHARDS_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: unreadable shard description: {exc}") from None
    count = meta.get("count") if isinstance(meta, dict) else None
    if not isinstance(count, int) or not 1 <= count <= MAX_SHARDS:
        raise StoreError(f"{path}: bad shard count {count!r}")
    if meta.get("hash") != HASH:
        raise StoreError(f"{path}: unknown shard hash {meta.get('hash')!r} (this version: {HASH})")
    return count


def check_count(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SHARDS:
        raise StoreError(f"shards: expected a whole number from 1 to {MAX_SHARDS}, got {count!r}")
    return count


def shard_of(contact_ids: pa.Array | pa.ChunkedArray, count: int) -> np.ndarray:
    """The shard (int64, 0 to count - 1) of each contact id: strings, integers
    (their decimal text) or a dictionary array of either.  A null id (a row
    that will be rejected) goes to shard 0."""
    if isinstance(contact_ids, pa.ChunkedArray):
        contact_ids = contact_ids.combine_chunks()
    if pa.types.is_dictionary(contact_ids.type):
        per_value = shard_of(contact_ids.dictionary, count)
        codes = pc.fill_null(contact_ids.indices, -1).to_numpy(zero_copy_only=False)
        out: np.ndarray = np.where(codes >= 0, per_value[np.maximum(codes, 0)], 0)
        return out.astype(np.int64)
    if not (pa.types.is_string(contact_ids.type) or pa.types.is_integer(contact_ids.type)):
        return np.zeros(len(contact_ids), dtype=np.int64)  # rejected downstream
    text = pc.cast(contact_ids, pa.string())
    if count == 1:
        return np.zeros(len(text), dtype=np.int64)
    from audience.runtime.store.hashing import hash_ids  # (its kernel: an ingest's)

    shard = (hash_ids(text) % np.uint64(count)).astype(np.int64)
    if text.null_count:
        shard[~text.is_valid().to_numpy(zero_copy_only=False)] = 0
    return shard
