"""The report's periods: local midnights in the zone (DST changes make a
week 167 or 169 hours long), Monday weeks, month ends and leap days."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from audience.runtime.report.periods import periods
from tests.report_support import ms

HOUR = 3_600_000


def test_weeks_in_rome_start_at_local_monday_midnight_across_dst() -> None:
    per = periods("week", 3, ms("2026-04-15T12:00:00Z"), "Europe/Rome")
    assert per.labels[0] == "2026-01-12"  # the Monday of the week of Jan 15
    assert all(dt.date.fromisoformat(lb).weekday() == 0 for lb in per.labels)
    lengths = np.diff(per.starts) // HOUR
    i = per.labels.index("2026-03-23")  # the week the clocks go forward (Mar 29)
    assert lengths[i] == 167 and set(np.delete(lengths, i)) == {168}
    rome = ZoneInfo("Europe/Rome")
    for s in per.starts:
        local = dt.datetime.fromtimestamp(int(s) / 1000, rome)
        assert (local.hour, local.minute) == (0, 0)


def test_days_in_new_york_around_the_fall_change() -> None:
    per = periods("day", 3, ms("2026-11-02T12:00:00Z"), "America/New_York")
    i = per.labels.index("2026-11-01")
    assert (per.starts[i + 1] - per.starts[i]) // HOUR == 25
    # an instant an hour before local midnight belongs to the day before
    assert per.labels[per.index(np.array([per.starts[i] - HOUR]))[0]] == "2026-10-31"


@pytest.mark.parametrize(
    ("as_of", "months", "first"),
    [
        ("2026-03-31T10:00:00Z", 1, "2026-02-01"),  # Mar 31 - 1 month = Feb 28: its month
        ("2024-02-29T10:00:00Z", 12, "2023-02-01"),
        ("2026-12-31T23:59:59Z", 12, "2025-12-01"),
    ],
)
def test_months_back_from_a_month_end(as_of: str, months: int, first: str) -> None:
    per = periods("month", months, ms(as_of), "UTC")  # any span: the report allows 3, 6, 12
    assert per.labels[0] == first and per.labels[-1] == as_of[:8] + "01"
    assert len(per) == months + 1


def test_instants_outside_the_span() -> None:
    per = periods("week", 3, ms("2026-06-30T12:00:00Z"), "UTC")
    idx = per.index(np.array([per.starts[0] - 1, per.starts[0], per.starts[-1]]))
    assert idx.tolist() == [-1, 0, len(per)]
