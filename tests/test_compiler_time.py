"""Windows, recencies and months -> absolute ranges (SPEC 2 and 3.1)."""

from __future__ import annotations

import pytest

from audience.compiler import plan as p
from audience.dsl import ast as a
from audience.engine.resolve_time import (
    INT64_MIN,
    day_threshold,
    recency_range,
    window_range,
)
from audience.timecalc import minus
from tests.compiler_ast import date, dur, when
from tests.compiler_snapshot import ms

ROME = "Europe/Rome"


def rng(win: a.Window, now: str, tz: str = "UTC") -> tuple[int, int]:
    return window_range(p.WindowRef(win, tz), ms(now))


def test_last_n_days_excludes_the_lower_edge_and_includes_now() -> None:
    lo, hi = rng(a.Window("last", dur(15, "day")), "2026-11-01T00:00:00Z")
    assert lo == ms("2026-10-17T00:00:00Z") + 1
    assert hi == ms("2026-11-01T00:00:00Z")


@pytest.mark.parametrize(
    ("now", "n", "tz", "expected"),
    [
        ("2026-05-31T08:00:00Z", 3, ROME, "2026-02-28T09:00:00Z"),  # 10:00 CEST -> 10:00 CET
        ("2026-03-31T12:00:00Z", 1, "UTC", "2026-02-28T12:00:00Z"),
        ("2028-03-31T12:00:00Z", 1, "UTC", "2028-02-29T12:00:00Z"),  # leap year
        ("2026-01-15T12:00:00Z", 2, "UTC", "2025-11-15T12:00:00Z"),  # across the year
        ("2026-04-15T10:00:00Z", 1, ROME, "2026-03-15T11:00:00Z"),  # across DST
    ],
)
def test_months_are_calendar_months_clamped(now: str, n: int, tz: str, expected: str) -> None:
    assert minus(ms(now), dur(n, "month"), tz) == ms(expected)


def test_fixed_units() -> None:
    now = ms("2026-11-01T00:00:00Z")
    assert minus(now, dur(2, "week"), ROME) == now - 14 * 86_400_000
    assert minus(now, dur(3, "hour"), "UTC") == now - 3 * 3_600_000
    assert minus(now, dur(5, "minute"), "UTC") == now - 300_000


def test_since_before_between_on() -> None:
    now = "2026-11-01T00:00:00Z"
    assert rng(a.Window("since", start=date("2026-10-01")), now) == (
        ms("2026-10-01T00:00:00Z"),
        ms(now),
    )
    assert rng(a.Window("before", end=date("2026-10-01")), now) == (
        INT64_MIN,
        ms("2026-10-01T00:00:00Z") - 1,
    )
    jan = a.Window("between", start=date("2026-01-01"), end=date("2026-01-31"))
    assert rng(jan, now) == (ms("2026-01-01T00:00:00Z"), ms("2026-02-01T00:00:00Z") - 1)
    exact = a.Window(
        "between", start=when("2026-01-01T10:00:00Z"), end=when("2026-01-02T10:00:00Z")
    )
    assert rng(exact, now) == (ms("2026-01-01T10:00:00Z"), ms("2026-01-02T10:00:00Z"))
    on = a.Window("on", start=date("2026-03-29", ROME))
    # the DST day in Rome is 23 hours long
    assert rng(on, now, ROME) == (ms("2026-03-28T23:00:00Z"), ms("2026-03-29T22:00:00Z") - 1)


def test_windows_never_reach_past_now() -> None:
    now = "2026-10-15T00:00:00Z"
    win = a.Window("between", start=date("2026-10-01"), end=date("2026-10-31"))
    assert rng(win, now)[1] == ms(now)


