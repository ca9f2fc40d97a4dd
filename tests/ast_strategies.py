"""Hypothesis strategies for random, structurally valid ASTs of every node kind.

Valid means "the parser can produce it": operand counts of at least two, names
that are identifiers, counts and durations in range, and time literals whose
zone is the one the parser would give them (a date, or a datetime written
without an offset, is read in the enclosing definition's time zone; bare
conditions use UTC).  Everything else is pushed to its edges: keyword names,
unicode and control characters in strings, event types that are not names,
negative and float numbers, offsets, nesting that needs parentheses.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import cast
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from audience.dsl import ast as A
from audience.dsl import ast_journeys as J
from audience.dsl.ast_sending import WEEKDAYS, DeliveryDef, Plan, Schedule
from audience.dsl.format_lexical import KEYWORDS

ZONES = ("UTC", "Europe/Rome", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
UNITS: tuple[A.TimeUnit, ...] = ("minute", "hour", "day", "week", "month")

# ------------------------------------------------------------------ lexical pieces

_KEYWORD_LIST = sorted(KEYWORDS)


def _case_variants(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.upper(), word.capitalize()])


identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
keyword_names = st.sampled_from(_KEYWORD_LIST).flatmap(_case_variants)
# A name part: mostly plain, often a keyword that must be backticked.
names = st.one_of(identifiers, identifiers, keyword_names)

_SPECIAL_TEXT = [
    "",
    '"',
    "\\",
    '\\"',
    "\n",
    "\t",
    "\r\n",
    "\x00",
    "\x1b[0m",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "é",
    "日本語",
    "😀",
    "# not a comment",
    "`tick`",
    "}",
    "a\\nb",
    "\\u0041",
]
# Any text but lone surrogates, which UTF-8 cannot hold.
texts = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12),
    st.sampled_from(_SPECIAL_TEXT),
    st.lists(st.sampled_from(_SPECIAL_TEXT), max_size=4).map("".join),
)
event_types = st.one_of(identifiers, keyword_names, texts.filter(bool))


# Backticks also hold what is not an identifier (anything but a backtick or a
# line break): property names with spaces, dots, accents.
odd_names = texts.filter(lambda t: bool(t) and "`" not in t and "\n" not in t)


def paths(max_parts: int = 3) -> st.SearchStrategy[tuple[str, ...]]:
    part = st.one_of(names, names, odd_names)
    return st.lists(part, min_size=1, max_size=max_parts).map(tuple)


# ------------------------------------------------------------------ literals

_MIN_DAY = dt.date(1970, 1, 1)
_MAX_DAY = dt.date(2100, 12, 31)

numbers = st.one_of(
    st.integers(-(10**15), 10**15),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.1, -3.5, 1e16, 1e-7, 19.9, 0.0, -0.0, 2.5e300]),
)
offsets = st.one_of(
    st.just(dt.UTC),
    st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m))),
)


def _naive_datetimes() -> st.SearchStrategy[dt.datetime]:
    return st.builds(
        lambda day, h, m, s, ms: dt.datetime.combine(day, dt.time(h, m, s, ms * 1000)),
        st.dates(_MIN_DAY, _MAX_DAY),
        st.integers(0, 23),
        st.integers(0, 59),
        st.sampled_from([0, 0, 30, 59]),
        st.sampled_from([0, 0, 0, 1, 500, 999]),
    )


@cache
def date_lits(zone: str) -> st.SearchStrategy[A.DateLit]:
    return st.builds(A.DateLit, st.dates(_MIN_DAY, _MAX_DAY), st.just(ZoneInfo(zone)))


@cache
def datetime_lits(zone: str) -> st.SearchStrategy[A.DateTimeLit]:
    written_naive = _naive_datetimes().map(lambda d: d.replace(tzinfo=ZoneInfo(zone)))
    with_offset = st.builds(lambda d, tz: d.replace(tzinfo=tz), _naive_datetimes(), offsets)
    return st.builds(A.DateTimeLit, st.one_of(written_naive, with_offset))


@cache
def time_lits(zone: str) -> st.SearchStrategy[A.DateLit | A.DateTimeLit]:
    return st.one_of(date_lits(zone), datetime_lits(zone))


@cache
def literals(zone: str) -> st.SearchStrategy[A.Literal_]:
    return st.one_of(
        st.builds(A.StringLit, texts),
        st.builds(A.NumberLit, numbers),
        st.builds(A.BoolLit, st.booleans()),
        time_lits(zone),
    )


durations = st.builds(
    A.Duration, st.one_of(st.just(1), st.integers(1, 1000)), st.sampled_from(UNITS)
)

# ------------------------------------------------------------------ predicates


def fields(scope: str) -> st.SearchStrategy[A.Field]:
    return st.builds(A.Field, st.just(cast(A.Scope, scope)), paths())


@cache
def comparisons(zone: str, scope_choice: tuple[A.Scope, ...]) -> st.SearchStrategy[A.Comparison]:
    f = st.sampled_from(scope_choice).flatmap(fields)
    lit = literals(zone)
    return st.one_of(
        st.builds(A.Compare, f, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), lit),
        st.builds(A.InList, f, st.lists(lit, min_size=1, max_size=3).map(tuple), st.booleans()),
        st.builds(A.Between, f, lit, lit),
        st.builds(
            A.TextMatch,
            f,
            st.sampled_from(["contains", "starts_with", "ends_with", "matches"]),
            st.builds(A.StringLit, texts),
        ),
        st.builds(A.IsSet, f, st.booleans()),
        st.builds(A.TimeCompare, f, st.sampled_from(["before", "since"]), time_lits(zone)),
        st.builds(
            A.AgoCompare,
            f,
            st.sampled_from(["more_than_ago", "less_than_ago", "in_last"]),
            durations,
        ),
    )


def _operands(children: st.SearchStrategy) -> st.SearchStrategy[tuple]:
    return st.lists(children, min_size=2, max_size=3).map(tuple)


@cache
def preds(zone: str) -> st.SearchStrategy[A.Pred]:
    """Event predicates: event properties mostly, ``profile.x`` sometimes."""
    leaves = comparisons(zone, ("event", "event", "profile"))

    def extend(children: st.SearchStrategy[A.Pred]) -> st.SearchStrategy[A.Pred]:
        return st.one_of(
            st.builds(A.PredAnd, _operands(children), st.sampled_from(["and", "all_of"])),
            st.builds(A.PredOr, _operands(children), st.sampled_from(["or", "any_of"])),
            st.builds(A.PredNot, children),
        )

    return st.recursive(leaves, extend, max_leaves=5)


# ------------------------------------------------------------------ event conditions

event_sels = st.one_of(
    st.just(A.EventSel(None)),
    st.builds(A.EventSel, event_types.map(lambda t: (t,))),
    st.builds(A.EventSel, st.lists(event_types, min_size=2, max_size=3).map(tuple)),
)

_counts_n = st.one_of(st.integers(0, 3), st.integers(0, 10**6))
counts = st.one_of(
    st.builds(A.Count, st.sampled_from(["at_least", "at_most", "exactly"]), _counts_n),
    st.tuples(_counts_n, _counts_n).map(lambda t: A.Count("between", min(t), max(t))),
)


_CALENDAR: list[A.WindowKind] = [
    "today",
    "yesterday",
    "this_week",
    "this_month",
    "last_week",
    "last_month",
]


@cache
def windows(zone: str) -> st.SearchStrategy[A.Window]:
    t = time_lits(zone)
    return st.one_of(
        st.builds(A.Window, st.just("last"), duration=durations),
        st.builds(A.Window, st.just("since"), start=t),
        st.builds(A.Window, st.just("before"), end=t),
        st.builds(A.Window, st.just("between"), start=t, end=t),
        st.builds(A.Window, st.just("on"), start=date_lits(zone)),
        st.sampled_from(_CALENDAR).map(lambda kind: A.Window(kind)),
    )


@cache
def recencies(zone: str) -> st.SearchStrategy[A.Recency]:
    t = time_lits(zone)
    kinds = st.sampled_from(["more_than_ago", "less_than_ago", "in_last"])
    return st.one_of(
        st.builds(A.Recency, kinds, duration=durations),
        st.builds(A.Recency, st.just("before"), end=t),
        st.builds(A.Recency, st.just("since"), start=t),
        st.builds(A.Recency, st.just("between"), start=t, end=t),
    )


def _opt(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), strategy)


# Aggregated properties are event properties (``profile.x`` parses, the
# checker refuses it; either way the text must read back).
_agg_fields = st.sampled_from(["event", "event", "profile"]).flatmap(fields)


@cache
def leaf_conds(zone: str) -> st.SearchStrategy[A.Cond]:
    where, window = _opt(preds(zone)), _opt(windows(zone))
    return st.one_of(
        st.builds(A.Did, event_sels, where, _opt(counts), window),
        st.builds(
            A.Aggregate,
            st.sampled_from(["sum", "avg", "min", "max", "count_distinct"]),
            _agg_fields,
            event_sels,
            where,
            window,
            st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
            st.builds(A.NumberLit, numbers),
        ),
        st.builds(
            A.LastFirst, st.sampled_from(["last", "first"]), event_sels, where, recencies(zone)
        ),
        st.builds(
            A.Sequence, event_sels, where, st.booleans(), event_sels, where, durations, window
        ),
        # `event.x` parses in a profile predicate too (the checker refuses it).
        st.builds(A.ProfileCond, comparisons(zone, ("profile", "profile", "event"))),
        # A bool property alone (`vip`, `profile.vip`).
        st.builds(
            A.ProfileCond, st.builds(A.Flag, st.sampled_from(["profile", "event"]).flatmap(fields))
        ),
        st.builds(A.InSegment, texts),
    )


@cache
def conds(zone: str) -> st.SearchStrategy[A.Cond]:
    def extend(children: st.SearchStrategy[A.Cond]) -> st.SearchStrategy[A.Cond]:
        return st.one_of(
            st.builds(A.And, _operands(children), st.sampled_from(["and", "all_of"])),
            st.builds(A.Or, _operands(children), st.sampled_from(["or", "any_of"])),
            st.builds(A.Not, children),
            st.builds(A.Rule, texts, children),
        )

    return st.recursive(leaf_conds(zone), extend, max_leaves=6)


# ------------------------------------------------------------------ definitions

zone_clauses = st.one_of(st.none(), st.sampled_from(ZONES))


def segments() -> st.SearchStrategy[A.Segment]:
    return zone_clauses.flatmap(
        lambda tz: st.builds(A.Segment, texts, conds(tz or "UTC"), st.just(tz))
    )


@cache
def values(zone: str) -> st.SearchStrategy[A.Value]:
    refs = st.builds(A.Ref, st.sampled_from(["profile", "event"]), paths())
    leaves = st.one_of(literals(zone), refs)
    map_keys = st.one_of(identifiers, keyword_names, texts)
    return st.recursive(
        leaves,
        lambda children: st.builds(
            A.MapValue, st.lists(st.tuples(map_keys, children), max_size=3).map(tuple)
        ),
        max_leaves=4,
    )


# Argument keys and channels are plain NAMEs (keywords read as names there),
# except `true`/`false`, which read as booleans in an argument list.
_arg_keys = st.one_of(identifiers, keyword_names).filter(
    lambda k: k.lower() not in ("true", "false")
)


@cache
def actions(zone: str) -> st.SearchStrategy[A.Action]:
    arg = st.builds(A.Arg, _opt(_arg_keys), values(zone))
    action_names = st.one_of(
        st.sampled_from(["send_email", "webhook", "add_tag", "set", "enter_journey"]), identifiers
    )
    return st.builds(A.Action, action_names, st.lists(arg, max_size=4).map(tuple))


trigger_options = st.one_of(
    st.builds(A.OncePerContact),
    st.builds(A.AtMostOncePer, durations),
    st.builds(A.Delay, durations),
    st.builds(A.UseDnd, texts),
)


def _trigger(tz: str | None) -> st.SearchStrategy[A.Trigger]:
    zone = tz or "UTC"
    return st.builds(
        A.Trigger,
        texts,
        event_sels,
        _opt(preds(zone)),
        _opt(conds(zone)),
        st.lists(actions(zone), min_size=1, max_size=3).map(tuple),
        st.lists(trigger_options, max_size=3).map(tuple),
        st.just(tz),
    )


def triggers() -> st.SearchStrategy[A.Trigger]:
    return zone_clauses.flatmap(_trigger)


clock_times = st.builds(A.ClockTime, st.integers(0, 23), st.integers(0, 59))
dnd_items = st.one_of(
    st.builds(A.Cap, st.integers(1, 1000), durations),
    st.builds(A.Channel, st.one_of(identifiers, keyword_names)),
    st.builds(A.Global),
    st.builds(A.QuietHours, clock_times, clock_times, _opt(st.sampled_from(ZONES))),
)


def dnd_policies() -> st.SearchStrategy[A.DndPolicy]:
    return st.builds(A.DndPolicy, texts, st.lists(dnd_items, max_size=5).map(tuple), zone_clauses)


# ------------------------------------------------------------------ deliveries and plans

_addresses = st.one_of(texts, st.just("qa@example.com"))
deliveries = st.builds(
    DeliveryDef,
    texts,
    texts,
    mail_group=_opt(texts),
    subject=_opt(texts),
    from_addr=_opt(_addresses),
    sender=_opt(_addresses),
    reply_to=_opt(_addresses),
    # a delivery has no zone of its own: its dates are read in UTC
    fields=_opt(values("UTC").filter(lambda v: isinstance(v, A.MapValue))),
    test_list=st.lists(_addresses, max_size=3).map(tuple),
)

_days = st.dates(_MIN_DAY, _MAX_DAY)
_weekdays = st.lists(st.sampled_from(WEEKDAYS), max_size=3).map(tuple)
_whole_minutes = st.builds(dt.time, st.integers(0, 23), st.integers(0, 59))
_any_number = st.one_of(st.integers(0, 40), st.integers(0, 10**6))


def _schedule(tz: str | None) -> st.SearchStrategy[Schedule]:
    common = {
        "at": _whole_minutes,
        "timezone": st.just(tz),
        "from_date": _opt(_days),
        "until_date": _opt(_days),
    }
    return st.one_of(
        st.builds(Schedule, st.just("once"), on_date=_days, **common),
        st.builds(Schedule, st.just("daily"), **common),
        st.builds(Schedule, st.just("weekly"), weekdays=_weekdays, **common),
        st.builds(Schedule, st.just("monthly"), month_day=_any_number, **common),
        st.builds(Schedule, st.just("every_n_days"), interval=_any_number, **common),
        st.builds(
            Schedule, st.just("every_n_weeks"), interval=_any_number, weekdays=_weekdays, **common
        ),
    )


def _plan(tz: str | None) -> st.SearchStrategy[Plan]:
    # an inline condition reads its dates in the schedule's zone
    return st.builds(
        Plan,
        texts,
        st.one_of(texts, conds(tz or "UTC")),
        _schedule(tz),
        texts,
        dnd=_opt(texts),
        lateness=_opt(durations),
    )


def plans() -> st.SearchStrategy[Plan]:
    return zone_clauses.flatmap(_plan)


# ------------------------------------------------------------------ journeys


def _journey_steps(zone: str) -> st.SearchStrategy[tuple[J.Step, ...]]:
    leaf = st.one_of(
        st.builds(J.ActionStep, texts, send=texts),
        st.builds(J.ActionStep, texts, call=actions(zone)),
        st.builds(J.WaitStep, durations),
        st.builds(J.EndStep),
    )
    check_conds = st.one_of(
        st.builds(J.Clicked, texts, _opt(texts)), st.builds(J.Opened, texts), conds(zone)
    )

    def checks(inner: st.SearchStrategy[J.Step]) -> st.SearchStrategy[J.Step]:
        branch = st.lists(inner, max_size=3).map(tuple)
        return st.builds(J.CheckStep, texts, check_conds, durations, branch, branch)

    step = st.recursive(leaf, checks, max_leaves=8)
    return st.lists(step, min_size=1, max_size=4).map(tuple)


def _journey(tz: str | None) -> st.SearchStrategy[J.Journey]:
    # the entry's and the checks' dates are read in the start's zone
    zone = tz or "UTC"
    at = st.builds(dt.datetime.combine, _days, _whole_minutes)
    start: st.SearchStrategy[J.JourneyStart] = (
        st.builds(J.StartAt, at, st.just(tz))
        if tz is not None
        else st.one_of(st.builds(J.StartNow), st.builds(J.StartAt, at))
    )
    entry = st.one_of(
        st.none(),
        st.builds(J.EnterSegment, texts),
        st.builds(J.EnterOn, event_sels, _opt(preds(zone)), _opt(conds(zone))),
    )
    return st.builds(
        J.Journey,
        texts,
        start,
        _journey_steps(zone),
        entry=entry,
        reentry=st.one_of(st.builds(J.ReEntry), st.builds(J.ReEntry, durations)),
        dnd=_opt(texts),
    )


def journeys() -> st.SearchStrategy[J.Journey]:
    return zone_clauses.flatmap(_journey)


definitions = st.one_of(segments(), triggers(), dnd_policies(), deliveries, plans(), journeys())

programs = st.one_of(
    st.builds(A.Program, st.lists(definitions, min_size=1, max_size=3).map(tuple)),
    st.builds(A.Program, st.just(()), conds("UTC")),
)
