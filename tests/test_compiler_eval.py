"""End-to-end semantics of compiled conditions over small hand-made snapshots
(SPEC 3): every expected audience below is computed by hand."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from audience.dsl import ast as a
from audience.runtime.evaluate import compile_condition
from audience.schema import Schema
from tests.compiler_ast import cmp, date, did, dur, ev, last, pf, profile, red_shoes, sel, when
from tests.compiler_snapshot import build_snapshot

SCHEMA = Schema.load("audience/examples/maison.toml")
NOW = "2026-11-01T00:00:00Z"


def run(
    cond: a.Cond,
    events: Iterable[Mapping[str, Any]] = (),
    profiles: Iterable[Mapping[str, Any]] = (),
    *,
    now: str = NOW,
    tz: str = "UTC",
) -> list[str]:
    snap = build_snapshot(SCHEMA, events, profiles)
    return sorted(compile_condition(cond, SCHEMA, timezone=tz).evaluate(snap, now).ids())


def view(c: str, ts: str, **props: Any) -> dict[str, Any]:
    return {"contact_id": c, "type": "viewed_product", "ts": ts, **props}


def buy(c: str, ts: str, **props: Any) -> dict[str, Any]:
    return {"contact_id": c, "type": "purchased", "ts": ts, **props}


# ------------------------------------------------------------------ did / windows / universe


def test_red_shoes() -> None:
    events = [
        view("a", "2026-10-25T10:00:00Z", product_name="Red Shoes"),
        view("b", "2026-10-25T10:00:00Z", product_name="Red Shoes"),
        buy("b", "2026-10-26T10:00:00Z"),
        view("c", "2026-10-25T10:00:00Z", product_name="Blue Shoes"),
        view("d", "2026-09-01T10:00:00Z", product_name="Red Shoes"),
        view("e", "2026-10-25T10:00:00Z", product_name="Red Shoes"),
        buy("e", "2026-10-01T10:00:00Z"),  # bought before the window: still in
    ]
    assert run(red_shoes(), events) == ["a", "e"]


def test_window_bounds_and_events_after_now() -> None:
    events = [
        buy("edge", "2026-10-17T00:00:00Z"),  # exactly now - 15 days: out
        buy("inside", "2026-10-17T00:00:00.001Z"),
        buy("now", NOW),  # exactly now: in
        buy("future", "2026-11-01T00:00:00.001Z"),  # after now: does not exist
    ]
    assert run(did("purchased", window=last(15, "day")), events) == ["inside", "now"]
    # the future-only contact is not in the universe, so `not` leaves it out too
    assert run(a.Not(did("purchased", window=last(15, "day"))), events) == ["edge"]
    assert run(did("purchased"), events, now="2026-11-02T00:00:00Z") == [
        "edge",
        "future",
        "inside",
        "now",
    ]


def test_universe_includes_profiles_without_events() -> None:
    events = [buy("a", "2026-10-20T00:00:00Z")]
    profiles = [{"contact_id": "p"}, {"contact_id": "a"}]
    assert run(a.Not(did("purchased")), events, profiles) == ["p"]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (None, ["one", "three", "two"]),
        (a.Count("at_least", 2), ["three", "two"]),
        (a.Count("at_most", 1), ["none", "one"]),
        (a.Count("exactly", 0), ["none"]),
        (a.Count("exactly", 2), ["two"]),
        (a.Count("between", 0, 2), ["none", "one", "two"]),
        (a.Count("between", 2, 3), ["three", "two"]),
        (a.Count("at_least", 0), ["none", "one", "three", "two"]),
    ],
)
def test_counts(count: a.Count | None, expected: list[str]) -> None:
    events = [buy("one", "2026-10-01T00:00:00Z")]
    events += [buy("two", f"2026-10-0{d}T00:00:00Z") for d in (1, 2)]
    events += [buy("three", f"2026-10-0{d}T00:00:00Z") for d in (1, 2, 3)]
    events += [view("none", "2026-10-01T00:00:00Z")]
    assert run(did("purchased", count=count), events) == expected


def test_event_type_lists_and_anything() -> None:
    events = [
        view("v", "2026-10-01T00:00:00Z"),
        buy("p", "2026-10-01T00:00:00Z"),
        {"contact_id": "f", "type": "form_compiled", "ts": "2026-10-01T00:00:00Z"},
    ]
    assert run(did(sel("viewed_product", "purchased")), events) == ["p", "v"]
    assert run(did(sel()), events) == ["f", "p", "v"]
    two = a.Count("at_least", 2)
    assert run(did(sel(), count=two), [*events, view("f", "2026-10-02T00:00:00Z")]) == ["f"]


# ------------------------------------------------------------------ event predicates


def _pred_events() -> list[dict[str, Any]]:
    return [
        view("red", "2026-10-01T00:00:00Z", product_name="Red Shoes", price=120.0, context="WEB"),
        view(
            "blue", "2026-10-01T00:00:00Z", product_name="Blue Shoes", price=40.0, context="MOBILE"
        ),
        view("bag", "2026-10-01T00:00:00Z", product_name="Bag", price=None),
        view("none", "2026-10-01T00:00:00Z"),
    ]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (cmp(ev("product_name"), "=", "Red Shoes"), ["red"]),
        (cmp(ev("product_name"), "!=", "Red Shoes"), ["bag", "blue"]),
        (cmp(ev("product_name"), "=", "Never Seen"), []),
        (cmp(ev("context"), "!=", "WEB"), ["blue"]),  # no context: false
        (cmp(ev("product_name"), "<", "C"), ["bag", "blue"]),
        (a.InList(ev("product_name"), (a.StringLit("Bag"), a.StringLit("X"))), ["bag"]),
        (a.InList(ev("product_name"), (a.StringLit("Bag"),), negated=True), ["blue", "red"]),
        (a.TextMatch(ev("product_name"), "ends_with", a.StringLit("Shoes")), ["blue", "red"]),
        (a.TextMatch(ev("product_name"), "starts_with", a.StringLit("B")), ["bag", "blue"]),
        (a.TextMatch(ev("product_name"), "contains", a.StringLit("ed S")), ["red"]),
        (a.TextMatch(ev("product_name"), "matches", a.StringLit("^B.*s$")), ["blue"]),
        (cmp(ev("price"), ">", 50), ["red"]),
        (cmp(ev("price"), "<=", 120.0), ["blue", "red"]),
        (cmp(ev("price"), "!=", 40), ["red"]),  # missing price: false
        (a.Between(ev("price"), a.NumberLit(40), a.NumberLit(100)), ["blue"]),
        (a.IsSet(ev("price")), ["blue", "red"]),
        (a.IsSet(ev("price"), negated=True), ["bag", "none"]),
        (a.PredNot(cmp(ev("price"), ">", 50)), ["bag", "blue", "none"]),
        (
            a.PredOr((cmp(ev("price"), ">", 100), cmp(ev("product_name"), "=", "Bag"))),
            ["bag", "red"],
        ),
        (
            a.PredAnd((cmp(ev("price"), ">", 10), cmp(ev("context"), "=", "MOBILE"))),
            ["blue"],
        ),
        (cmp(ev("type"), "=", "viewed_product"), ["bag", "blue", "none", "red"]),
        (a.TimeCompare(ev("ts"), "since", date("2026-10-01")), ["bag", "blue", "none", "red"]),
        (a.TimeCompare(ev("ts"), "before", date("2026-10-01")), []),
    ],
)
def test_event_predicates(where: a.Pred, expected: list[str]) -> None:
    assert run(did("viewed_product", where), _pred_events()) == expected


def test_profile_field_inside_an_event_predicate() -> None:
    events = [buy("m", "2026-10-01T00:00:00Z"), buy("r", "2026-10-01T00:00:00Z")]
    profiles = [{"contact_id": "m", "city": "Milan"}, {"contact_id": "r", "city": "Rome"}]
    where = cmp(ev("profile.city"), "=", "Milan")
    assert run(did("purchased", where), events, profiles) == ["m"]


def test_int_and_bool_event_properties() -> None:
    events = [
        {"contact_id": "x", "type": "added_to_cart", "ts": "2026-10-01T00:00:00Z", "quantity": 3},
        {"contact_id": "y", "type": "added_to_cart", "ts": "2026-10-01T00:00:00Z", "quantity": 1},
    ]
    assert run(did("added_to_cart", cmp(ev("quantity"), ">", 2.5)), events) == ["x"]
    assert run(did("added_to_cart", cmp(ev("quantity"), "=", 1)), events) == ["y"]


# ------------------------------------------------------------------ aggregates


def agg(
    func: a.AggFunc, prop: str, op: a.CompareOp, value: float, window: a.Window | None = None
) -> a.Aggregate:
    return a.Aggregate(func, ev(prop), sel("purchased"), None, window, op, a.NumberLit(value))


def _agg_events() -> list[dict[str, Any]]:
    return [
        buy("a", "2026-10-01T00:00:00Z", amount=100.0, store="S1"),
        buy("a", "2026-10-02T00:00:00Z", amount=150.0, store="S2"),
        buy("a", "2026-10-03T00:00:00Z", amount=None, store="S1"),  # left out of amount aggs
        buy("b", "2026-10-01T00:00:00Z", amount=20.0),
        buy("old", "2026-01-01T00:00:00Z", amount=500.0),
        view("n", "2026-10-01T00:00:00Z"),
    ]


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (agg("sum", "amount", ">", 200), ["a", "old"]),
        (agg("sum", "amount", ">", 200, last(90, "day")), ["a"]),
        (agg("sum", "amount", "<", 30, last(90, "day")), ["b", "n", "old"]),  # none: sum 0
        (agg("sum", "amount", "=", 0, last(90, "day")), ["n", "old"]),
        (agg("avg", "amount", "=", 125), ["a"]),  # the missing amount is left out
        (agg("avg", "amount", "<", 1000), ["a", "b", "old"]),  # no events: no value
        (agg("min", "amount", ">=", 100), ["a", "old"]),
        (agg("max", "amount", "<", 200), ["a", "b"]),
        (agg("max", "amount", "<", 200, last(90, "day")), ["a", "b"]),
        (agg("count_distinct", "store", ">=", 2), ["a"]),
        (agg("count_distinct", "store", "=", 0), ["b", "n", "old"]),
        (agg("count_distinct", "amount", "=", 2), ["a"]),
        (agg("sum", "items", "=", 0), ["a", "b", "n", "old"]),  # never present
    ],
)
def test_aggregates(cond: a.Aggregate, expected: list[str]) -> None:
    assert run(cond, _agg_events()) == expected


# ------------------------------------------------------------------ recency


def test_last_and_first_recency() -> None:
    events = [
        buy("lapsed", "2026-08-01T00:00:00Z"),
        buy("active", "2026-08-01T00:00:00Z"),
        buy("active", "2026-10-20T00:00:00Z"),
        buy("edge", "2026-09-02T00:00:00Z"),  # exactly 60 days before now: not more than
        view("never", "2026-10-01T00:00:00Z"),
        buy("later", "2026-11-03T00:00:00Z"),  # after now: does not exist
    ]
    lapsed = a.LastFirst("last", sel("purchased"), None, a.Recency("more_than_ago", dur(60, "day")))
    assert run(lapsed, events) == ["lapsed"]
    first_old = a.LastFirst(
        "first", sel("purchased"), None, a.Recency("more_than_ago", dur(60, "day"))
    )
    assert run(first_old, events) == ["active", "lapsed"]
    recent = a.LastFirst("last", sel("purchased"), None, a.Recency("less_than_ago", dur(60, "day")))
    assert run(recent, events) == ["active"]
    since = a.LastFirst(
        "first", sel("purchased"), None, a.Recency("since", start=date("2026-09-01"))
    )
    assert run(since, events) == ["edge"]


# ------------------------------------------------------------------ sequences


def seq(then_not: bool, within: a.Duration, window: a.Window | None = None) -> a.Sequence:
    return a.Sequence(sel("added_to_cart"), None, then_not, sel("purchased"), None, within, window)


def cart(c: str, ts: str) -> dict[str, Any]:
    return {"contact_id": c, "type": "added_to_cart", "ts": ts}


def test_then_within() -> None:
    events = [
        cart("fast", "2026-10-01T10:00:00Z"),
        buy("fast", "2026-10-01T10:30:00Z"),
        cart("slow", "2026-10-01T10:00:00Z"),
        buy("slow", "2026-10-01T11:00:00.001Z"),
        cart("exact", "2026-10-01T10:00:00Z"),
        buy("exact", "2026-10-01T11:00:00Z"),  # at most D after: in
        cart("same", "2026-10-01T10:00:00Z"),
        buy("same", "2026-10-01T10:00:00Z"),  # not strictly later
        buy("before", "2026-10-01T09:00:00Z"),
        cart("before", "2026-10-01T10:00:00Z"),
        cart("future", "2026-10-31T23:30:00Z"),
        buy("future", "2026-11-01T00:10:00Z"),  # after now
    ]
    assert run(seq(False, dur(1, "hour")), events) == ["exact", "fast"]


def test_then_not_within() -> None:
    events = [
        cart("bought", "2026-10-20T10:00:00Z"),
        buy("bought", "2026-10-21T10:00:00Z"),
        cart("late", "2026-10-20T10:00:00Z"),
        buy("late", "2026-10-23T10:00:00Z"),  # more than 2 days later
        cart("nobuy", "2026-10-20T10:00:00Z"),
        cart("young", "2026-10-31T10:00:00Z"),  # less than 2 days old: not yet
        cart("outside", "2026-10-01T10:00:00Z"),  # before the window
        cart("mixed", "2026-10-20T10:00:00Z"),
        buy("mixed", "2026-10-20T11:00:00Z"),
        cart("mixed", "2026-10-25T10:00:00Z"),  # this one is not followed
    ]
    cond = seq(True, dur(2, "day"), last(15, "day"))
    assert run(cond, events) == ["late", "mixed", "nobuy"]


def test_then_within_months_in_a_zone() -> None:
    events = [
        cart("x", "2026-01-31T12:00:00Z"),
        buy("x", "2026-02-28T12:00:00Z"),  # one calendar month later (clamped)
        cart("y", "2026-01-31T12:00:00Z"),
        buy("y", "2026-03-01T12:00:00Z"),
    ]
    assert run(seq(False, dur(1, "month")), events, tz="Europe/Rome") == ["x"]


# ------------------------------------------------------------------ profile predicates


def _profiles() -> list[dict[str, Any]]:
    return [
        {
            "contact_id": "ann",
            "city": "Milan",
            "tags": ["vip", "shoes"],
            "loyalty_points": 120,
            "newsletter": True,
            "birth_date": "1990-05-01",
            "signup_ts": "2026-10-20T10:00:00Z",
            "email": "ann@example.com",
        },
        {
            "contact_id": "bob",
            "city": "Rome",
            "tags": [],
            "loyalty_points": 10,
            "newsletter": False,
            "birth_date": "2001-01-01",
            "signup_ts": "2025-01-01T00:00:00Z",
        },
        {"contact_id": "cy"},
    ]


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (profile(cmp(pf("city"), "=", "Milan")), ["ann"]),
        (profile(cmp(pf("city"), "!=", "Milan")), ["bob"]),  # missing city: false
        (a.Not(profile(cmp(pf("city"), "=", "Milan"))), ["bob", "cy"]),
        (profile(a.IsSet(pf("city"), negated=True)), ["cy"]),
        (profile(a.TextMatch(pf("tags"), "contains", a.StringLit("vip"))), ["ann"]),
        (profile(a.TextMatch(pf("tags"), "contains", a.StringLit("vi"))), []),
        (profile(a.IsSet(pf("tags"))), ["ann"]),  # an empty list is not set
        (profile(a.IsSet(pf("tags"), negated=True)), ["bob", "cy"]),
        (profile(a.Between(pf("loyalty_points"), a.NumberLit(10), a.NumberLit(100))), ["bob"]),
        (profile(cmp(pf("newsletter"), "=", True)), ["ann"]),
        (profile(cmp(pf("newsletter"), "!=", True)), ["bob"]),
        (profile(a.TimeCompare(pf("birth_date"), "before", date("2000-01-01"))), ["ann"]),
        (profile(cmp(pf("birth_date"), "=", date("2001-01-01"))), ["bob"]),
        (profile(cmp(pf("birth_date"), "<", when("2001-01-01T12:00:00Z"))), ["ann", "bob"]),
        (profile(a.AgoCompare(pf("signup_ts"), "in_last", dur(30, "day"))), ["ann"]),
        (profile(a.AgoCompare(pf("signup_ts"), "more_than_ago", dur(30, "day"))), ["bob"]),
        (profile(a.TimeCompare(pf("signup_ts"), "since", date("2026-01-01"))), ["ann"]),
        (profile(a.IsSet(pf("email"))), ["ann"]),
        (profile(a.IsSet(pf("phone"), negated=True)), ["ann", "bob", "cy"]),
    ],
)
def test_profile_predicates(cond: a.Cond, expected: list[str]) -> None:
    assert run(cond, (), _profiles()) == expected


def test_boolean_logic() -> None:
    milan = profile(cmp(pf("city"), "=", "Milan"))
    vip = profile(a.TextMatch(pf("tags"), "contains", a.StringLit("vip")))
    rome = profile(cmp(pf("city"), "=", "Rome"))
    assert run(a.Or((milan, rome)), (), _profiles()) == ["ann", "bob"]
    assert run(a.And((milan, vip)), (), _profiles()) == ["ann"]
    assert run(a.And((a.Not(milan), a.Not(rome))), (), _profiles()) == ["cy"]
    assert run(a.Rule("x", a.Or((milan, rome), "any_of")), (), _profiles()) == ["ann", "bob"]


# ------------------------------------------------------------------ time zones


def test_month_window_in_rome() -> None:
    # now = 2026-04-15 12:00 CEST; one month back is 2026-03-15 12:00 CET = 11:00Z
    events = [buy("in", "2026-03-15T11:00:00.001Z"), buy("out", "2026-03-15T11:00:00Z")]
    cond = did("purchased", window=last(1, "month"))
    assert run(cond, events, now="2026-04-15T10:00:00Z", tz="Europe/Rome") == ["in"]
    assert run(cond, events, now="2026-04-15T10:00:00Z") == ["in", "out"]  # UTC: 10:00Z


def test_today_and_yesterday_in_rome() -> None:
    events = [
        buy("late_yesterday", "2026-03-28T22:30:00Z"),  # 23:30 CET on the 28th
        buy("today", "2026-03-28T23:30:00Z"),  # 00:30 on the 29th in Rome
    ]
    now = "2026-03-29T12:00:00Z"
    today = did("purchased", window=a.Window("today"))
    yesterday = did("purchased", window=a.Window("yesterday"))
    assert run(today, events, now=now, tz="Europe/Rome") == ["today"]
    assert run(yesterday, events, now=now, tz="Europe/Rome") == ["late_yesterday"]
    assert run(today, events, now=now) == []  # in UTC both were yesterday


# ------------------------------------------------------------------ lists, profile.x, ids


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        (cmp(pf("tags"), "=", "vip"), ["ann"]),  # some element
        (cmp(pf("tags"), "!=", "vip"), ["dee"]),  # set, and no element is vip
        (a.InList(pf("tags"), (a.StringLit("shoes"), a.StringLit("bags"))), ["ann", "dee"]),
        (a.InList(pf("tags"), (a.StringLit("shoes"),), negated=True), ["dee"]),
        (a.TextMatch(pf("tags"), "starts_with", a.StringLit("ba")), ["dee"]),
        (cmp(pf("tags"), ">", "t"), ["ann"]),  # "vip" > "t"
    ],
)
def test_list_operators_ask_about_some_element(pred: a.Comparison, expected: list[str]) -> None:
    profiles = [*_profiles(), {"contact_id": "dee", "tags": ["bags"]}]
    assert run(profile(pred), (), profiles) == expected


def test_count_distinct_over_a_list_counts_elements() -> None:
    schema = Schema.from_dict(
        {"events": {"order": {"skus": "list<string>", "total": "int"}}, "profile": {"tier": "int"}}
    )
    events = [
        {"contact_id": "a", "type": "order", "ts": "2026-10-01T00:00:00Z", "skus": ["x", "y"]},
        {"contact_id": "a", "type": "order", "ts": "2026-10-02T00:00:00Z", "skus": ["y", "z"]},
        {"contact_id": "b", "type": "order", "ts": "2026-10-02T00:00:00Z", "skus": ["x", "x"]},
        {"contact_id": "c", "type": "order", "ts": "2026-10-02T00:00:00Z", "skus": []},
    ]
    snap = build_snapshot(schema, events)

    def ids(op: a.CompareOp, n: int) -> list[str]:
        cond = a.Aggregate(
            "count_distinct", ev("skus"), sel("order"), None, None, op, a.NumberLit(n)
        )
        return sorted(compile_condition(cond, schema).evaluate(snap, NOW).ids())

    assert ids("=", 3) == ["a"]
    assert ids("=", 1) == ["b"]
    assert ids("=", 0) == ["c"]


def test_aggregates_over_a_profile_property() -> None:
    events = [buy("a", "2026-10-01T00:00:00Z"), buy("a", "2026-10-02T00:00:00Z")]
    events += [buy("b", "2026-10-01T00:00:00Z"), buy("n", "2026-10-01T00:00:00Z")]
    profiles: list[dict[str, Any]] = [
        {"contact_id": "a", "loyalty_points": 10, "tags": ["x", "y"]},
        {"contact_id": "b", "loyalty_points": 30, "tags": ["x"]},
        {"contact_id": "z", "loyalty_points": 99},  # no purchase
        {"contact_id": "n"},  # no value
    ]

    def ids(func: a.AggFunc, prop: str, op: a.CompareOp, n: float) -> list[str]:
        cond = a.Aggregate(func, pf(prop), sel("purchased"), None, None, op, a.NumberLit(n))
        return run(cond, events, profiles)

    assert ids("sum", "loyalty_points", "=", 20) == ["a"]  # 10 per purchase
    assert ids("sum", "loyalty_points", "<", 25) == ["a", "n", "z"]  # none: 0
    assert ids("avg", "loyalty_points", ">", 5) == ["a", "b"]
    assert ids("max", "loyalty_points", "<", 50) == ["a", "b"]
    assert ids("count_distinct", "loyalty_points", "=", 1) == ["a", "b"]
    assert ids("count_distinct", "tags", "=", 2) == ["a"]
    assert ids("count_distinct", "tags", "=", 0) == ["n", "z"]


def test_contact_id_in_an_event_predicate_and_since_on_a_property() -> None:
    events = [buy("42", "2026-10-01T00:00:00Z"), buy("c7", "2026-10-01T00:00:00Z")]
    assert run(did("purchased", cmp(ev("contact_id"), "=", "42")), events) == ["42"]
    assert run(did("purchased", cmp(ev("contact_id"), "!=", "42")), events) == ["c7"]
    # `since T` on a property has no upper bound (a future signup passes)
    profiles = [{"contact_id": "f", "signup_ts": "2027-01-01T00:00:00Z"}]
    since = profile(a.TimeCompare(pf("signup_ts"), "since", date("2026-01-01")))
    assert run(since, (), profiles) == ["f"]
