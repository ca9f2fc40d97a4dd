"""Hand-computed cases that pin the semantics of SPEC section 3 on the
reference evaluator, and properties of the random stores and programs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from audience.dsl.ast import (
    AggFunc,
    Aggregate,
    AgoCompare,
    And,
    Between,
    Compare,
    CompareOp,
    Count,
    Did,
    Duration,
    EventSel,
    InList,
    InSegment,
    IsSet,
    LastFirst,
    Not,
    NumberLit,
    Or,
    PredNot,
    Recency,
    Rule,
    Segment,
    Sequence,
    StringLit,
    TextMatch,
    TimeCompare,
    Window,
)
from tests.reference import SegmentError, dedup, evaluate_segment, universe
from tests.reference.builders import (
    NOW,
    ROME,
    at,
    day,
    did,
    dur,
    ef,
    ev,
    last,
    pf,
    prof,
    run,
    sel,
    t,
)
from tests.reference.data import random_store, stores
from tests.reference.programs import programs
from tests.reference.timewin import add_months, minus
from tests.reference.vocab import TEST_SCHEMA

# --------------------------------------------------------------------------- windows


def test_in_last_excludes_the_lower_bound_and_includes_now() -> None:
    events = [
        ev("a", "purchased", "2026-03-16T10:00:00Z"),  # exactly now - 15 days
        ev("b", "purchased", "2026-03-16T10:00:00.001Z"),
        ev("c", "purchased", "2026-03-31T10:00:00Z"),  # exactly now
        ev("d", "purchased", "2026-03-31T10:00:00.001Z"),  # after now
    ]
    assert run(did(window=last(15, "day")), events) == {"b", "c"}


def test_since_is_inclusive_and_stops_at_now() -> None:
    events = [
        ev("a", "purchased", "2026-03-01T00:00:00Z"),
        ev("b", "purchased", "2026-02-28T23:59:59.999Z"),
        ev("c", "purchased", "2026-04-01T00:00:00Z"),
    ]
    assert run(did(window=Window("since", start=day("2026-03-01"))), events) == {"a"}


def test_before_is_exclusive() -> None:
    events = [
        ev("a", "purchased", "2026-03-01T00:00:00Z"),
        ev("b", "purchased", "2026-02-28T23:59:59.999Z"),
    ]
    assert run(did(window=Window("before", end=at("2026-03-01T00:00:00+00:00"))), events) == {"b"}


def test_between_datetimes_is_inclusive_at_both_ends() -> None:
    events = [
        ev("a", "purchased", "2026-03-01T00:00:00Z"),
        ev("b", "purchased", "2026-03-02T00:00:00Z"),
        ev("c", "purchased", "2026-03-02T00:00:00.001Z"),
    ]
    w = Window("between", start=at("2026-03-01T00:00:00Z"), end=at("2026-03-02T00:00:00Z"))
    assert run(did(window=w), events) == {"a", "b"}


def test_between_dates_covers_the_whole_last_day() -> None:
    events = [
        ev("a", "purchased", "2026-01-31T23:59:59.999Z"),
        ev("b", "purchased", "2026-02-01T00:00:00Z"),
        ev("c", "purchased", "2026-01-01T00:00:00Z"),
    ]
    w = Window("between", start=day("2026-01-01"), end=day("2026-01-31"))
    assert run(did(window=w), events) == {"a", "c"}


def test_on_a_date_is_that_local_day() -> None:
    events = [
        ev("a", "purchased", "2026-03-28T23:30:00Z"),  # Mar 29 00:30 in Rome
        ev("b", "purchased", "2026-03-29T22:30:00Z"),  # Mar 30 00:30 CEST in Rome
        ev("c", "purchased", "2026-03-29T21:59:59.999Z"),  # Mar 29 23:59:59.999 CEST
    ]
    assert run(did(window=Window("on", start=day("2026-03-29"))), events) == {"b", "c"}
    on_rome = Window("on", start=day("2026-03-29", ROME))
    assert run(did(window=on_rome), events, tz=ROME) == {"a", "c"}


def test_today_starts_at_local_midnight() -> None:
    now = t("2026-03-01T00:30:00Z")  # 01:30 in Rome
    events = [ev("a", "purchased", "2026-02-28T23:30:00Z")]  # 00:30 in Rome
    assert run(did(window=Window("today")), events, now=now) == set()
    assert run(did(window=Window("today")), events, now=now, tz=ROME) == {"a"}


def test_today_on_the_dst_day_starts_at_local_midnight_before_the_jump() -> None:
    now = t("2026-03-29T12:00:00Z")
    events = [
        ev("a", "purchased", "2026-03-28T23:00:00Z"),  # 00:00 CET
        ev("b", "purchased", "2026-03-28T22:59:59.999Z"),
    ]
    assert run(did(window=Window("today")), events, now=now, tz=ROME) == {"a"}


def test_yesterday_is_the_previous_local_day() -> None:
    events = [
        ev("a", "purchased", "2026-03-30T00:00:00Z"),
        ev("b", "purchased", "2026-03-30T23:59:59.999Z"),
        ev("c", "purchased", "2026-03-31T00:00:00Z"),
        ev("d", "purchased", "2026-03-29T23:59:59.999Z"),
    ]
    assert run(did(window=Window("yesterday")), events) == {"a", "b"}


def test_this_week_starts_monday_and_last_week_is_the_week_before() -> None:
    events = [
        ev("sun", "purchased", "2026-03-29T23:59:59.999Z"),
        ev("mon", "purchased", "2026-03-30T00:00:00Z"),
        ev("prev_mon", "purchased", "2026-03-23T00:00:00Z"),
        ev("older", "purchased", "2026-03-22T23:59:59.999Z"),
    ]
    assert run(did(window=Window("this_week")), events) == {"mon"}
    assert run(did(window=Window("last_week")), events) == {"sun", "prev_mon"}


def test_this_month_and_last_month() -> None:
    events = [
        ev("feb1", "purchased", "2026-02-01T00:00:00Z"),
        ev("feb28", "purchased", "2026-02-28T23:59:59.999Z"),
        ev("mar1", "purchased", "2026-03-01T00:00:00Z"),
        ev("jan31", "purchased", "2026-01-31T23:59:59.999Z"),
    ]
    assert run(did(window=Window("this_month")), events) == {"mar1"}
    assert run(did(window=Window("last_month")), events) == {"feb1", "feb28"}


def test_months_are_calendar_months_clamped_to_the_month_end() -> None:
    now = t("2026-05-31T10:00:00Z")
    assert minus(now, dur(3, "month"), "UTC") == t("2026-02-28T10:00:00Z")
    events = [
        ev("a", "purchased", "2026-02-28T10:00:00Z"),
        ev("b", "purchased", "2026-02-28T10:00:00.001Z"),
    ]
    assert run(did(window=last(3, "month")), events, now=now) == {"b"}


def test_months_keep_the_local_wall_clock_across_dst() -> None:
    now = t("2026-04-15T10:00:00Z")  # 12:00 CEST; a month back is 12:00 CET = 11:00Z
    events = [ev("a", "purchased", "2026-03-15T10:30:00Z")]
    assert run(did(window=last(1, "month")), events, now=now) == {"a"}
    assert run(did(window=last(1, "month")), events, now=now, tz=ROME) == set()


def test_a_month_shift_into_the_dst_gap_reads_the_wall_time_with_fold_0() -> None:
    # 02:30 CEST on Apr 29; 02:30 on Mar 29 does not exist: the pre-jump offset applies
    assert add_months(t("2026-04-29T00:30:00Z"), -1, ROME) == t("2026-03-29T01:30:00Z")
    # 02:30 on Oct 25 happens twice: fold=0 is the first (CEST) one
    assert add_months(t("2026-09-25T00:30:00Z"), 1, ROME) == t("2026-10-25T00:30:00Z")


def test_days_are_fixed_lengths_even_across_dst() -> None:
    now = t("2026-03-29T12:00:00Z")
    events = [ev("a", "purchased", "2026-03-28T11:30:00Z")]  # within 1 day of wall clock
    assert run(did(window=last(1, "day")), events, now=now, tz=ROME) == set()
    assert run(did(window=last(25, "hour")), events, now=now, tz=ROME) == {"a"}


# --------------------------------------------------------------------------- counts, universe


COUNT_EVENTS = [
    ev("one", "purchased", "2026-03-30T00:00:00Z"),
    ev("two", "purchased", "2026-03-01T00:00:00Z"),
    ev("two", "purchased", "2026-03-02T00:00:00Z"),
    ev("viewer", "viewed_product", "2026-03-02T00:00:00Z"),
    ev("future", "purchased", "2026-04-02T00:00:00Z"),
]
COUNT_PROFILES: dict[str, dict[str, Any]] = {"profile_only": {"city": "Milan"}}


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (None, {"one", "two"}),
        (Count("at_least", 2), {"two"}),
        (Count("exactly", 2), {"two"}),
        (Count("between", 2, 3), {"two"}),
        (Count("at_most", 1), {"one", "viewer", "profile_only"}),
        (Count("exactly", 0), {"viewer", "profile_only"}),
        (Count("between", 0, 1), {"one", "viewer", "profile_only"}),
        (Count("at_least", 0), {"one", "two", "viewer", "profile_only"}),
    ],
)
def test_counts_and_no_event_contacts(count: Count | None, expected: set[str]) -> None:
    # "future" has only an event after now: not known yet, in no result
    assert run(did(count=count), COUNT_EVENTS, COUNT_PROFILES) == expected


def test_not_is_the_universe_minus_the_condition() -> None:
    assert run(Not(did()), COUNT_EVENTS, COUNT_PROFILES) == {"viewer", "profile_only"}
    assert universe(COUNT_EVENTS, COUNT_PROFILES, NOW) == {"one", "two", "viewer", "profile_only"}


def test_events_after_now_do_not_exist() -> None:
    events = [ev("a", "purchased", "2026-04-01T00:00:00Z", amount=10.0)]
    assert run(did(), events) == set()
    assert run(did(), events, now=t("2026-04-01T00:00:00Z")) == {"a"}
    agg = Aggregate("sum", ef("amount"), sel("purchased"), None, None, ">", NumberLit(5))
    assert run(agg, events) == set()


def test_dedup_keeps_the_first_occurrence_of_an_id() -> None:
    events = [
        ev("a", "purchased", "2026-03-30T00:00:00Z", id="e1"),
        ev("b", "purchased", "2026-03-30T00:00:00Z", id="e1"),  # same event: dropped
        ev("c", "purchased", "2026-04-30T00:00:00Z", id="e2"),  # after now
        ev("d", "purchased", "2026-03-01T00:00:00Z", id="e2"),  # dropped, though before now
        ev("n", "purchased", "2026-03-01T00:00:00Z", id=None),
        ev("n", "purchased", "2026-03-02T00:00:00Z", id=None),  # no id: never a duplicate
    ]
    assert [e.contact_id for e in dedup(events)] == ["a", "c", "n", "n"]
    assert run(did(), events) == {"a", "n"}
    assert run(Not(did()), events) == set()  # b and d are not known at all
    assert run(did(count=Count("exactly", 2)), events) == {"n"}


# --------------------------------------------------------------------------- predicates


PEOPLE: dict[str, dict[str, Any]] = {
    "milan": {"city": "Milan", "tags": ["vip", "new"], "loyalty_points": 10},
    "rome": {"city": "Rome", "tags": [], "loyalty_points": None},
    "none": {"city": None},
    "lower": {"city": "milan", "tags": ["VIP"], "score": 2.5},
}


def test_a_missing_value_makes_every_comparison_false_but_not_negates_plainly() -> None:
    assert run(prof(Compare(pf("city"), "!=", StringLit("Milan"))), [], PEOPLE) == {
        "rome",
        "lower",
    }
    assert run(Not(prof(Compare(pf("city"), "=", StringLit("Milan")))), [], PEOPLE) == {
        "rome",
        "none",
        "lower",
    }
    assert run(prof(InList(pf("city"), (StringLit("Rome"),), negated=True)), [], PEOPLE) == {
        "milan",
        "lower",
    }


def test_is_set_and_is_not_set_with_empty_lists() -> None:
    assert run(prof(IsSet(pf("tags"))), [], PEOPLE) == {"milan", "lower"}
    assert run(prof(IsSet(pf("tags"), negated=True)), [], PEOPLE) == {"rome", "none"}
    # a contact known only by its events has no profile values at all
    events = [ev("ghost", "purchased", "2026-03-01T00:00:00Z")]
    assert run(prof(IsSet(pf("city"), negated=True)), events) == {"ghost"}


def test_strings_compare_by_code_point_case_sensitively() -> None:
    assert run(prof(Compare(pf("city"), "<", StringLit("Rome"))), [], PEOPLE) == {"milan"}
    assert run(prof(Compare(pf("city"), ">", StringLit("Rome"))), [], PEOPLE) == {"lower"}
    profiles = {"z": {"city": "Zoë"}}
    assert run(prof(Compare(pf("city"), ">", StringLit("Zoz"))), [], profiles) == {"z"}


def test_contains_is_a_substring_on_strings_and_an_element_on_lists() -> None:
    assert run(prof(TextMatch(pf("city"), "contains", StringLit("ila"))), [], PEOPLE) == {
        "milan",
        "lower",
    }
    assert run(prof(TextMatch(pf("tags"), "contains", StringLit("vip"))), [], PEOPLE) == {"milan"}
    assert run(prof(TextMatch(pf("tags"), "contains", StringLit("vi"))), [], PEOPLE) == set()


def test_starts_ends_and_matches_uses_re_search() -> None:
    assert run(prof(TextMatch(pf("city"), "starts_with", StringLit("M"))), [], PEOPLE) == {"milan"}
    assert run(prof(TextMatch(pf("city"), "ends_with", StringLit("me"))), [], PEOPLE) == {"rome"}
    assert run(prof(TextMatch(pf("city"), "matches", StringLit("la"))), [], PEOPLE) == {
        "milan",
        "lower",
    }
    assert run(prof(TextMatch(pf("city"), "matches", StringLit("^m"))), [], PEOPLE) == {"lower"}


def test_numbers_between_is_inclusive_and_ints_compare_with_floats() -> None:
    between = Between(pf("loyalty_points"), NumberLit(10), NumberLit(20))
    assert run(prof(between), [], PEOPLE) == {"milan"}
    assert run(prof(Compare(pf("loyalty_points"), "<", NumberLit(10.5))), [], PEOPLE) == {"milan"}
    assert run(prof(Compare(pf("score"), "=", NumberLit(2.5))), [], PEOPLE) == {"lower"}


def test_date_properties_are_local_midnights() -> None:
    profiles = {
        "old": {"birth_date": dt.date(1990, 5, 17)},
        "recent": {"birth_date": dt.date(2026, 3, 30)},
        "today": {"birth_date": dt.date(2026, 3, 31)},
    }
    before = TimeCompare(pf("birth_date"), "before", day("2000-01-01"))
    assert run(prof(before), [], profiles) == {"old"}
    # now - 1 day is 2026-03-30T10:00Z: Mar 30 00:00 is earlier, Mar 31 00:00 later
    in_last = AgoCompare(pf("birth_date"), "in_last", dur(1, "day"))
    assert run(prof(in_last), [], profiles) == {"today"}
    since = TimeCompare(pf("birth_date"), "since", day("2026-03-30"))
    assert run(prof(since), [], profiles) == {"recent", "today"}


def test_event_predicates_on_context_type_ts_and_profile() -> None:
    events = [
        ev("web", "purchased", "2026-03-30T00:00:00Z", context="WEB"),
        ev("nocontext", "purchased", "2026-03-30T00:00:00Z", context=None),
        ev("mobile", "viewed_product", "2026-03-10T00:00:00Z", context="MOBILE"),
    ]
    profiles = {"web": {"city": "Milan"}, "mobile": {"city": "Milan"}}
    not_web = Compare(ef("context"), "!=", StringLit("WEB"))
    anything = EventSel(None)
    assert run(Did(anything, not_web), events, profiles) == {"mobile"}
    assert run(Did(anything, PredNot(Compare(ef("context"), "=", StringLit("WEB")))), events) == {
        "nocontext",
        "mobile",
    }
    is_view = Compare(ef("type"), "=", StringLit("viewed_product"))
    assert run(Did(anything, is_view), events) == {"mobile"}
    early = TimeCompare(ef("ts"), "before", day("2026-03-20"))
    assert run(Did(anything, early), events) == {"mobile"}
    milanese = Compare(pf("city"), "=", StringLit("Milan"))
    assert run(Did(anything, milanese), events, profiles) == {"web", "mobile"}


def test_where_on_a_property_missing_from_the_event() -> None:
    events = [
        ev("a", "purchased", "2026-03-30T00:00:00Z", category="shoes"),
        ev("b", "purchased", "2026-03-30T00:00:00Z"),
        ev("c", "purchased", "2026-03-30T00:00:00Z", category=None),
    ]
    not_shoes = Compare(ef("category"), "!=", StringLit("shoes"))
    assert run(did(where=not_shoes), events) == set()
    assert run(did(where=IsSet(ef("category"), negated=True)), events) == {"b", "c"}


# --------------------------------------------------------------------------- aggregates


def agg(
    func: AggFunc, name: str, op: CompareOp, value: float, window: Window | None = None
) -> Aggregate:
    return Aggregate(func, ef(name), sel("purchased"), None, window, op, NumberLit(value))


AGG_EVENTS = [
    ev("a", "purchased", "2026-03-30T00:00:00Z", amount=10.0, store="Milan"),
    ev("a", "purchased", "2026-03-20T00:00:00Z", amount=None, store="Milan"),
    ev("a", "purchased", "2026-01-20T00:00:00Z", amount=20.0, store="Rome"),
    ev("nothing", "purchased", "2026-03-20T00:00:00Z", store=None),
    ev("viewer", "viewed_product", "2026-03-20T00:00:00Z"),
]
AGG_PROFILES: dict[str, dict[str, Any]] = {"p": {}}


def test_sum_over_no_events_is_zero() -> None:
    everyone = {"a", "nothing", "viewer", "p"}
    assert run(agg("sum", "amount", "<", 1), AGG_EVENTS, AGG_PROFILES) == everyone - {"a"}
    assert run(agg("sum", "amount", "=", 30), AGG_EVENTS, AGG_PROFILES) == {"a"}
    assert run(agg("sum", "amount", "=", 10, last(30, "day")), AGG_EVENTS, AGG_PROFILES) == {"a"}


def test_avg_min_max_over_no_value_are_false_and_skip_missing_values() -> None:
    assert run(agg("avg", "amount", "=", 15), AGG_EVENTS, AGG_PROFILES) == {"a"}
    assert run(agg("avg", "amount", ">=", -1e9), AGG_EVENTS, AGG_PROFILES) == {"a"}
    assert run(agg("min", "amount", "<", 1e9), AGG_EVENTS, AGG_PROFILES) == {"a"}
    assert run(agg("max", "amount", "=", 20), AGG_EVENTS, AGG_PROFILES) == {"a"}
    not_low = Not(agg("avg", "amount", "<", 100))
    assert run(not_low, AGG_EVENTS, AGG_PROFILES) == {"nothing", "viewer", "p"}


def test_count_distinct_counts_present_values() -> None:
    assert run(agg("count_distinct", "store", "=", 2), AGG_EVENTS, AGG_PROFILES) == {"a"}
    zero = {"nothing", "viewer", "p"}
    assert run(agg("count_distinct", "store", "=", 0), AGG_EVENTS, AGG_PROFILES) == zero


# --------------------------------------------------------------------------- last / first


def test_last_looks_at_the_newest_event_only() -> None:
    events = [
        ev("lapsed", "purchased", "2026-01-01T00:00:00Z"),
        ev("active", "purchased", "2026-01-01T00:00:00Z"),
        ev("active", "purchased", "2026-03-30T00:00:00Z"),
    ]
    lapsed = LastFirst("last", sel("purchased"), None, Recency("more_than_ago", dur(60, "day")))
    assert run(lapsed, events, {"never": {}}) == {"lapsed"}
    old_first = LastFirst("first", sel("purchased"), None, Recency("more_than_ago", dur(60, "day")))
    assert run(old_first, events, {"never": {}}) == {"lapsed", "active"}


def test_recency_bounds() -> None:
    events = [
        ev("edge", "purchased", "2026-03-24T10:00:00Z"),  # exactly now - 1 week
        ev("inside", "purchased", "2026-03-24T10:00:00.001Z"),
    ]
    less = LastFirst("last", sel("purchased"), None, Recency("less_than_ago", dur(1, "week")))
    more = LastFirst("last", sel("purchased"), None, Recency("more_than_ago", dur(1, "week")))
    in_last = LastFirst("last", sel("purchased"), None, Recency("in_last", dur(1, "week")))
    assert run(less, events) == {"inside"}
    assert run(in_last, events) == {"inside"}
    assert run(more, events) == set()
    between = Recency("between", start=day("2026-03-01"), end=day("2026-03-24"))
    assert run(LastFirst("first", sel("purchased"), None, between), events) == {"edge", "inside"}


def test_last_with_where_ignores_other_events_and_future_ones() -> None:
    events = [
        ev("a", "purchased", "2026-01-01T00:00:00Z", category="shoes"),
        ev("a", "purchased", "2026-03-30T00:00:00Z", category="bags"),
        ev("a", "purchased", "2026-04-30T00:00:00Z", category="shoes"),  # after now
    ]
    shoes = Compare(ef("category"), "=", StringLit("shoes"))
    lapsed = LastFirst("last", sel("purchased"), shoes, Recency("more_than_ago", dur(1, "month")))
    assert run(lapsed, events) == {"a"}


# --------------------------------------------------------------------------- sequences


def then(within: Duration, window: Window | None = None, negated: bool = False) -> Sequence:
    return Sequence(sel("added_to_cart"), None, negated, sel("purchased"), None, within, window)


def test_then_needs_a_strictly_later_event_at_most_d_after() -> None:
    events = [
        ev("exact", "added_to_cart", "2026-03-30T08:00:00Z"),
        ev("exact", "purchased", "2026-03-30T09:00:00Z"),
        ev("late", "added_to_cart", "2026-03-30T08:00:00Z"),
        ev("late", "purchased", "2026-03-30T09:00:00.001Z"),
        ev("same", "added_to_cart", "2026-03-30T08:00:00Z"),
        ev("same", "purchased", "2026-03-30T08:00:00Z"),
        ev("future", "added_to_cart", "2026-03-31T09:30:00Z"),
        ev("future", "purchased", "2026-03-31T10:00:00.001Z"),  # after now
        ev("reverse", "purchased", "2026-03-30T08:00:00Z"),
        ev("reverse", "added_to_cart", "2026-03-30T08:30:00Z"),
    ]
    assert run(then(dur(1, "hour")), events) == {"exact"}


def test_then_window_bounds_the_first_event_only() -> None:
    events = [
        ev("a", "added_to_cart", "2026-03-09T23:30:00Z"),
        ev("a", "purchased", "2026-03-10T00:10:00Z"),
    ]
    before = Window("before", end=day("2026-03-10"))
    assert run(then(dur(1, "hour"), before), events) == {"a"}
    assert run(then(dur(1, "hour"), Window("on", start=day("2026-03-10"))), events) == set()


def test_then_not_needs_an_old_enough_first_event_with_no_follow_up() -> None:
    events = [
        ev("bought", "added_to_cart", "2026-03-20T10:00:00Z"),
        ev("bought", "purchased", "2026-03-22T10:00:00Z"),  # exactly 2 days after: blocks
        ev("slow", "added_to_cart", "2026-03-20T10:00:00Z"),
        ev("slow", "purchased", "2026-03-22T10:00:00.001Z"),  # too late to block
        ev("edge", "added_to_cart", "2026-03-29T10:00:00Z"),  # exactly now - 2 days
        ev("young", "added_to_cart", "2026-03-29T10:00:00.001Z"),  # not 2 days old yet
    ]
    assert run(then(dur(2, "day"), negated=True), events) == {"slow", "edge"}
    assert run(then(dur(2, "day"), last(5, "day"), negated=True), events) == {"edge"}


def test_then_within_months_uses_calendar_months() -> None:
    events = [
        ev("a", "added_to_cart", "2026-01-31T10:00:00Z"),
        ev("a", "purchased", "2026-02-28T10:00:00Z"),  # Jan 31 + 1 month, clamped
        ev("b", "added_to_cart", "2026-01-31T10:00:00Z"),
        ev("b", "purchased", "2026-02-28T10:00:00.001Z"),
    ]
    assert run(then(dur(1, "month")), events) == {"a"}


# --------------------------------------------------------------------------- composition


def test_in_segment_uses_the_saved_segments_time_zone() -> None:
    now = t("2026-03-01T00:30:00Z")
    events = [ev("a", "purchased", "2026-02-28T23:30:00Z")]
    saved = {
        "Rome today": Segment("Rome today", did(window=Window("today")), timezone=ROME),
        "UTC today": Segment("UTC today", did(window=Window("today"))),
    }
    assert run(InSegment("Rome today"), events, now=now, segments=saved) == {"a"}
    assert run(InSegment("UTC today"), events, now=now, tz=ROME, segments=saved) == set()


def test_in_segment_cycles_and_unknown_names_raise() -> None:
    saved = {
        "A": Segment("A", Or((did(), InSegment("B")))),
        "B": Segment("B", InSegment("A")),
    }
    events = [ev("a", "purchased", "2026-03-01T00:00:00Z")]
    with pytest.raises(SegmentError, match="cycle"):
        run(InSegment("A"), events, segments=saved)
    with pytest.raises(SegmentError, match="unknown"):
        run(InSegment("C"), events, segments=saved)


def test_and_or_rule_and_any_of() -> None:
    events = [
        ev("buyer", "purchased", "2026-03-30T00:00:00Z"),
        ev("viewer", "viewed_product", "2026-03-30T00:00:00Z"),
    ]
    profiles = {"buyer": {"city": "Milan"}, "viewer": {"city": "Rome"}}
    milan = prof(Compare(pf("city"), "=", StringLit("Milan")))
    assert run(And((did(), milan)), events, profiles) == {"buyer"}
    assert run(Or((did(), did("viewed_product")), style="any_of"), events, profiles) == {
        "buyer",
        "viewer",
    }
    assert run(Rule("Bought", Not(did())), events, profiles) == {"viewer"}


# --------------------------------------------------------------------------- generators


def test_arrow_tables_follow_the_contract_and_keep_duplicates() -> None:
    store = random_store(7, n_contacts=20, n_events=200)
    assert store == random_store(7, n_contacts=20, n_events=200)
    events, profiles = store.to_arrow()
    assert events.num_rows == len(store.events)
    assert len(dedup(store.events)) < len(store.events)  # seed 7 has repeated ids
    assert events.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert events.schema.field("labels").type == pa.list_(pa.string())
    assert events.schema.field("delivery_date").type == pa.date32()
    assert profiles.column_names == ["contact_id", *TEST_SCHEMA.profile]
    assert profiles.num_rows == len(store.profiles)
    assert all(e.ts.microsecond % 1000 == 0 for e in store.events)  # ms precision
    first = store.events[0]
    assert events.column("ts")[0].as_py() == first.ts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stores(), programs())
def test_random_programs_evaluate_within_the_universe(store: Any, program: Any) -> None:
    known = universe(store.events, store.profiles, store.now)
    hits = store.evaluate_segment(program.segment, program.saved)
    assert hits <= known
    tz = program.segment.tz_name
    cond = program.segment.cond
    negated = store.evaluate(Not(cond), tz, program.saved)
    assert negated == known - hits
    assert store.evaluate(Or((cond, Not(cond))), tz, program.saved) == known


# --------------------------------------------------------------------------- SPEC texts


RED_SHOES = """
segment "Red Shoes viewed without purchase" {
  rule "Clicked Red shoes" (
    did viewed_product where product_name = "Red Shoes" in last 15 days
  )
  and rule "No purchase in the last 15 days" (
    not did purchased in last 15 days
  )
}
"""


def _segment(text: str) -> Segment:
    from audience.dsl.parser import parse

    (segment,) = parse(text).definitions
    assert isinstance(segment, Segment)
    return segment


def test_the_spec_red_shoes_segment() -> None:
    events = [
        ev("in", "viewed_product", "2026-03-28T10:00:00Z", product_name="Red Shoes"),
        ev("bought", "viewed_product", "2026-03-28T10:00:00Z", product_name="Red Shoes"),
        ev("bought", "purchased", "2026-03-29T10:00:00Z", amount=50.0),
        ev("bought_before", "viewed_product", "2026-03-28T10:00:00Z", product_name="Red Shoes"),
        ev("bought_before", "purchased", "2026-03-01T10:00:00Z", amount=50.0),
        ev("old", "viewed_product", "2026-03-16T10:00:00Z", product_name="Red Shoes"),
        ev("blue", "viewed_product", "2026-03-28T10:00:00Z", product_name="Blue Shirt"),
    ]
    hits = evaluate_segment(
        _segment(RED_SHOES), events=events, profiles={}, schema=TEST_SCHEMA, now=NOW
    )
    assert hits == {"in", "bought_before"}


def test_the_spec_examples_of_aggregates_recency_and_then_not() -> None:
    from audience.dsl.parser import parse_condition

    events = [
        ev("big", "purchased", "2026-01-05T10:00:00Z", amount=150.0),  # 85 days before now
        ev("big", "purchased", "2026-03-01T10:00:00Z", amount=50.25),
        ev("small", "purchased", "2026-03-01T10:00:00Z", amount=200.0),
        ev("viewer", "viewed_product", "2026-03-20T10:00:00Z", product_name="Red Shoes"),
        ev("viewer", "purchased", "2026-03-22T10:00:01Z", amount=1.0),  # 2 days + 1 s later
    ]

    def hits(text: str) -> set[str]:
        return run(parse_condition(text), events)

    assert hits("sum(amount) of purchased in last 90 days > 200") == {"big"}
    assert hits("last purchased more than 60 days ago") == set()
    assert hits("first purchased more than 60 days ago") == {"big"}
    red_then_not = (
        'did viewed_product where product_name = "Red Shoes" '
        "then not purchased within 2 days in last 15 days"
    )
    assert hits(red_then_not) == {"viewer"}
    assert hits("did viewed_product then purchased within 2 days") == set()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_generated_programs_pass_the_checker_and_print_back(program: Any) -> None:
    from audience.dsl.ast import Program
    from audience.dsl.check import check
    from audience.dsl.formatter import format_text
    from audience.dsl.parser import parse

    source = Program(definitions=(*program.saved.values(), program.segment))
    assert check(source, TEST_SCHEMA) == []
    assert parse(format_text(source)) == source
