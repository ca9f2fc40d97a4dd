"""The triggers of a sharded node.  Their definitions, DND policies,
templates and the delivery log are the store's, shared; each shard matches
the events it takes in with an engine of its own (a trigger's state is per
contact, and a contact lives in one shard).  What reads the whole node at
once (a dry run, journeys) does not work on a sharded node yet and says so."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from audience.runtime.shards.errors import NotOnShards

if TYPE_CHECKING:
    from audience.runtime.delivery.log import DeliveryLog
    from audience.runtime.node import ShardedNode
    from audience.runtime.triggers.definitions import TriggerDefinitions
    from audience.runtime.triggers.engine import BatchReport, TriggerEngine

# What any shard's engine answers for the node: the definitions are shared.
_SHARED = frozenset(
    {"check", "add", "add_policies", "add_template", "active", "policy", "template", "errors"}
)


class ShardedTriggers:
    def __init__(self, store: ShardedNode) -> None:
        self.store = store

    def _first(self) -> TriggerEngine:
        return self.store.shard(0).triggers

    @property
    def defs(self) -> TriggerDefinitions:
        return self._first().defs

    @property
    def log(self) -> DeliveryLog:
        return self._first().log

    def use_log(self, delivery_log: DeliveryLog) -> None:
        for shard in self.store.shards():
            shard.triggers.use_log(delivery_log)

    def catch_up(self) -> BatchReport:
        """Every shard's catch-up, reported together."""
        from audience.runtime.triggers.engine import BatchReport

        report = BatchReport()
        for shard in self.store.shards():
            report.merge(shard.triggers.catch_up())
        return report

    def __getattr__(self, name: str) -> Any:
        if name in _SHARED:
            return getattr(self._first(), name)
        raise NotOnShards(self.store.node, self.store.count, f"triggers' {name!r}")
