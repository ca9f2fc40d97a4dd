"""The error of what a sharded node cannot do yet."""

from __future__ import annotations

from audience.runtime.store.errors import StoreError


class NotOnShards(StoreError):
    """An operation that needs the whole node at once (one snapshot of every
    contact), which a sharded node does not offer yet."""

    def __init__(self, node: str, count: int, what: str) -> None:
        super().__init__(
            f"node '{node}' is sharded ({count} shards): {what} does not work on a sharded node yet"
        )
