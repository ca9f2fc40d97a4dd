"""The plans kept per program and snapshot (audience.engine.execute._plan_of,
scanplan.ScanPlan): a program evaluated over one version, then another whose
event types and string values differ, then the first again, answers as the
reference does each time; and a program unpickled anew finds the plan of
an equal one."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import pickle
from pathlib import Path
from typing import Any

import numba
import pytest

import audience
from audience.dsl.check import check_condition
from audience.dsl.parser import parse_condition
from audience.engine import execute, scanplan
from audience.engine.kernels import config
from audience.runtime.evaluate import CompiledSegment, compile_condition
from audience.runtime.store.store import Store
from audience.snapshot import Snapshot
from tests.reference.data import StoreData, random_store

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
TEXTS = (
    "did purchased in last 30 days or did email_clicked in last 30 days",
    'did viewed_product where category = "shoes" or sum(amount) of purchased > 50',
    'did viewed_product where category = "Shoes" in last 90 days',
    "avg(price) of viewed_product in last 60 days >= 50 or max(amount) of purchased > 200",
    "count_distinct(category) of viewed_product >= 2 and not did added_to_cart in last 14 days",
    "last purchased more than 20 days ago",
)


def _compile(text: str, data: StoreData) -> CompiledSegment:
    cond = parse_condition(text)
    assert not check_condition(cond, data.schema, timezone="UTC")
    return compile_condition(cond, data.schema)


def _snapshot(data: StoreData) -> Snapshot:
    events, profiles = data.to_arrow()
    return Store.from_arrow(events, profiles, data.schema).snapshot()


def test_one_program_over_versions_that_differ_answers_as_the_reference() -> None:
    full = random_store(5, n_contacts=80, n_events=1500, now=NOW)
    # the first version lacks a type and a category value the second has
    first = dataclasses.replace(
        full,
        events=[e for e in full.events if e.type != "purchased" and e.get("category") != "shoes"],
    )
    assert len(first.events) < len(full.events)
    snaps = [(first, _snapshot(first)), (full, _snapshot(full))]
    segs = [_compile(t, full) for t in TEXTS]
    answered = 0
    for data, snap in [*snaps, *snaps[::-1]]:
        for seg in segs:
            want = data.evaluate(seg.cond)
            answered += bool(want)
            assert set(seg.evaluate(snap, NOW).ids()) == want, seg.plan_text
    assert answered >= 8  # most answers are not empty


def test_a_program_unpickled_anew_finds_the_plan_of_an_equal_one() -> None:
    data = random_store(6, n_contacts=40, n_events=400, now=NOW)
    seg = _compile(TEXTS[1], data)
    copy = pickle.loads(pickle.dumps(seg.program))
    assert copy is not seg.program
    assert execute._plan_of(copy) is execute._plan_of(seg.program)
    other = _compile(TEXTS[2], data).program
    assert execute._plan_of(other) is not execute._plan_of(seg.program)


@pytest.mark.parametrize("min_rows", [1, 10**9])
def test_the_threads_of_a_pass_answer_as_the_reference(
    monkeypatch: pytest.MonkeyPatch, min_rows: int
) -> None:
    """Every call on two threads (at a threshold of one row), or none."""
    if numba.config.NUMBA_NUM_THREADS < 2:  # type: ignore[attr-defined]
        pytest.skip("one kernel thread")
    monkeypatch.setattr(config, "PARALLEL_MIN_ROWS", min_rows)
    data = random_store(7, n_contacts=60, n_events=1200, now=NOW)
    snap = _snapshot(data)
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        for text in TEXTS:
            seg = _compile(text, data)
            assert set(seg.evaluate(snap, NOW).ids()) == data.evaluate(seg.cond), text
    finally:
        numba.set_num_threads(before)


def test_a_program_over_many_shards_prepares_each_snapshot_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process that evaluates one program over many shards in turn (a
    sharded node's own evaluation) keeps every shard's plan, each right."""
    made: list[int] = []
    real = scanplan.prepare

    def counted(ctx: Any, *args: Any) -> Any:
        made.append(id(ctx.snapshot))
        return real(ctx, *args)

    monkeypatch.setattr(scanplan, "prepare", counted)
    shards = [random_store(20 + i, n_contacts=30, n_events=300, now=NOW) for i in range(5)]
    snaps = [(data, _snapshot(data)) for data in shards]
    seg = _compile(TEXTS[1], shards[0])
    for _ in range(3):
        for data, snap in snaps:
            assert set(seg.evaluate(snap, NOW).ids()) == data.evaluate(seg.cond)
    assert sorted(made) == sorted(id(snap) for _, snap in snaps)
    # the plans of snapshots no longer alive go as a new snapshot comes
    kept = execute._plan_of(seg.program).scans._kept
    assert len(kept) == len(snaps)
    del snaps[1:], snap  # (the loop's own name held the last one)
    gc.collect()
    data = random_store(30, n_contacts=30, n_events=300, now=NOW)
    new = _snapshot(data)
    assert set(seg.evaluate(new, NOW).ids()) == data.evaluate(seg.cond)
    assert sorted(kept) == sorted([id(snaps[0][1]), id(new)])


def test_a_partition_with_fewer_contacts_than_rows_is_refused() -> None:
    """The kernel reads a source's ``contact`` at every row unchecked: a
    hand-made partition whose contacts do not cover its rows is refused
    before it is called (it read past the array, or crashed)."""
    import numpy as np

    from audience.schema import Schema
    from audience.snapshot import Dictionary, Partition

    schema = Schema.load(Path(audience.__file__).parent / "examples" / "maison.toml")
    now_ms = int(NOW.timestamp() * 1000)
    ts = np.arange(now_ms - 200_000, now_ms, dtype=np.int64)
    part = Partition(
        int(ts[0]), int(ts[-1]), ts, np.zeros(8, dtype=np.int32), np.zeros(len(ts), np.int32), {}
    )
    types = list(schema.events)
    snap = Snapshot(
        1, schema, [f"c{i}" for i in range(10)], Dictionary.from_values(types), {},
        np.ones(10, bool), np.zeros(10, np.int64), {}, (part,),
    )  # fmt: skip
    seg = compile_condition(parse_condition(f"did {types[0]} in last 30 days"), schema)
    with pytest.raises(ValueError, match="a source has 8 contacts for its 200000 rows"):
        seg.evaluate(snap, NOW)
