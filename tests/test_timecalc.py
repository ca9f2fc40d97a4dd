"""Time zones and calendar arithmetic (audience.timecalc), shared by the
language, the compiler, triggers and DND policies."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfoNotFoundError

import pytest

from audience import timecalc as tc
from audience.dsl.ast import DndPolicy, Duration
from audience.dsl.literals import zone as literal_zone
from audience.dsl.parser import parse
from audience.runtime.delivery import Policy


def ms(iso: str) -> int:
    return tc.to_ms(dt.datetime.fromisoformat(iso))


def test_zone_is_cached_and_names_an_unknown_zone_clearly() -> None:
    assert tc.zone("Europe/Rome") is tc.zone("Europe/Rome")
    assert tc.zone("Europe/Rome").key == "Europe/Rome"
    # no such zone; not a key at all; a directory of the zone database; empty
    for name in ("Mars/Olympus_Mons", "../../etc/passwd", "America", ""):
        with pytest.raises(tc.UnknownZone) as info:
            tc.zone(name)
        assert str(info.value) == (
            f"unknown time zone {name!r} (an IANA name, such as 'Europe/Rome' or 'UTC')"
        )
        assert isinstance(info.value, ZoneInfoNotFoundError)  # what callers caught before
        assert info.value.name == name


def test_a_literal_outside_a_known_zone_is_still_read_in_utc() -> None:
    # the checker reports the zone; the parser still needs one to read dates in
    assert literal_zone("Mars/Olympus_Mons").key == "UTC"
    assert literal_zone("Asia/Tokyo") is tc.zone("Asia/Tokyo")


def test_to_ms_and_local_round_trip_exactly() -> None:
    for iso in (
        "2026-11-01T12:00:00.001+00:00",
        "1969-12-31T23:59:59.999+00:00",  # before the epoch: negative
        "9000-12-31T23:59:59.999+00:00",  # a float timestamp would lose the ms here
        "2026-03-29T02:30:00+02:00",
    ):
        t = ms(iso)
        assert tc.local(t, "UTC") == dt.datetime.fromisoformat(iso)
        assert tc.to_ms(tc.local(t, "Europe/Rome")) == t
    days = (dt.date(9001, 1, 1) - dt.date(1970, 1, 1)).days
    assert ms("9000-12-31T23:59:59.999+00:00") == days * 86_400_000 - 1
    assert tc.local(ms("2026-07-01T10:00:00+00:00"), "Europe/Rome").hour == 12


@pytest.mark.parametrize(
    ("start", "n", "unit", "tz", "expected"),
    [
        ("2026-01-31T12:00:00+00:00", 1, "month", "UTC", "2026-02-28T12:00:00+00:00"),
        ("2028-01-31T12:00:00+00:00", 1, "month", "UTC", "2028-02-29T12:00:00+00:00"),
        ("2026-11-15T12:00:00+00:00", 2, "month", "UTC", "2027-01-15T12:00:00+00:00"),
        # the wall-clock time is kept across a change of daylight saving time
        ("2026-03-15T10:00:00+01:00", 1, "month", "Europe/Rome", "2026-04-15T10:00:00+02:00"),
        # the month's end in the zone, not in UTC (Jan 31 local is Jan 30 UTC)
        ("2026-01-31T00:30:00+01:00", 1, "month", "Europe/Rome", "2026-02-28T00:30:00+01:00"),
        ("2026-03-28T12:00:00+01:00", 1, "day", "Europe/Rome", "2026-03-29T13:00:00+02:00"),
        ("2026-11-01T00:00:00+00:00", 90, "minute", "UTC", "2026-11-01T01:30:00+00:00"),
        ("2026-11-01T00:00:00+00:00", 2, "week", "Asia/Tokyo", "2026-11-15T00:00:00+00:00"),
    ],
)
def test_plus_and_minus(start: str, n: int, unit: str, tz: str, expected: str) -> None:
    d = Duration(n, unit)  # type: ignore[arg-type]
    assert tc.plus(ms(start), d, tz) == ms(expected)
    if unit != "month":  # months clamp, so they do not always come back
        assert tc.minus(ms(expected), d, tz) == ms(start)


def test_minus_clamps_to_the_end_of_a_shorter_month() -> None:
    d = Duration(1, "month")
    assert tc.minus(ms("2026-03-31T08:00:00+00:00"), d, "UTC") == ms("2026-02-28T08:00:00+00:00")
    assert tc.plus(ms("2026-03-31T08:00:00+00:00"), d, "UTC", -1) == tc.minus(
        ms("2026-03-31T08:00:00+00:00"), d, "UTC"
    )


def test_a_dnd_policy_in_an_unknown_zone_fails_when_made_and_says_why() -> None:
    d = parse('dnd "p" timezone "Mars/Olympus_Mons" {\n max 1 per month\n}').definitions[0]
    assert isinstance(d, DndPolicy)
    with pytest.raises(tc.UnknownZone, match="unknown time zone 'Mars/Olympus_Mons'"):
        Policy.from_ast(d)


def test_iso_utc_is_exact_and_names_what_datetime_cannot_hold() -> None:
    from audience.timecalc import iso_utc

    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1_799_999_999_999) == "2027-01-15T07:59:59.999Z"  # no float rounding up
    assert iso_utc(-1) == "1969-12-31T23:59:59.999Z"
    assert iso_utc(1_799_999_999_999, "seconds") == "2027-01-15T07:59:59Z"
    assert iso_utc(2**62) == f"{2**62} ms"
