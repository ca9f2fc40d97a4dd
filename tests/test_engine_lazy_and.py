"""An AND's profile tests run on the contacts its other operands kept
(audience.engine.execute.lazy_profile_steps): the same answers as testing
every contact, against the plain-Python reference."""

from __future__ import annotations

import datetime as dt

import pytest

from audience.dsl.check import check_condition
from audience.dsl.parser import parse_condition
from audience.engine import execute
from audience.runtime.evaluate import CompiledSegment, compile_condition
from audience.runtime.store.store import Store
from tests import test_compiler_differential as differential
from tests.reference.data import StoreData, random_store

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
# profile tests of every kind beside event operands: strings, numbers, dates,
# lists (tested over every contact), nested and / or / not, is set
TEXTS = (
    'sum(amount) of purchased in last 90 days > 50 and city = "Milan"',
    "did viewed_product in last 30 days and loyalty_points >= 100",
    'did purchased and not (city = "Rome" or gender = "female")',
    "did email_clicked and birth_date before 1990-01-01 and score < 0.5",
    'did added_to_cart in last 60 days and tags contains "vip"',
    "did anything in last 7 days and email is set and newsletter = true",
    'did purchased at least 2 times and (city = "Milan" and loyalty_points > 10)',
)


def _compile(text: str, data: StoreData) -> CompiledSegment:
    cond = parse_condition(text)
    assert not check_condition(cond, data.schema, timezone="UTC")
    return compile_condition(cond, data.schema)


@pytest.mark.parametrize("sparse", [0, execute._SPARSE])
@pytest.mark.parametrize("seed", [3, 8])
def test_lazy_profile_tests_agree_with_the_reference(
    seed: int, sparse: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execute, "_SPARSE", sparse)  # 0: always on the kept contacts
    data = random_store(seed, n_contacts=150, n_events=1500, now=NOW)
    events, profiles = data.to_arrow()
    snap = Store.from_arrow(events, profiles, data.schema).snapshot()
    lazy = 0
    for text in TEXTS:
        seg = _compile(text, data)
        lazy += bool(execute.lazy_profile_steps(seg.program))
        want = data.evaluate(seg.cond)
        assert set(seg.evaluate(snap, NOW).ids()) == want, text
        # explain tests every step over every contact (its counts): the same answer
        assert set(seg.evaluate(snap, NOW, explain=True).ids()) == want, text
    assert lazy >= len(TEXTS) - 1  # all but the not (of an or of two profile steps)


def test_a_profile_step_read_elsewhere_is_not_lazy() -> None:
    data = random_store(1, n_contacts=10, n_events=50, now=NOW)
    alone = _compile('city = "Milan"', data)
    ored = _compile('did purchased or city = "Milan"', data)
    assert execute.lazy_profile_steps(alone.program) == set()
    assert execute.lazy_profile_steps(ored.program) == set()


def test_random_programs_with_every_and_lazy_agree_with_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(execute, "_SPARSE", 0)  # every AND's profile tests on its kept contacts
    differential.test_engine_agrees_with_the_reference()  # the differential test, with it