@pytest.mark.parametrize(
    ("kind", "lo", "hi"),
    [
        ("today", "2026-03-28T23:00:00Z", None),
        ("yesterday", "2026-03-27T23:00:00Z", "2026-03-28T23:00:00Z"),
        ("this_week", "2026-03-22T23:00:00Z", None),
        ("last_week", "2026-03-15T23:00:00Z", "2026-03-22T23:00:00Z"),
        ("this_month", "2026-02-28T23:00:00Z", None),
        ("last_month", "2026-01-31T23:00:00Z", "2026-02-28T23:00:00Z"),
    ],
)
def test_calendar_windows_in_rome_on_the_dst_sunday(kind: str, lo: str, hi: str | None) -> None:
    now = "2026-03-29T12:00:00Z"  # Sunday, 14:00 CEST
    got = rng(a.Window(kind), now, ROME)  # type: ignore[arg-type]
    assert got == (ms(lo), ms(now) if hi is None else ms(hi) - 1)


def test_calendar_windows_utc_week_starts_monday() -> None:
    now = "2026-11-01T09:00:00Z"  # a Sunday
    assert rng(a.Window("this_week"), now)[0] == ms("2026-10-26T00:00:00Z")
    assert rng(a.Window("today"), now)[0] == ms("2026-11-01T00:00:00Z")
    assert rng(a.Window("this_month"), "2026-11-01T00:00:00Z") == (
        ms("2026-11-01T00:00:00Z"),
        ms("2026-11-01T00:00:00Z"),
    )


def test_recency_ranges() -> None:
    now = ms("2026-11-01T00:00:00Z")
    edge = ms("2026-09-02T00:00:00Z")  # now - 60 days
    more = a.Recency("more_than_ago", dur(60, "day"))
    assert recency_range(more, "UTC", now) == (INT64_MIN, edge - 1)
    less = a.Recency("less_than_ago", dur(60, "day"))
    assert recency_range(less, "UTC", now) == (edge + 1, now)
    assert recency_range(a.Recency("in_last", dur(60, "day")), "UTC", now) == (edge + 1, now)
    before = a.Recency("before", end=date("2026-10-01"))
    assert recency_range(before, "UTC", now) == (INT64_MIN, ms("2026-10-01T00:00:00Z") - 1)
    between = a.Recency("between", start=date("2026-10-01"), end=date("2026-10-01"))
    assert recency_range(between, "UTC", now) == (
        ms("2026-10-01T00:00:00Z"),
        ms("2026-10-02T00:00:00Z") - 1,
    )


def test_day_threshold() -> None:
    midnight = ms("2026-01-10T00:00:00Z")
    day = (20_463,)  # 2026-01-10 as days since 1970-01-01
    assert day_threshold("<", midnight, "UTC") == ("<", day[0])
    noon = ms("2026-01-10T12:00:00Z")
    assert day_threshold("<", noon, "UTC") == ("<=", day[0])
    assert day_threshold(">", noon, "UTC") == (">=", day[0] + 1)
    assert day_threshold("=", noon, "UTC") is False
    assert day_threshold("!=", noon, "UTC") is True
    # in Rome, 2026-01-09T23:00Z is local midnight of the 10th
    assert day_threshold(">=", ms("2026-01-09T23:00:00Z"), ROME) == (">=", day[0])


def test_then_not_at_least_a_calendar_month_old_is_measured_back_from_now() -> None:
    """``then not ... within 1 month``: the first event must be at or before
    now - 1 month.  On 2026-02-28 that is 2026-01-28, although 2026-01-29
    plus one month (clamped) is 2026-02-28 as well."""
    import pyarrow as pa

    from audience.runtime.node import Node
    from audience.schema import Schema

    schema = Schema.from_toml("[events.email_clicked]\n[events.viewed_product]\n")
    now = "2026-02-28T12:00:00.500Z"
    rows = [
        {
            "id": "a",
            "contact_id": "jan29",
            "type": "email_clicked",
            "ts": ms("2026-01-29T12:00:00Z"),
        },
        {
            "id": "b",
            "contact_id": "jan28",
            "type": "email_clicked",
            "ts": ms("2026-01-28T12:00:00Z"),
        },
    ]
    store = Node.from_arrow(pa.Table.from_pylist(rows), schema=schema)
    seg = store.compile("did email_clicked then not viewed_product within 1 month")
    assert seg.evaluate(as_of=now).ids() == ["jan28"]
