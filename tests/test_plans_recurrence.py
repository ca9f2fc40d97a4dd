"""A plan's occurrences: hand-checked cases (DST gaps and folds in several zones,
month ends, leap years, intervals), then properties over every IANA zone around
its transitions, checked against a plain date-by-date reading of the schedule."""

from __future__ import annotations

import calendar
import datetime as dt
import zoneinfo
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.dsl.ast_sending import WEEKDAYS, Schedule, Weekday
from audience.runtime.plans.recurrence import local_instant, next_occurrence, occurrences

UTC = dt.UTC
DAY_MS = 86_400_000


def ms(text: str) -> int:
    """Epoch ms of an ISO time with its offset."""
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def local(t: int, zone: str) -> str:
    """An instant as local ISO text with its offset: what a person reads on the clock."""
    return dt.datetime.fromtimestamp(t / 1000, ZoneInfo(zone)).isoformat()


def when(kind: str, at: str, zone: str | None = None, **kw: object) -> Schedule:
    hour, minute = (int(p) for p in at.split(":"))
    return Schedule(kind, dt.time(hour, minute), timezone=zone, **kw)  # type: ignore[arg-type]


def shown(s: Schedule, start: str, stop: str) -> list[str]:
    return [local(t, s.tz_name) for t in occurrences(s, ms(start), ms(stop))]


# ------------------------------------------------------------------ hand-checked


def test_rome_spring_forward_runs_at_the_first_minute_after_the_gap() -> None:
    # 2027-03-28: Rome's clocks go from 02:00 straight to 03:00.
    s = when("daily", "02:30", "Europe/Rome")
    assert shown(s, "2027-03-27T00:00Z", "2027-03-29T12:00Z") == [
        "2027-03-27T02:30:00+01:00",
        "2027-03-28T03:00:00+02:00",
        "2027-03-29T02:30:00+02:00",
    ]


def test_rome_fall_back_runs_once_at_the_first_reading() -> None:
    # 2027-10-31: Rome's clocks read 02:00-03:00 twice (CEST, then CET).
    s = when("daily", "02:30", "Europe/Rome")
    got = occurrences(s, ms("2027-10-30T12:00Z"), ms("2027-11-01T12:00Z"))
    assert [local(t, "Europe/Rome") for t in got] == [
        "2027-10-31T02:30:00+02:00",
        "2027-11-01T02:30:00+01:00",
    ]
    assert got[0] == ms("2027-10-31T00:30Z")  # not 01:30Z, the second 02:30


def test_new_york_keeps_nine_oclock_across_both_changes() -> None:
    s = when("weekly", "09:00", "America/New_York", weekdays=("sunday",))
    got = occurrences(s, ms("2027-03-01T00:00Z"), ms("2027-03-22T00:00Z"))
    # 2027-03-14 is the spring change: 09:00 is 14:00Z before it and 13:00Z after
    assert got == [ms("2027-03-07T14:00Z"), ms("2027-03-14T13:00Z"), ms("2027-03-21T13:00Z")]
    s = when("daily", "01:30", "America/New_York")
    assert shown(s, "2027-11-06T12:00Z", "2027-11-08T12:00Z") == [
        "2027-11-07T01:30:00-04:00",  # 01:30 happens twice on 2027-11-07: the first one
        "2027-11-08T01:30:00-05:00",
    ]
    s = when("daily", "02:10", "America/New_York")
    assert shown(s, "2027-03-13T12:00Z", "2027-03-14T12:00Z") == ["2027-03-14T03:00:00-04:00"]


def test_lord_howe_half_hour_changes() -> None:
    # Lord Howe moves its clocks by 30 minutes: 02:00 -> 02:30 on 2027-10-03,
    # and 02:00 -> 01:30 on 2027-04-04.
    s = when("daily", "02:15", "Australia/Lord_Howe")
    assert shown(s, "2027-10-01T12:00Z", "2027-10-03T12:00Z") == [
        "2027-10-02T02:15:00+10:30",
        "2027-10-03T02:30:00+11:00",
    ]
    s = when("daily", "01:45", "Australia/Lord_Howe")
    got = occurrences(s, ms("2027-04-02T12:00Z"), ms("2027-04-04T12:00Z"))
    assert [local(t, s.tz_name) for t in got] == [
        "2027-04-03T01:45:00+11:00",
        "2027-04-04T01:45:00+11:00",  # the first of two readings of 01:45
    ]


