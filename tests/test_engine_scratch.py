"""The per-snapshot pool of work arrays (audience.engine.scratch): reusing
them between evaluations changes no answer, and no answer is one of them."""

from __future__ import annotations

import datetime as dt
import gc
import threading

import numpy as np
import pytest

from audience.dsl.check import check_condition
from audience.dsl.parser import parse_condition
from audience.engine import scratch
from audience.runtime.evaluate import CompiledSegment, compile_condition
from audience.runtime.store.store import Store
from audience.snapshot import Snapshot
from tests.reference.data import StoreData, random_store

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
# every kind of per-contact output: sums and other float folds, int folds,
# counts, exists flags, newest / oldest ts, and their boolean combinations
TEXTS = (
    "sum(amount) of purchased in last 90 days > 100",
    "avg(price) of viewed_product in last 60 days >= 50 or max(amount) of purchased > 200",
    "min(quantity) of added_to_cart <= 2 and not did email_clicked in last 30 days",
    "did viewed_product at least 3 times in last 90 days",
    "did anything in last 14 days",
    "last purchased more than 20 days ago",
    "first viewed_product less than 100 days ago and count_distinct(category) of"
    " viewed_product >= 2",
    "did purchased in last 30 days or did email_clicked in last 30 days"
    " or sum(amount) of purchased in last 365 days > 300",
    # sequences: their per-contact state is kept between evaluations, reset
    # at the contacts it held only (``Lease.neutral``)
    "did added_to_cart then not purchased within 5 days in last 60 days",
    "did viewed_product then purchased within 10 days",
    "did anything at most 0 times in last 7 days or did purchased exactly 0 times",
    # profile tests and combines write into leased masks: as the answer
    # itself (a root test, a root AND of tests), and under ANDs and ORs
    'city = "Milan"',
    "loyalty_points >= 100",
    'gender = "female" and city = "Rome"',
    "did email_clicked in last 7 days or sum(amount) of purchased in last 30 days > 30"
    ' or (gender = "female" and city = "Milan")',
    'sum(amount) of purchased in last 90 days > 20 and city = "Milan" and score < 0.5',
)


def _compile(text: str, data: StoreData) -> CompiledSegment:
    cond = parse_condition(text)
    assert not check_condition(cond, data.schema, timezone="UTC")
    return compile_condition(cond, data.schema)


@pytest.fixture
def data() -> StoreData:
    return random_store(11, n_contacts=120, n_events=2000, now=NOW)


