"""Sharded nodes: contacts split over N shards by a stable hash of their id
(layout.py), each shard a node's worth of files; an audience is the union of
the shards' members."""

from audience.runtime.shards.layout import HASH, shard_of
from audience.runtime.shards.program import ShardProgram, shard_members
from audience.runtime.shards.store import ShardedStore, ShardRef, open_shard

__all__ = [
    "HASH",
    "ShardProgram",
    "ShardRef",
    "ShardedStore",
    "open_shard",
    "shard_members",
    "shard_of",
]
