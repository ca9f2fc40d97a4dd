"""Plans on a sharded node: the plan's audience is every shard's members,
frozen together; deliveries go to the shared log under the node's DND."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from audience.runtime.node import ShardedNode
from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.scheduler import Scheduler
from audience.runtime.plans.service import PlanService
from audience.runtime.shards import shard_of
from tests.plans_support import (
    DAILY_DUE,
    DAY,
    ONCE_DUE,
    RULES,
    build,
    check_spring_run,
    contact,
    delivery_rows,
    milan_with_email,
    per_contact,
)

N = 40


@pytest.fixture
def store(tmp_path: Path) -> ShardedNode:
    st = build(tmp_path / "shop", N, shards=3)
    assert isinstance(st, ShardedNode)
    homes = shard_of(pa.array([contact(i) for i in range(N)]), 3)
    assert len(set(homes.tolist())) == 3  # the audience spans every shard
    return st


def _scheduler(store: ShardedNode, plan: str, start: int) -> tuple[Scheduler, ManualClock]:
    """The plans of RULES added, ``plan`` ready, and a scheduler on a clock at ``start``."""
    clock = ManualClock(start)
    svc = PlanService(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready(plan)
    return Scheduler(store.path, clock=clock), clock


def test_a_one_shot_plan_reaches_every_shard_once(store: ShardedNode) -> None:
    sched, clock = _scheduler(store, "Spring reminder", ONCE_DUE - DAY)
    clock.ms = ONCE_DUE + 500
    [run] = sched.tick().ran
    check_spring_run(store.path, run, N)
    assert sched.tick().ran == []


def test_a_daily_plan_under_dnd_on_a_sharded_node(store: ShardedNode) -> None:
    sched, clock = _scheduler(store, "Daily picks", DAILY_DUE - DAY)
    for day in range(2):
        clock.ms = DAILY_DUE + day * DAY + 500
        [run] = sched.tick().ran
        assert run.state == "done"
    rows = delivery_rows(store.path, "plan:Daily picks")
    want = milan_with_email(N)
    for day in range(2):
        got = per_contact(rows, DAILY_DUE + day * DAY)
        assert set(got) == want and max(got.values()) == 1


def test_a_preview_counts_every_shard(store: ShardedNode, tmp_path: Path) -> None:
    from audience.runtime.plans.preview import preview

    plain = build(tmp_path / "plain", N)
    for st in (store, plain):
        PlanService(st, ManualClock(DAILY_DUE - DAY)).add(RULES, "plans.rules")
    got = preview(store, "Daily picks", DAILY_DUE)
    want = preview(plain, "Daily picks", DAILY_DUE)
    for key in ("audience", "without_email", "held", "held_by_cap", "to_send"):
        assert got[key] == want[key], key
    assert got["audience"] == len({contact(i) for i in range(N) if i % 2 == 0})
    assert set(got["samples"]["without_email"]) == set(want["samples"]["without_email"])
    assert set(got["samples"]["to_send"]) == set(want["samples"]["to_send"])


def test_a_test_send_renders_the_contact_from_its_shard(store: ShardedNode, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from audience.cli import cli
    from audience.runtime.delivery import DeliveryLog

    plain = build(tmp_path / "plain", N)
    sent = {}
    for st in (store, plain):
        PlanService(st, ManualClock(ONCE_DUE - DAY)).add(RULES, "plans.rules")
        for k in (2, 3, 5):  # contacts of more than one shard
            args = ["messages", "test", str(st.path), "Spring event reminder"]
            r = CliRunner().invoke(cli, [*args, "--contact", contact(k)])
            assert r.exit_code == 0, r.output
        with DeliveryLog.open(st.path) as log:
            sent[st.path] = [(d.email, d.payload["subject"], d.payload["text"]) for d in log.list()]
    homes = shard_of(pa.array([contact(k) for k in (2, 3, 5)]), 3)
    assert len(set(homes.tolist())) > 1
    assert sent[store.path] == sent[plain.path]
    assert ("qa@maison.example", "Our spring collection, Name2", "Dear Name2 of Milan") in sent[
        plain.path
    ]
    r = CliRunner().invoke(
        cli, ["messages", "test", str(store.path), "Spring event reminder", "--contact", "zz"]
    )
    assert r.exit_code == 1 and "error[unknown_contact]" in r.output
