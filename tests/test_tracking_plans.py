"""A plan's run skips the addresses on the suppression list: their deliveries
are recorded suppressed with the list's reason: ``unsubscribed``,
``hard_bounce``, ``complaint`` (docs/tracking.md, docs/bounces.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.scheduler import Scheduler
from audience.runtime.plans.service import PlanService
from audience.runtime.tracking import suppression
from tests.plans_support import DAY, ONCE_DUE, RULES, build, delivery_rows, milan_buyers_at_once

N = 40


def _run_once(root: Path, store: Any) -> Any:
    """Make the one-shot plan ready and run it at its due time."""
    clock = ManualClock(ONCE_DUE - DAY)
    svc = PlanService(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Spring reminder")
    clock.ms = ONCE_DUE + 500
    [run] = Scheduler(root, clock=clock).tick().ran
    return run


def test_a_plan_run_suppresses_unsubscribed_addresses(tmp_path: Path) -> None:
    store = build(tmp_path / "shop", N)
    root = store.path
    assert root is not None
    expected = sorted(milan_buyers_at_once(N))
    gone = expected[:2]
    for cid in gone:
        suppression.add(root, f" {cid.upper()}@EXAMPLE.com", suppression.UNSUBSCRIBED)
    run = _run_once(root, store)
    assert run.counts["reserved"] == len(expected) - 2
    assert run.counts["suppressed"] == 2
    assert run.counts["by_cap"] == {"unsubscribed": 2}
    status = {c: s for _, c, s, _ in delivery_rows(root, "plan:Spring reminder")}
    assert {c for c, s in status.items() if s == "suppressed"} == set(gone)
    assert {c for c, s in status.items() if s == "reserved"} == set(expected) - set(gone)


def test_a_plan_run_records_the_lists_reason_for_bounces_and_complaints(tmp_path: Path) -> None:
    store = build(tmp_path / "shop", N)
    root = store.path
    assert root is not None
    expected = sorted(milan_buyers_at_once(N))
    bounced, complained = expected[:2], expected[2]
    for cid in bounced:
        suppression.add(root, f"{cid}@example.com", suppression.HARD_BOUNCE)
    suppression.add(root, f"{complained}@example.com", suppression.COMPLAINT)
    run = _run_once(root, store)
    assert run.counts["by_cap"] == {"hard_bounce": 2, "complaint": 1}
    rows = delivery_rows(root, "plan:Spring reminder")
    assert {c for _, c, s, _ in rows if s == "suppressed"} == {*bounced, complained}
    # an operator takes an address off the list; the others stay
    assert suppression.remove(root, f"{bounced[0]}@example.com")
    assert [e.reason for e in suppression.entries(root)] == ["hard_bounce", "complaint"]