def test_day_31_runs_on_each_months_last_day_leap_years_included() -> None:
    s = when("monthly", "09:00", "UTC", month_day=31)
    got = shown(s, "2027-12-01T00:00Z", "2029-03-31T23:00Z")
    days = [t[:10] for t in got]
    assert days[:4] == ["2027-12-31", "2028-01-31", "2028-02-29", "2028-03-31"]
    assert "2028-04-30" in days and "2028-06-30" in days and "2029-02-28" in days
    assert days[-1] == "2029-03-31"
    assert len(days) == 16  # one a month, December 2027 to March 2029
    s = when("monthly", "09:00", None, month_day=30)
    assert [t[:10] for t in shown(s, "2028-01-01T00:00Z", "2028-03-31T00:00Z")] == [
        "2028-01-30",
        "2028-02-29",
        "2028-03-30",
    ]
    s = when("monthly", "09:00", None, month_day=29)
    assert [t[:10] for t in shown(s, "2027-02-01T00:00Z", "2027-03-31T00:00Z")] == [
        "2027-02-28",
        "2027-03-29",
    ]


def test_weekly_from_until_are_inclusive_local_dates() -> None:
    s = when(
        "weekly",
        "09:00",
        "Europe/Rome",
        weekdays=("monday", "thursday"),
        from_date=dt.date(2027, 1, 4),
        until_date=dt.date(2027, 1, 14),
    )
    assert [t[:10] for t in shown(s, "2026-12-01T00:00Z", "2027-02-01T00:00Z")] == [
        "2027-01-04",
        "2027-01-07",
        "2027-01-11",
        "2027-01-14",
    ]
    # 2027-01-14 09:00 in Rome is 08:00Z: inside until_ms when it is exactly that
    assert occurrences(s, ms("2027-01-14T07:59Z"), ms("2027-01-14T08:00Z")) == [
        ms("2027-01-14T08:00Z")
    ]
    assert occurrences(s, ms("2027-01-14T08:00Z"), ms("2027-02-14T08:00Z")) == []


def test_every_n_days_counts_from_its_from_date() -> None:
    s = when("every_n_days", "07:00", None, interval=3, from_date=dt.date(2027, 2, 26))
    assert [t[:10] for t in shown(s, "2027-01-01T00:00Z", "2027-03-10T00:00Z")] == [
        "2027-02-26",
        "2027-03-01",
        "2027-03-04",
        "2027-03-07",
    ]
    # a window far from the start lands on the same grid
    far = shown(s, "2030-01-01T00:00Z", "2030-01-08T00:00Z")
    start = dt.date(2027, 2, 26)
    assert far and all((dt.date.fromisoformat(t[:10]) - start).days % 3 == 0 for t in far)


def test_every_n_weeks_counts_from_the_from_dates_week() -> None:
    # from a Wednesday: that week's Thursday, not its Monday (before `from`),
    # then every other week's Monday and Thursday.
    s = when(
        "every_n_weeks",
        "09:00",
        "Europe/Rome",
        interval=2,
        weekdays=("monday", "thursday"),
        from_date=dt.date(2027, 1, 6),
    )
    assert [t[:10] for t in shown(s, "2027-01-01T00:00Z", "2027-02-05T00:00Z")] == [
        "2027-01-07",
        "2027-01-18",
        "2027-01-21",
        "2027-02-01",
        "2027-02-04",
    ]
    # no weekdays: the from date's own weekday
    s = when("every_n_weeks", "09:00", None, interval=3, from_date=dt.date(2027, 1, 6))
    assert [t[:10] for t in shown(s, "2027-01-01T00:00Z", "2027-02-20T00:00Z")] == [
        "2027-01-06",
        "2027-01-27",
        "2027-02-17",
    ]


def test_once_yields_one_instant() -> None:
    s = when("once", "10:00", "Europe/Rome", on_date=dt.date(2027, 3, 11))
    due = ms("2027-03-11T09:00Z")
    assert occurrences(s, 0, 2**45) == [due]
    assert occurrences(s, due - 1, due) == [due]
    assert occurrences(s, due, due + DAY_MS) == []  # strictly after after_ms
    assert next_occurrence(s, 0) == due
    assert next_occurrence(s, due) is None