@pytest.fixture
def snap(data: StoreData) -> Snapshot:
    events, profiles = data.to_arrow()
    return Store.from_arrow(events, profiles, data.schema).snapshot()


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every work array pooled, however small (the test stores are small)."""
    monkeypatch.setattr(scratch, "MIN_POOLED_BYTES", 0)


def _pooled_arrays(snap: Snapshot) -> list[np.ndarray]:
    return scratch.pool_of(snap).free_arrays()


@pytest.mark.usefixtures("pooled")
def test_answers_match_the_reference_in_a_row_and_interleaved(
    data: StoreData, snap: Snapshot
) -> None:
    segs = [_compile(t, data) for t in TEXTS]
    want = [data.evaluate(s.cond) for s in segs]
    assert sum(1 for w in want if w) >= 5  # the store makes most answers non-empty
    for seg, w in zip(segs, want, strict=True):  # each twice in a row
        assert set(seg.evaluate(snap, NOW).ids()) == w, seg.plan_text
        assert set(seg.evaluate(snap, NOW).ids()) == w, seg.plan_text
    assert _pooled_arrays(snap)  # the second evaluations reused the first's arrays
    for seg, w in [*zip(segs, want, strict=True), *zip(segs[::-1], want[::-1], strict=True)]:
        assert set(seg.evaluate(snap, NOW).ids()) == w, seg.plan_text


@pytest.mark.usefixtures("pooled")
def test_an_answer_is_never_a_pooled_array(data: StoreData, snap: Snapshot) -> None:
    segs = [_compile(t, data) for t in TEXTS]
    first = [seg.evaluate(snap, NOW) for seg in segs]
    kept = [a.mask.copy() for a in first]
    for _ in range(2):  # the pool's arrays refilled by every segment again
        for seg in segs:
            seg.evaluate(snap, NOW, explain=True)
    pooled = _pooled_arrays(snap)
    assert pooled
    for a, k in zip(first, kept, strict=True):
        assert np.array_equal(a.mask, k)
        assert a.mask.flags.writeable
        assert not any(np.shares_memory(a.mask, p) for p in pooled)
    # an answer written by its owner changes no later answer
    first[0].mask[:] = ~first[0].mask
    assert np.array_equal(segs[0].evaluate(snap, NOW).mask, kept[0])


@pytest.mark.usefixtures("pooled")
def test_concurrent_evaluations_of_one_snapshot_agree(data: StoreData, snap: Snapshot) -> None:
    segs = [_compile(t, data) for t in TEXTS]
    want = [data.evaluate(s.cond) for s in segs]
    errors: list[str] = []

    def worker(offset: int) -> None:
        for k in range(3 * len(segs)):
            i = (k + offset) % len(segs)
            got = set(segs[i].evaluate(snap, NOW).ids())
            if got != want[i]:
                errors.append(TEXTS[i])

    threads = [threading.Thread(target=worker, args=(o,)) for o in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert 0 < len(_pooled_arrays(snap)) <= scratch.KEEP + scratch.KEEP_MASKS


def test_small_arrays_are_not_pooled(data: StoreData, snap: Snapshot) -> None:
    seg = _compile(TEXTS[0], data)
    want = data.evaluate(seg.cond)
    assert set(seg.evaluate(snap, NOW).ids()) == want
    assert _pooled_arrays(snap) == []


@pytest.mark.usefixtures("pooled")
def test_the_pool_goes_with_its_snapshot(data: StoreData) -> None:
    events, profiles = data.to_arrow()
    snap = Store.from_arrow(events, profiles, data.schema).snapshot()
    _compile(TEXTS[0], data).evaluate(snap, NOW)
    key = id(snap)
    assert key in scratch._pools
    del snap
    gc.collect()
    assert key not in scratch._pools


def test_a_pool_hands_an_array_to_one_taker_and_keeps_the_newest() -> None:
    pool = scratch.ScratchPool()
    a = pool.take((3, 4), np.int64)
    pool.give(a)
    pool.give(a)  # twice: still one free array, never handed to two takers
    assert len(pool.free_arrays()) == 1
    assert pool.take((3, 4), np.float64) is not a  # another type: a new array
    assert pool.take((4, 3), np.int64) is not a  # another shape: a new array
    assert pool.take((3, 4), np.int64) is a
    assert pool.take((3, 4), np.int64) is not a
    given = [np.empty(5, np.float64) for _ in range(scratch.KEEP + 2)]
    for arr in given:
        pool.give(arr)
    kept = pool.free_arrays()
    assert len(kept) == scratch.KEEP
    assert all(x is y for x, y in zip(kept, given[2:], strict=True))
    # masks are kept apart: many of them do not push the work arrays out
    masks = [np.empty(5, np.bool_) for _ in range(scratch.KEEP_MASKS + 3)]
    for arr in masks:
        pool.give(arr)
    kept = pool.free_arrays()
    assert len(kept) == scratch.KEEP + scratch.KEEP_MASKS
    assert all(any(k is g for k in kept) for g in given[2:])
    assert all(any(k is m for k in kept) for m in masks[3:])
    assert not any(any(k is m for k in kept) for m in masks[:3])


def test_a_kept_sequence_state_goes_back_whole_and_changes_no_answer(
    data: StoreData, snap: Snapshot
) -> None:
    from audience.engine.kernels.sequence import NO_STATE

    segs = [_compile(t, data) for t in TEXTS if " then " in t]
    want = [data.evaluate(s.cond) for s in segs]
    assert all(want)  # non-empty answers: the states held contacts
    for _ in range(3):
        for seg, w in zip(segs, want, strict=True):
            assert set(seg.evaluate(snap, NOW).ids()) == w, seg.plan_text
    kept = [a for _, a in scratch.pool_of(snap)._neutral]
    assert len(kept) == 1  # one array, handed from evaluation to evaluation
    assert (kept[0] == NO_STATE).all()


def test_a_pool_hands_a_neutral_array_to_one_taker() -> None:
    pool = scratch.ScratchPool()
    a = pool.take_neutral((5,), np.int64, -1)
    assert a.tolist() == [-1] * 5
    pool.give_neutral(a, -1)
    pool.give_neutral(a, -1)  # twice: still handed to one taker only
    assert pool.take_neutral((5,), np.int64, 0) is not a  # another value
    assert pool.take_neutral((5,), np.int64, -1) is a
    assert pool.take_neutral((5,), np.int64, -1) is not a
