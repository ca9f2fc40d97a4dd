"""Values shared by the random stores and the random programs.

Programs draw their literals from the same small pools the stores draw their
values from, so predicates, windows and recencies are often true and often
fall exactly on a bound.  Floats are multiples of 1/4 with small magnitude:
their sums are exact in float64 whatever the order of addition, so the
reference and the engine agree on ``sum``/``avg`` to the bit.
"""

from __future__ import annotations

import datetime as dt
from functools import cache

from audience.dsl.ast import Duration
from audience.schema import CONTEXTS, Schema

from .timewin import local_date, local_midnight, minus

UTC = dt.UTC

TIMEZONES: tuple[str, ...] = ("UTC", "Europe/Rome")

# Evaluation times: month ends, the two 2026 DST changes of Europe/Rome
# (2026-03-29 01:00Z and 2026-10-25 01:00Z), around local and UTC midnights,
# a Monday (week start) and the SPEC's own example.
NOWS: tuple[dt.datetime, ...] = (
    dt.datetime(2026, 3, 31, 10, 0, tzinfo=UTC),
    dt.datetime(2026, 3, 29, 12, 0, tzinfo=UTC),
    dt.datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    dt.datetime(2026, 10, 25, 9, 30, tzinfo=UTC),
    dt.datetime(2026, 10, 26, 22, 45, tzinfo=UTC),
    dt.datetime(2026, 5, 31, 10, 0, tzinfo=UTC),
    dt.datetime(2026, 3, 1, 0, 30, tzinfo=UTC),
    dt.datetime(2026, 1, 31, 23, 59, 59, 999000, tzinfo=UTC),
    dt.datetime(2026, 2, 28, 12, 0, 0, 500000, tzinfo=UTC),
    dt.datetime(2026, 11, 2, 0, 0, tzinfo=UTC),
    dt.datetime(2026, 11, 1, 0, 0, tzinfo=UTC),
)

DURATIONS: tuple[Duration, ...] = (
    Duration(1, "minute"),
    Duration(90, "minute"),
    Duration(1, "hour"),
    Duration(36, "hour"),
    Duration(1, "day"),
    Duration(2, "day"),
    Duration(15, "day"),
    Duration(30, "day"),
    Duration(1, "week"),
    Duration(2, "week"),
    Duration(1, "month"),
    Duration(3, "month"),
)

GENERIC_STRINGS: tuple[str, ...] = ("alpha", "Alpha", "beta", "", "Ünïcode ☃", 'q"uote\\')
STRINGS: dict[str, tuple[str, ...]] = {
    "product_name": ("Red Shoes", "red shoes", "Blue Shirt", "Red Bag"),
    "product_id": ("p1", "p2", "p10"),
    "category": ("shoes", "Shoes", "shirts", "bags"),
    "order_id": ("o1", "o2", "o3"),
    "store": ("Milan", "Rome"),
    "campaign": ("C-1", "C-2", "C-10"),
    "url": ("https://shop.example/red", "https://shop.example/blue"),
    "form_name": ("addUser", "contact", "addUser2"),
    "email": ("ann@example.com", "bob@example.org", "ANN@example.com"),
    "first_name": ("Ann", "Bob", "Zoë"),
    "last_name": ("Rossi", "Bianchi"),
    "gender": ("female", "male", "other"),
    "city": ("Milan", "milan", "Rome", "Paris"),
    "address.city": ("Milan", "Rome", "Paris"),
    "country": ("IT", "FR"),
    "phone": ("+39 02 1234", "+33 1 5555"),
    "preferred_store": ("Milan", "Rome"),
}
LIST_ELEMENTS: tuple[str, ...] = ("vip", "VIP", "new", "shoes")
INTS: tuple[int, ...] = (-1, 0, 1, 2, 3, 5, 10, 250)
FLOATS: tuple[float, ...] = (0.0, 0.5, 1.25, 19.75, 50.0, 99.5, -3.25, 120.0, 200.0)
CONTEXT_VALUES: tuple[str, ...] = CONTEXTS
REGEXES: tuple[str, ...] = ("^Red", "shoes$", "o+", "[A-Z]", "^$", "e.*a")


def strings_for(name: str) -> tuple[str, ...]:
    return STRINGS.get(name, GENERIC_STRINGS)


@cache
def boundary_instants(now: dt.datetime) -> tuple[dt.datetime, ...]:
    """Instants where windows and recencies evaluated at ``now`` have a bound:
    ``now``, ``now - D`` for every duration in both zones, and the local
    midnights that start today, yesterday, this and last week and month."""
    out = {now.astimezone(UTC)}
    for tz in TIMEZONES:
        out.update(minus(now, d, tz) for d in DURATIONS)
        today = local_date(now, tz)
        monday = today - dt.timedelta(days=today.weekday())
        first = today.replace(day=1)
        previous_first = (first - dt.timedelta(days=1)).replace(day=1)
        days = [today, today - dt.timedelta(days=1), today + dt.timedelta(days=1)]
        days += [monday, monday - dt.timedelta(days=7), first, previous_first]
        out.update(local_midnight(day, tz) for day in days)
    return tuple(sorted(out))


@cache
def literal_instants() -> tuple[dt.datetime, ...]:
    """Whole-second instants for time literals: the bounds around every anchor."""
    out = {t.replace(microsecond=0) for now in NOWS for t in boundary_instants(now)}
    return tuple(sorted(out))


@cache
def literal_dates() -> tuple[dt.date, ...]:
    """Dates for date literals and date properties: around every anchor, in
    both zones, plus month ends and a leap day."""
    out: set[dt.date] = {dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2024, 2, 29)}
    for now in NOWS:
        for tz in TIMEZONES:
            today = local_date(now, tz)
            out.update(today + dt.timedelta(days=k) for k in (-31, -30, -7, -2, -1, 0, 1))
    return tuple(sorted(out))


# A schema with every type, for the profile and for events, a nested (dotted)
# name, property names shared across event types and a type written as a string.
TEST_SCHEMA = Schema.from_dict(
    {
        "profile": {
            "email": "string",
            "city": "string",
            "gender": "string",
            "birth_date": "date",
            "signup_ts": "datetime",
            "tags": "list<string>",
            "loyalty_points": "int",
            "score": "float",
            "newsletter": "bool",
            "address": {"city": "string"},
        },
        "events": {
            "viewed_product": {
                "product_name": "string",
                "category": "string",
                "price": "float",
                "labels": "list<string>",
            },
            "added_to_cart": {
                "product_name": "string",
                "category": "string",
                "price": "float",
                "quantity": "int",
            },
            "purchased": {
                "order_id": "string",
                "amount": "float",
                "items": "int",
                "category": "string",
                "gift": "bool",
                "delivery_date": "date",
                "shipped_at": "datetime",
            },
            "email_clicked": {"campaign": "string", "url": "string"},
            "page view": {"url": "string"},
        },
    }
)