def test_next_occurrence_and_the_end_of_a_schedule() -> None:
    s = when("daily", "09:00", "UTC", until_date=dt.date(2027, 1, 2))
    assert next_occurrence(s, ms("2027-01-01T09:00Z")) == ms("2027-01-02T09:00Z")
    assert next_occurrence(s, ms("2027-01-02T09:00Z")) is None
    yearly_ish = when("monthly", "00:00", "Pacific/Kiritimati", month_day=31)
    assert next_occurrence(yearly_ish, ms("2027-04-01T00:00Z")) == ms("2027-04-30T00:00+14:00")
    far = when("every_n_weeks", "12:00", None, interval=52, from_date=dt.date(2027, 1, 1))
    assert next_occurrence(far, ms("2027-01-02T00:00Z")) == ms("2027-12-31T12:00Z")
    none = when("weekly", "09:00", None)  # no weekday: the checker rejects it; nothing runs
    assert next_occurrence(none, 0) is None


def test_samoa_skipped_day_runs_once() -> None:
    # Samoa skipped 2011-12-30 entirely: its midnight runs at the next one, once.
    s = when("daily", "00:00", "Pacific/Apia")
    assert [t[:10] for t in shown(s, "2011-12-28T12:00Z", "2011-12-31T12:00Z")] == [
        "2011-12-29",
        "2011-12-31",
        "2012-01-01",
    ]


def test_bad_schedules_raise() -> None:
    with pytest.raises(ValueError, match="from date"):
        occurrences(when("every_n_days", "09:00", None, interval=2), 0, DAY_MS * 10)
    with pytest.raises(ValueError, match="interval"):
        occurrences(
            when("every_n_days", "09:00", None, interval=0, from_date=dt.date(1970, 1, 1)),
            0,
            DAY_MS * 10,
        )
    with pytest.raises(zoneinfo.ZoneInfoNotFoundError):
        occurrences(when("daily", "09:00", "Mars/Olympus"), 0, DAY_MS)


# ------------------------------------------------------------------ properties over every zone


@cache
def zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _offset(t: dt.datetime, zone: ZoneInfo) -> dt.timedelta | None:
    return t.astimezone(zone).utcoffset()


