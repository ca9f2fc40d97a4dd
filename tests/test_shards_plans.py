"""Plans on a sharded node: the plan's audience is every shard's members,
frozen together; deliveries go to the shared log under the node's DND."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.scheduler import Scheduler
from audience.runtime.plans.service import PlanService
from audience.runtime.shards import ShardedStore, shard_of
from tests.plans_support import (
    DAILY_DUE,
    DAY,
    ONCE_DUE,
    RULES,
    build,
    contact,
    delivery_rows,
    milan_buyers_at_once,
    milan_with_email,
    per_contact,
)

N = 40


@pytest.fixture
def store(tmp_path: Path) -> ShardedStore:
    st = build(tmp_path / "shop", N, shards=3)
    assert isinstance(st, ShardedStore)
    homes = shard_of(pa.array([contact(i) for i in range(N)]), 3)
    assert len(set(homes.tolist())) == 3  # the audience spans every shard
    return st


def test_a_one_shot_plan_reaches_every_shard_once(store: ShardedStore) -> None:
    root = store.path
    clock = ManualClock(ONCE_DUE - DAY)
    svc = PlanService(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Spring reminder")
    sched = Scheduler(root, clock=clock)
    clock.ms = ONCE_DUE + 500
    [run] = sched.tick().ran
    expected = milan_buyers_at_once(N)
    audience = {contact(i) for i in range(N) if i % 2 == 0 and i % 7 != 0}
    assert run.state == "done"
    assert run.counts["audience"] == len(audience)
    assert run.counts["without_email"] == len(audience) - len(expected)
    assert run.counts["reserved"] == len(expected)
    rows = delivery_rows(root, "plan:Spring reminder")
    assert {c for _, c, _, _ in rows} == expected
    assert max(per_contact(rows, ONCE_DUE).values()) == 1
    assert sched.tick().ran == []


def test_a_daily_plan_under_dnd_on_a_sharded_node(store: ShardedStore) -> None:
    root = store.path
    clock = ManualClock(DAILY_DUE - DAY)
    svc = PlanService(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Daily picks")
    sched = Scheduler(root, clock=clock)
    for day in range(2):
        clock.ms = DAILY_DUE + day * DAY + 500
        [run] = sched.tick().ran
        assert run.state == "done"
    rows = delivery_rows(root, "plan:Daily picks")
    want = milan_with_email(N)
    for day in range(2):
        got = per_contact(rows, DAILY_DUE + day * DAY)
        assert set(got) == want and max(got.values()) == 1


def test_a_preview_is_refused_clearly(store: ShardedStore) -> None:
    from click.testing import CliRunner

    from audience.cli import cli

    PlanService(store, ManualClock(ONCE_DUE - DAY)).add(RULES, "plans.rules")
    r = CliRunner().invoke(cli, ["plans", "preview", str(store.path), "Spring reminder"])
    assert r.exit_code == 1
    assert "is sharded (3 shards)" in r.output and "does not work on a sharded node" in r.output
