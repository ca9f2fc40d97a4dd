"""``dry_run``: replay stored events through the current triggers and DND
policies, and report what would have happened and why, apart from what the
delivery log already holds for those events.

What would happen: each replayed event is decided as of its own time (its
``if``, the options, the caps at its delivery time), as if the triggers had
existed then: a trigger's valid-from does not stop a replay (replaying history
is what a dry run is for; ``too_old`` counts those events).  The caps count
the real log's deliveries, except the ones the triggers already made for the
replayed events themselves, which the replay makes again (counting them too
would hold every replayed delivery behind its own twin).

What the log holds: the deliveries the replayed triggers really made for
those events (from their recorded firings), listed separately.

Nothing is written: decisions are kept in memory, firings in a throw-away
state, and ``add_tag`` / ``set`` are only reported.  Stored events keep no
ids, so their keys are content hashes.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from audience.runtime.delivery import Delivery
from audience.runtime.delivery import model as m
from audience.runtime.delivery.dnd import Policy
from audience.runtime.delivery.log import DeliveryLog, DryRun, decide
from audience.runtime.triggers.batch import EventBatch, iso_ms, take_rows
from audience.runtime.triggers.engine import fire
from audience.runtime.triggers.state import Firing, NodeState

if TYPE_CHECKING:
    from audience.runtime.node import Node

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
WOULD_SEND = "would send"
HELD = "held"
WOULD_FAIL = "would fail"


def outcome(d: Delivery) -> tuple[str, str]:
    """What a replayed delivery would have done, and why."""
    if d.status == m.SUPPRESSED:
        return HELD, f"DND policy {d.policy!r}: {d.cap}"
    if d.status == m.FAILED:
        return WOULD_FAIL, d.last_error or ""
    why = "a test send (not counted by the caps)" if d.test else ""
    if d.status == m.DEFERRED:
        why = f"after the quiet hours of {d.policy!r}, at {iso_ms(d.due_ms)}"
    return WOULD_SEND, why


def delivery_dict(d: Delivery) -> dict[str, Any]:
    what, why = outcome(d)
    return {
        "contact_id": d.contact_id,
        "source": d.source,
        "kind": d.kind,
        "outcome": what,
        "why": why,
        "status": d.status,
        "policy": d.policy,
        "cap": d.cap,
        "due": iso_ms(d.due_ms),
        "test": d.test,
    }


@dataclass
class DryRunReport:
    since_ms: int | None
    until_ms: int | None
    events: int = 0
    matched: int = 0
    fired: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # why a match would not fire
    deliveries: list[Delivery] = field(default_factory=list)  # what the replay decided
    firings: list[Firing] = field(default_factory=list)
    profile_updates: list[dict[str, Any]] = field(default_factory=list)
    too_old: Counter[str] = field(default_factory=Counter)  # replayed before valid-from
    in_log: list[Delivery] = field(default_factory=list)  # what the log holds for them

    def by_status(self) -> Counter[str]:
        return Counter(d.status for d in self.deliveries)

    def by_outcome(self) -> Counter[str]:
        return Counter(outcome(d)[0] for d in self.deliveries)

    def held_by(self) -> Counter[str]:
        """Held deliveries per policy and cap."""
        return Counter(outcome(d)[1] for d in self.deliveries if d.status == m.SUPPRESSED)

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        """A JSON document; ``limit``: deliveries listed (None: all)."""
        return {
            "since": None if self.since_ms is None else iso_ms(self.since_ms),
            "until": None if self.until_ms is None else iso_ms(self.until_ms),
            "events": self.events,
            "matched": self.matched,
            "fired": self.fired,
            "not_fired": dict(sorted(self.skipped.items())),
            "before_valid_from": dict(sorted(self.too_old.items())),
            "would": dict(sorted(self.by_outcome().items())),
            "held_by": dict(sorted(self.held_by().items())),
            "profile_updates": len(self.profile_updates),
            "deliveries": [delivery_dict(d) for d in self.deliveries[:limit]],
            "in_log": {
                "by_status": dict(sorted(Counter(d.status for d in self.in_log).items())),
                "deliveries": [{"id": d.id, **delivery_dict(d)} for d in self.in_log[:limit]],
            },
        }


class _Replay(DryRun):
    """The log's dry-run view for a replay: it decides every request afresh
    (a delivery the log holds under the same key is the event's real one,
    reported apart) and its caps leave out ``twins``, the real deliveries of
    the replayed firings.  Its own and the twins' deliveries are indexed by
    contact and by email, so a replay of n events costs n look-ups, not n^2."""

    def __init__(self, log: DeliveryLog, twins: list[Delivery]) -> None:
        super().__init__(log)
        self._twins = _People()
        for d in twins:
            if d.counted:
                self._twins.add(d)
        self._mine = _People()

    def request(self, req: m.DeliveryRequest) -> Delivery:
        found = self._by_key.get(req.key)
        if found is not None:
            return found
        now = req.now_ms if req.now_ms is not None else m.wall_ms()
        d = replace(decide(req, now, self._times), id=-(len(self.planned) + 1))
        self.planned.append(d)
        self._by_key[d.key] = d
        if d.counted:
            self._mine.add(d)
        return d

    def _times(
        self, req: m.DeliveryRequest, email_norm: str | None, pol: Policy, lo: int, hi: int
    ) -> list[int]:
        # the log's own query (as DryRun asks it), less the twins, plus the replay's
        with self.log._lock:
            times = self.log._times(self.log._conn, req, email_norm, pol, lo, hi)
        for d in self._twins.near(req, email_norm, pol, lo, hi):
            if d.due_ms in times:
                times.remove(d.due_ms)
        times += [d.due_ms for d in self._mine.near(req, email_norm, pol, lo, hi)]
        return times


class _People:
    """Counted deliveries by (node, contact) and by normalized email."""

    def __init__(self) -> None:
        self.by_contact: dict[tuple[str, str], list[Delivery]] = {}
        self.by_email: dict[str, list[Delivery]] = {}

    def add(self, d: Delivery) -> None:
        self.by_contact.setdefault((d.node, d.contact_id), []).append(d)
        if d.email_norm is not None:
            self.by_email.setdefault(d.email_norm, []).append(d)

    def near(
        self, req: m.DeliveryRequest, email_norm: str | None, pol: Policy, lo: int, hi: int
    ) -> list[Delivery]:
        """The ones the policy counts for ``req`` in (lo, hi), each once: to the
        same contact of the node, or (a global policy) to the same email."""
        found = {d.id: d for d in self.by_contact.get((req.node, req.contact_id), ())}
        if pol.is_global and email_norm is not None:
            found.update((d.id, d) for d in self.by_email.get(email_norm, ()))
        return [d for d in found.values() if lo < d.due_ms < hi and pol.applies_to(d.channel)]


def _in_log(store: Node, firings: list[Firing]) -> list[Delivery]:
    """The deliveries the recorded ``firings`` made, in the order they fired."""
    out = []
    log = store.triggers.log
    for f in firings:
        for step in json.loads(f.outcome):
            did = step.get("delivery") if isinstance(step, dict) else None
            if isinstance(did, int) and did > 0:
                d = log.get(did)
                if d is not None:
                    out.append(d)
    return out


def dry_run(store: Node, since_ms: int | None = None, until_ms: int | None = None) -> DryRunReport:
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
    names = [t.name for t in engine.active().triggers]
    report.in_log = _in_log(store, engine.state.firings().between(names, lo, hi))
    scratch = NodeState(None).firings()  # as if none of these events had fired yet
    with _Replay(engine.log, report.in_log) as view:
        out = fire(engine, batch, scratch, view, live=False)
        report.deliveries = list(out.deliveries)
    report.events = out.events
    report.matched = out.matched
    report.fired = out.fired
    report.skipped = out.skipped
    report.too_old = out.too_old
    report.firings = out.firings
    report.profile_updates = out.profile_updates + out.list_additions
    return report