def transition_after(zone: ZoneInfo, start: dt.datetime, days: int = 400) -> dt.datetime | None:
    """The first instant after ``start`` (to the second) at which ``zone``'s offset changes."""
    # Whole seconds from the start: with a fractional ``lo``, a midpoint cut to
    # the second can fall back onto ``lo`` and the bisection would never end.
    t = start.replace(microsecond=0)
    for _ in range(days):
        nxt = t + dt.timedelta(days=1)
        if _offset(nxt, zone) != _offset(t, zone):
            lo, hi = t, nxt
            while hi - lo > dt.timedelta(seconds=1):
                mid = lo + dt.timedelta(seconds=(hi - lo) // dt.timedelta(seconds=2))
                if _offset(mid, zone) == _offset(lo, zone):
                    lo = mid
                else:
                    hi = mid
            return hi
        t = nxt
    return None


def test_transition_after_from_a_fractional_second() -> None:
    """The search ends, to the second, when the start has a fraction and the
    change lies within a second of a whole number of days from it (such a start
    once kept the bisection looping for ever)."""
    rome = ZoneInfo("Europe/Rome")
    start = dt.datetime(2026, 3, 28, 1, 0, 0, 500000, tzinfo=UTC)
    assert transition_after(rome, start) == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def _scheduled(s: Schedule, d: dt.date) -> bool:
    """Whether the schedule names local date ``d``: a plain reading of each kind."""
    if (s.from_date and d < s.from_date) or (s.until_date and d > s.until_date):
        return False
    if s.kind == "daily":
        return True
    if s.kind == "weekly":
        return WEEKDAYS[d.weekday()] in s.weekdays
    if s.kind == "monthly":
        assert s.month_day is not None
        return d.day == min(s.month_day, calendar.monthrange(d.year, d.month)[1])
    assert s.from_date is not None and s.interval is not None
    if s.kind == "every_n_days":
        return (d - s.from_date).days % s.interval == 0
    days = s.weekdays or (WEEKDAYS[s.from_date.weekday()],)

    def monday(x: dt.date) -> dt.date:
        return x - dt.timedelta(days=x.weekday())

    weeks = (monday(d) - monday(s.from_date)).days // 7
    return WEEKDAYS[d.weekday()] in days and weeks % s.interval == 0


def _exists(naive: dt.datetime, zone: ZoneInfo) -> bool:
    back = naive.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return back == naive


def check_schedule(s: Schedule, after_ms: int, until_ms: int) -> None:
    """Every occurrence in (after_ms, until_ms]: increasing, at the requested wall time
    (its first reading) or the first minute after a gap, one per scheduled date,
    within from/until, and no scheduled date missing."""
    zone = ZoneInfo(s.tz_name)
    got = occurrences(s, after_ms, until_ms)
    assert got == sorted(set(got)), "not strictly increasing"
    assert all(after_ms < t <= until_ms for t in got)
    dates: list[dt.date] = []
    for t in got:
        instant = dt.datetime.fromtimestamp(t / 1000, UTC)
        wall = instant.astimezone(zone)
        naive = wall.replace(tzinfo=None)
        if wall.time().replace(fold=0) == s.at:
            assert wall.fold == 0, f"{wall} is the second reading of {s.at}"
            requested = naive
        else:
            # a gap: the requested time did not exist, the clock jumped over it
            # within the minute before t, and t is a whole minute
            candidates = [
                dt.datetime.combine(naive.date() - dt.timedelta(days=k), s.at) for k in (0, 1, 2)
            ]
            requested = next(c for c in candidates if c < naive)
            assert not _exists(requested, zone), f"{requested} exists but ran at {naive}"
            before = (instant - dt.timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
            assert before < requested < naive and naive.second == 0
        dates.append(requested.date())
    assert len(dates) == len(set(dates)), "two runs for one scheduled date"
    assert all(_scheduled(s, d) for d in dates)
    # completeness: each scheduled date whose instant is surely inside the window
    first = dt.datetime.fromtimestamp(after_ms / 1000, UTC).date() + dt.timedelta(days=2)
    last = dt.datetime.fromtimestamp(until_ms / 1000, UTC).date() - dt.timedelta(days=2)
    d = first
    while d <= last:
        if _scheduled(s, d) and d not in dates:
            # only a date whose time a gap moved onto the next date's run may be absent
            assert not _exists(dt.datetime.combine(d, s.at), zone), f"{d} did not run"
        d += dt.timedelta(days=1)


def _schedule_near(zone_name: str, wall: dt.datetime, data: st.DataObject) -> Schedule:
    """A schedule of any kind whose time of day is ``wall``'s, naming dates around it."""
    day = wall.date()
    kind = data.draw(
        st.sampled_from(["daily", "weekly", "monthly", "every_n_days", "every_n_weeks"])
    )
    from_date = day - dt.timedelta(days=data.draw(st.integers(0, 20)))
    until_date = day + dt.timedelta(days=data.draw(st.integers(0, 20)))
    bounds = data.draw(st.sampled_from(["both", "from", "until", "none"]))
    kw: dict[str, object] = {
        "from_date": from_date if bounds in ("both", "from") else None,
        "until_date": until_date if bounds in ("both", "until") else None,
    }
    weekdays: tuple[Weekday, ...] = tuple(
        sorted(data.draw(st.sets(st.sampled_from(WEEKDAYS), min_size=1)), key=WEEKDAYS.index)
    )
    if kind == "weekly":
        kw["weekdays"] = weekdays
    elif kind == "monthly":
        kw["month_day"] = data.draw(st.sampled_from([day.day, 28, 29, 30, 31, 1]))
    elif kind.startswith("every_n"):
        kw["from_date"] = from_date
        kw["interval"] = data.draw(st.integers(1, 3))
        if kind == "every_n_weeks" and data.draw(st.booleans()):
            kw["weekdays"] = weekdays
    return Schedule(
        kind,  # type: ignore[arg-type]
        dt.time(wall.hour, wall.minute),
        timezone=zone_name,
        **kw,  # type: ignore[arg-type]
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone_name=st.sampled_from(zones()),
    start=st.datetimes(dt.datetime(1975, 1, 1), dt.datetime(2037, 1, 1)),
    shift=st.integers(-150, 150),
    data=st.data(),
)
def test_occurrences_around_a_zones_transitions(
    zone_name: str, start: dt.datetime, shift: int, data: st.DataObject
) -> None:
    zone = ZoneInfo(zone_name)
    start = start.replace(tzinfo=UTC)
    transition = transition_after(zone, start) or start
    # a wall time near the change, as the clocks read it just before it
    before = (transition - dt.timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
    wall = before + dt.timedelta(minutes=shift)
    s = _schedule_near(zone_name, wall, data)
    center = int(transition.timestamp() * 1000)
    check_schedule(s, center - 30 * DAY_MS, center + 30 * DAY_MS)


@pytest.mark.parametrize("zone_name", zones())
def test_every_zone_next_transition_daily(zone_name: str) -> None:
    """For each zone's first transition after 2026-01-01: daily runs at the minutes
    around the change (in the gap or fold when it has one) keep every property."""
    zone = ZoneInfo(zone_name)
    transition = transition_after(zone, dt.datetime(2026, 1, 1, tzinfo=UTC), days=800)
    if transition is None:
        transition = dt.datetime(2026, 6, 1, tzinfo=UTC)
    before = (transition - dt.timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
    center = int(transition.timestamp() * 1000)
    for shift in (-61, -30, -1, 0, 1, 29, 30, 31, 59, 60, 61):
        wall = before + dt.timedelta(minutes=shift)
        s = Schedule("daily", dt.time(wall.hour, wall.minute), timezone=zone_name)
        check_schedule(s, center - 5 * DAY_MS, center + 5 * DAY_MS)


def test_local_instant_gap_and_fold_directly() -> None:
    rome = ZoneInfo("Europe/Rome")
    assert local_instant(dt.datetime(2027, 3, 28, 2, 0), rome) == dt.datetime(
        2027, 3, 28, 1, 0, tzinfo=UTC
    )
    assert local_instant(dt.datetime(2027, 3, 28, 2, 59), rome) == dt.datetime(
        2027, 3, 28, 1, 0, tzinfo=UTC
    )
    assert local_instant(dt.datetime(2027, 10, 31, 2, 0), rome) == dt.datetime(
        2027, 10, 31, 0, 0, tzinfo=UTC
    )


def test_a_gap_ending_on_odd_seconds_runs_at_the_next_whole_minute() -> None:
    # Liberia left its -00:44:30 offset on 1972-01-07: local 00:00:00 to 00:44:30 never was.
    s = when("daily", "00:30", "Africa/Monrovia")
    assert shown(s, "1972-01-06T12:00Z", "1972-01-07T12:00Z") == ["1972-01-07T00:45:00+00:00"]


def test_the_ends_of_the_languages_calendar() -> None:
    first = when("once", "09:00", "America/Adak", on_date=dt.date(1000, 1, 1))
    due = dt.datetime(1000, 1, 1, 9, 0, tzinfo=ZoneInfo("America/Adak"))  # local mean time
    assert next_occurrence(first, -(2**62)) == int(due.timestamp() * 1000)
    last = when("once", "09:00", "Pacific/Kiritimati", on_date=dt.date(9000, 12, 31))
    assert next_occurrence(last, 0) == ms("9000-12-31T09:00:00+14:00")
    assert next_occurrence(last, 2**62) is None
    daily = when("daily", "09:00", "UTC", from_date=dt.date(9000, 12, 30))
    assert occurrences(daily, -(2**62), ms("9001-01-05T00:00Z"))[:2] == [
        ms("9000-12-30T09:00Z"),
        ms("9000-12-31T09:00Z"),
    ]
    huge = when("every_n_days", "09:00", None, interval=10**9, from_date=dt.date(2027, 1, 1))
    assert occurrences(huge, 0, 2**50) == [ms("2027-01-01T09:00Z")]
    assert next_occurrence(huge, ms("2027-01-01T09:00Z")) is None
