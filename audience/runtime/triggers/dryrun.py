"""``dry_run``: replay stored events through the current triggers and DND
policies, and report what would have been sent and what suppressed.

Nothing is written: deliveries are decided by the log's dry-run view (against
the real log plus what the replay itself reserved), firings are kept in a
throw-away state, and ``add_tag`` / ``set`` are only reported.  Each event is
decided as of its own time (its ``if``, and the caps at its delivery time).
Stored events keep no ids, so their keys are content hashes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from audience.runtime.delivery import Delivery
from audience.runtime.triggers.batch import EventBatch, iso_ms, take_rows
from audience.runtime.triggers.engine import fire
from audience.runtime.triggers.state import Firing, NodeState

if TYPE_CHECKING:
    from audience.runtime.store import Store

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


@dataclass
class DryRunReport:
    since_ms: int | None
    until_ms: int | None
    events: int = 0
    matched: int = 0
    fired: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    deliveries: list[Delivery] = field(default_factory=list)
    firings: list[Firing] = field(default_factory=list)
    profile_updates: list[dict[str, Any]] = field(default_factory=list)

    def by_status(self) -> Counter[str]:
        return Counter(d.status for d in self.deliveries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": None if self.since_ms is None else iso_ms(self.since_ms),
            "until": None if self.until_ms is None else iso_ms(self.until_ms),
            "events": self.events,
            "matched": self.matched,
            "fired": self.fired,
            "skipped": dict(self.skipped),
            "deliveries": dict(self.by_status()),
            "profile_updates": len(self.profile_updates),
        }


def dry_run(store: Store, since_ms: int | None = None, until_ms: int | None = None) -> DryRunReport:
    """The stored events with ``since_ms <= ts <= until_ms`` (None: unbounded)."""
    snap = store.snapshot()
    lo = INT64_MIN if since_ms is None else since_ms
    hi = INT64_MAX if until_ms is None else until_ms
    parts = []
    for part in snap.partitions:
        if len(part) == 0 or part.max_ts < lo or part.min_ts > hi:
            continue
        a = int(np.searchsorted(part.ts, lo, "left"))
        b = int(np.searchsorted(part.ts, hi, "right"))
        if a < b:
            parts.append(take_rows(part, np.arange(a, b)))
    report = DryRunReport(since_ms, until_ms)
    if not parts:
        return report
    batch = EventBatch.from_partitions(parts, snap)
    engine = store.triggers
    scratch = NodeState(None).firings()  # as if none of these events had fired yet
    with engine.log.dry_run() as view:
        out = fire(engine, batch, scratch, view, live=False)
        report.deliveries = list(out.deliveries)
    report.events = out.events
    report.matched = out.matched
    report.fired = out.fired
    report.skipped = out.skipped
    report.firings = out.firings
    report.profile_updates = out.profile_updates + out.list_additions
    return report
