"""Sharded nodes: contacts split over N shards by a stable hash of their id
(layout.py), each shard a node's worth of files; an audience is the union of
the shards' members.

``ShardProgram`` and ``shard_members`` (program.py: the compiler and the
evaluator) are imported on first use: opening a node, which imports this
package, does not pay for them in a command that evaluates nothing."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from audience.runtime.shards.layout import HASH, shard_of
from audience.runtime.shards.store import ShardedStore, ShardRef, open_shard

if TYPE_CHECKING:
    from audience.runtime.shards.program import ShardProgram, shard_members

__all__ = [
    "HASH",
    "ShardProgram",
    "ShardRef",
    "ShardedStore",
    "open_shard",
    "shard_members",
    "shard_of",
]

_LAZY = {"ShardProgram", "shard_members"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("audience.runtime.shards.program"), name)
    raise AttributeError(f"module 'audience.runtime.shards' has no attribute {name!r}")
