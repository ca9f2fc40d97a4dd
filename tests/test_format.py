"""The canonical formatter: round trips through the parser, idempotence, the
SPEC's own layout, and an exact table of node -> text."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings

from audience.dsl import ast as A
from audience.dsl.formatter import FormatError, format_text
from audience.dsl.parser import parse, parse_condition
from tests import ast_strategies as S
from tests.helpers.language import SPEC_DND, SPEC_SEGMENT, SPEC_TRIGGER, same

EXAMPLES = Path(__file__).resolve().parent.parent / "audience" / "examples"
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ (a) round trips


@PROPERTY
@given(S.programs)
def test_program_round_trip(program: A.Program) -> None:
    same(parse(format_text(program)), program)


@settings(max_examples=200, deadline=None)
@given(S.conds("UTC"))
def test_condition_round_trip(cond: A.Cond) -> None:
    same(parse_condition(format_text(cond)), cond)


@settings(max_examples=100, deadline=None)
@given(S.triggers())
def test_trigger_round_trip(trigger: A.Trigger) -> None:
    same(parse(format_text(trigger)), A.Program((trigger,)))


@settings(max_examples=100, deadline=None)
@given(S.dnd_policies())
def test_dnd_round_trip(policy: A.DndPolicy) -> None:
    same(parse(format_text(policy)), A.Program((policy,)))


@settings(max_examples=100, deadline=None)
@given(S.segments())
def test_segment_in_its_zone_round_trip(segment: A.Segment) -> None:
    same(parse(format_text(segment)), A.Program((segment,)))


# ------------------------------------------------------------------ (b) idempotence


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.programs)
def test_format_is_idempotent_on_text(program: A.Program) -> None:
    text = format_text(program)
    assert format_text(parse(text)) == text


# ------------------------------------------------------------------ (c) the SPEC's layout


@pytest.mark.parametrize("text", [SPEC_SEGMENT, SPEC_TRIGGER, SPEC_DND])
def test_spec_examples_are_canonical(text: str) -> None:
    assert format_text(parse(text)) == text


def test_maison_rules_are_canonical_but_for_comments() -> None:
    text = (EXAMPLES / "maison.rules").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    assert format_text(parse(text)) == "".join(lines)


def test_non_canonical_layout_is_normalised() -> None:
    messy = (
        'SEGMENT "s" TIMEZONE "Europe/Rome" { Rule "r" ( DID NOT purchased IN THE LAST 1 days )'
        " AND city = 'x' }"
    ).replace("'", '"')
    assert format_text(parse(messy)) == (
        'segment "s" timezone "Europe/Rome" {\n'
        '  rule "r" (\n'
        "    not did purchased in last 1 day\n"
        "  )\n"
        '  and city = "x"\n'
        "}\n"
    )


def test_short_top_level_and_stays_on_one_line_and_long_one_splits() -> None:
    short = A.And((_pc("gender", "female"), A.ProfileCond(A.IsSet(_f("email")))))
    assert format_text(short) == 'gender = "female" and email is set'
    long_ = A.Or(tuple(_pc(f"property_{i}", "x" * 10) for i in range(5)))
    assert format_text(long_) == "\n".join(
        ("" if i == 0 else "or ") + f'property_{i} = "xxxxxxxxxx"' for i in range(5)
    )


def test_rule_inside_nested_group_makes_blocks() -> None:
    cond = A.And(
        (
            _pc("a", 1),
            A.Or((A.Rule("r", A.Did(A.EventSel(("x",)))), _pc("b", 2))),
            A.Not(A.Or((A.Rule("s", _pc("c", 3)), _pc("d", 4)))),
            A.And((A.Rule("t", A.InSegment("S")), _pc("e", 5)), "all_of"),
        )
    )
    assert format_text(cond) == (
        "a = 1\n"
        "and (\n"
        '  rule "r" (\n'
        "    did x\n"
        "  )\n"
        "  or b = 2\n"
        ")\n"
        "and not (\n"
        '  rule "s" (c = 3)\n'
        "  or d = 4\n"
        ")\n"
        "and all of (\n"
        '  rule "t" (in segment "S"),\n'
        "  e = 5\n"
        ")"
    )
    same(parse_condition(format_text(cond)), cond)


def test_trigger_if_block_and_actions_wrap() -> None:
    rule = A.Rule("r", A.Did(A.EventSel(("x",))))
    trigger = A.Trigger(
        "t",
        A.EventSel(("a",)),
        None,
        A.And((rule, _pc("city", "Milan"))),
        (
            A.Action("add_tag", (A.Arg(None, A.StringLit("x")),)),
            A.Action("webhook", tuple(A.Arg(f"k{i}", A.StringLit("v" * 20)) for i in range(5))),
        ),
        (A.OncePerContact(), A.AtMostOncePer(A.Duration(1, "day")), A.Delay(A.Duration(2, "hour"))),
        "Europe/Rome",
    )
    text = format_text(trigger)
    assert text == (
        'trigger "t" timezone "Europe/Rome" {\n'
        "  on a\n"
        "  if (\n"
        '    rule "r" (\n'
        "      did x\n"
        "    )\n"
        '    and profile.city = "Milan"\n'
        "  )\n"
        '  do add_tag("x")\n'
        '  do webhook(k0: "vvvvvvvvvvvvvvvvvvvv", k1: "vvvvvvvvvvvvvvvvvvvv",'
        ' k2: "vvvvvvvvvvvvvvvvvvvv",\n'
        '             k3: "vvvvvvvvvvvvvvvvvvvv", k4: "vvvvvvvvvvvvvvvvvvvv")\n'
        "  once per contact\n"
        "  at most once per day per contact\n"
        "  delay 2 hours\n"
        "}\n"
    )
    same(parse(text), A.Program((trigger,)))


# ------------------------------------------------------------------ (d) node -> exact text

UTC = ZoneInfo("UTC")
ROME = ZoneInfo("Europe/Rome")


def _f(*parts: str, scope: A.Scope = "profile") -> A.Field:
    return A.Field(scope, parts)


def _e(*parts: str) -> A.Field:
    return A.Field("event", parts)


def _pc(name: str, value: str | int) -> A.ProfileCond:
    lit: A.Literal_ = A.StringLit(value) if isinstance(value, str) else A.NumberLit(value)
    return A.ProfileCond(A.Compare(_f(name), "=", lit))


def _did(*types: str, **kw: object) -> A.Did:
    return A.Did(A.EventSel(types), **kw)  # type: ignore[arg-type]


D15 = A.Duration(15, "day")
JAN1 = A.DateLit(dt.date(2026, 1, 1), UTC)
NAIVE = A.DateTimeLit(dt.datetime(2026, 11, 1, 18, 30, tzinfo=UTC))
Z = A.DateTimeLit(dt.datetime(2026, 11, 1, 18, 30, 0, tzinfo=dt.UTC))
PLUS1 = A.DateTimeLit(
    dt.datetime(2026, 11, 1, 18, 30, 5, 250000, tzinfo=dt.timezone(dt.timedelta(hours=1)))
)
MINUS = A.DateTimeLit(
    dt.datetime(2026, 11, 1, 0, 0, tzinfo=dt.timezone(-dt.timedelta(hours=3, minutes=30)))
)
P_A = A.Compare(_e("a"), "=", A.NumberLit(1))
P_B = A.Compare(_e("b"), "=", A.NumberLit(2))

TABLE: list[tuple[object, str]] = [
    # literals
    (A.StringLit('say "hi"\\\n\t\x01\u2028é😀'), '"say \\"hi\\"\\\\\\n\\t\\u0001\\u2028é😀"'),
    (A.NumberLit(42), "42"),
    (A.NumberLit(-3), "-3"),
    (A.NumberLit(19.9), "19.9"),
    (A.NumberLit(1e16), "1e+16"),
    (A.NumberLit(-3.5), "-3.5"),
    (A.NumberLit(5.0), "5.0"),
    (A.BoolLit(True), "true"),
    (A.BoolLit(False), "false"),
    (JAN1, "2026-01-01"),
    (NAIVE, "2026-11-01T18:30"),
    (A.DateTimeLit(dt.datetime(2026, 11, 1, 18, 30, 1, tzinfo=ROME)), "2026-11-01T18:30:01"),
    (Z, "2026-11-01T18:30Z"),
    (PLUS1, "2026-11-01T18:30:05.250+01:00"),
    (MINUS, "2026-11-01T00:00-03:30"),
    (A.Duration(1, "day"), "1 day"),
    (A.Duration(15, "day"), "15 days"),
    (A.Duration(2, "month"), "2 months"),
    # names and fields
    (_f("city"), "city"),
    (_f("product", "name"), "product.name"),
    (_f("last"), "`last`"),
    (_f("Last", "AND", "x"), "`Last`.`AND`.x"),
    (_f("profile", "x"), "profile.profile.x"),
    (_f("event"), "profile.event"),
    # counts
    (A.Count("at_least", 1), "at least once"),
    (A.Count("at_most", 1), "at most once"),
    (A.Count("exactly", 1), "exactly once"),
    (A.Count("exactly", 0), "never"),
    (A.Count("at_least", 3), "at least 3 times"),
    (A.Count("at_most", 0), "at most 0 times"),
    (A.Count("between", 2, 5), "between 2 and 5 times"),
    # windows and recencies
    (A.Window("last", duration=D15), "in last 15 days"),
    (A.Window("since", start=NAIVE), "since 2026-11-01T18:30"),
    (A.Window("before", end=JAN1), "before 2026-01-01"),
    (A.Window("between", start=JAN1, end=Z), "between 2026-01-01 and 2026-11-01T18:30Z"),
    (A.Window("on", start=JAN1), "on 2026-01-01"),
    (A.Window("today"), "today"),
    (A.Window("yesterday"), "yesterday"),
    (A.Window("this_week"), "this week"),
    (A.Window("this_month"), "this month"),
    (A.Window("last_week"), "last week"),
    (A.Window("last_month"), "last month"),
    (A.Recency("more_than_ago", duration=D15), "more than 15 days ago"),
    (A.Recency("less_than_ago", duration=A.Duration(1, "hour")), "less than 1 hour ago"),
    (A.Recency("in_last", duration=D15), "in last 15 days"),
    (A.Recency("before", end=JAN1), "before 2026-01-01"),
    (A.Recency("since", start=JAN1), "since 2026-01-01"),
    (A.Recency("between", start=JAN1, end=NAIVE), "between 2026-01-01 and 2026-11-01T18:30"),
    # comparisons (alone: as a profile predicate)
    (A.Compare(_f("age"), ">=", A.NumberLit(18)), "age >= 18"),
    (
        A.InList(_f("city"), (A.StringLit("Milan"), A.StringLit("Rome"))),
        'city in ("Milan", "Rome")',
    ),
    (A.InList(_f("n"), (A.NumberLit(1),), negated=True), "n not in (1)"),
    (A.Between(_f("n"), A.NumberLit(1), A.NumberLit(2.5)), "n between 1 and 2.5"),
    (A.TextMatch(_f("e"), "contains", A.StringLit("@")), 'e contains "@"'),
    (A.TextMatch(_f("e"), "starts_with", A.StringLit("a")), 'e starts with "a"'),
    (A.TextMatch(_f("e"), "ends_with", A.StringLit(".it")), 'e ends with ".it"'),
    (A.TextMatch(_f("e"), "matches", A.StringLit("^a\\d")), 'e matches "^a\\\\d"'),
    (A.IsSet(_f("email")), "email is set"),
    (A.IsSet(_f("email"), negated=True), "email is not set"),
    (A.TimeCompare(_f("birth_date"), "before", JAN1), "birth_date before 2026-01-01"),
    (A.TimeCompare(_f("signup_ts"), "since", Z), "signup_ts since 2026-11-01T18:30Z"),
    (A.AgoCompare(_f("signup_ts"), "in_last", D15), "signup_ts in last 15 days"),
    (A.AgoCompare(_f("t"), "more_than_ago", D15), "t more than 15 days ago"),
    (A.AgoCompare(_f("t"), "less_than_ago", D15), "t less than 15 days ago"),
    # event predicates
    (A.PredAnd((P_A, P_B)), "a = 1 and b = 2"),
    (A.PredOr((P_A, P_B), "any_of"), "any of (a = 1, b = 2)"),
    (A.PredNot(P_A), "not (a = 1)"),
    (A.PredAnd((A.PredOr((P_A, P_B)), P_A)), "(a = 1 or b = 2) and a = 1"),
    # event selections and event conditions
    (A.EventSel(None), "anything"),
    (A.EventSel(("viewed product", "or")), '("viewed product", "or")'),
    (_did("purchased"), "did purchased"),
    (
        A.Not(_did("purchased", window=A.Window("last", duration=D15))),
        "not did purchased in last 15 days",
    ),
    (
        _did("v", where=A.Compare(_e("price"), ">", A.NumberLit(50)), count=A.Count("at_least", 2)),
        "did v where price > 50 at least 2 times",
    ),
    (
        _did("v", where=A.PredAnd((P_A, A.Compare(_f("city"), "=", A.StringLit("M"))))),
        'did v where (a = 1 and profile.city = "M")',
    ),
    (_did("v", where=A.PredAnd((P_A, P_B), "all_of")), "did v where all of (a = 1, b = 2)"),
    (_did("v", where=A.PredNot(P_A)), "did v where not (a = 1)"),
    (
        _did("v", where=A.Compare(_e("event", "x"), "=", A.NumberLit(1))),
        "did v where event.event.x = 1",
    ),
    (_did("v", where=A.IsSet(_e("last"))), "did v where `last` is set"),
    (
        A.Aggregate(
            "sum",
            _e("amount"),
            A.EventSel(("purchased",)),
            None,
            A.Window("last", duration=A.Duration(90, "day")),
            ">",
            A.NumberLit(200),
        ),
        "sum(amount) of purchased in last 90 days > 200",
    ),
    (
        A.Aggregate(
            "count_distinct", _e("sku"), A.EventSel(None), P_A, None, "<=", A.NumberLit(-1.5)
        ),
        "count_distinct(sku) of anything where a = 1 <= -1.5",
    ),
    (
        A.LastFirst(
            "last",
            A.EventSel(("purchased",)),
            None,
            A.Recency("more_than_ago", duration=A.Duration(60, "day")),
        ),
        "last purchased more than 60 days ago",
    ),
    (
        A.LastFirst("first", A.EventSel(("x",)), P_A, A.Recency("since", start=JAN1)),
        "first x where a = 1 since 2026-01-01",
    ),
    (
        A.Sequence(
            A.EventSel(("added_to_cart",)),
            None,
            False,
            A.EventSel(("purchased",)),
            None,
            A.Duration(1, "hour"),
        ),
        "did added_to_cart then purchased within 1 hour",
    ),
    (
        A.Sequence(
            A.EventSel(("viewed_product",)),
            A.Compare(_e("product_name"), "=", A.StringLit("Red Shoes")),
            True,
            A.EventSel(("purchased",)),
            P_A,
            A.Duration(2, "day"),
            A.Window("last", duration=D15),
        ),
        'did viewed_product where product_name = "Red Shoes" then not purchased where a = 1'
        " within 2 days in last 15 days",
    ),
    (A.InSegment('VIP "gold"'), 'in segment "VIP \\"gold\\""'),
    # boolean conditions
    (A.And((_pc("a", 1), A.And((_pc("b", 2), _pc("c", 3))))), "a = 1 and (b = 2 and c = 3)"),
    (A.Or((_pc("a", 1), A.And((_pc("b", 2), _pc("c", 3))))), "a = 1 or (b = 2 and c = 3)"),
    (A.And((_pc("a", 1), A.Or((_pc("b", 2), _pc("c", 3))))), "a = 1 and (b = 2 or c = 3)"),
    (A.Or((A.Or((_pc("a", 1), _pc("b", 2))), _pc("c", 3))), "(a = 1 or b = 2) or c = 3"),
    (A.Not(_pc("city", "Milan")), 'not (city = "Milan")'),
    (A.Not(A.Not(_did("x"))), "not not did x"),
    (A.Not(A.And((_pc("a", 1), _pc("b", 2)), "all_of")), "not all of (a = 1, b = 2)"),
    (A.Or((_pc("a", 1), _pc("b", 2)), "any_of"), "any of (a = 1, b = 2)"),
    (A.Rule("Lives in Milan", _pc("city", "Milan")), 'rule "Lives in Milan" (city = "Milan")'),
    (A.Rule("r", _did("x")), 'rule "r" (\n  did x\n)'),
    # trigger pieces
    (A.Ref("profile", ("email",)), "profile.email"),
    (A.Ref("event", ("form", "last")), "event.form.`last`"),
    (
        A.MapValue(
            (("first_name", A.Ref("profile", ("first_name",))), ("two words", A.NumberLit(2)))
        ),
        '{first_name: profile.first_name, "two words": 2}',
    ),
    (A.MapValue(()), "{}"),
    (A.Arg("to", A.Ref("profile", ("email",))), "to: profile.email"),
    (A.Arg(None, A.StringLit("x")), '"x"'),
    (A.Action("set", (A.Arg("vip", A.BoolLit(True)),)), "do set(vip: true)"),
    (A.Action("noop", ()), "do noop()"),
    (A.OncePerContact(), "once per contact"),
    (A.AtMostOncePer(A.Duration(2, "week")), "at most once per 2 weeks per contact"),
    (A.Delay(A.Duration(1, "minute")), "delay 1 minute"),
    (A.UseDnd("p"), 'dnd "p"'),
    # dnd pieces
    (A.Cap(1, A.Duration(1, "day")), "max 1 per day"),
    (A.Cap(5, A.Duration(30, "day")), "max 5 per 30 days"),
    (A.Channel("email"), "for email"),
    (A.Global(), "global"),
    (A.QuietHours(A.ClockTime(22, 0), A.ClockTime(8, 5)), "quiet hours 22:00 to 08:05"),
    (
        A.QuietHours(A.ClockTime(22, 0), A.ClockTime(8, 0), "Europe/Rome"),
        'quiet hours 22:00 to 08:00 timezone "Europe/Rome"',
    ),
    (A.ClockTime(7, 30), "07:30"),
    # definitions and programs
    (A.Program(), ""),
    (A.Program(condition=_did("x")), "did x\n"),
    (
        A.Segment(
            "Lapsed",
            A.LastFirst("last", A.EventSel(("p",)), None, A.Recency("in_last", duration=D15)),
            "UTC",
        ),
        'segment "Lapsed" timezone "UTC" {\n  last p in last 15 days\n}\n',
    ),
    (A.DndPolicy("p", (), "Europe/Rome"), 'dnd "p" timezone "Europe/Rome" {\n}\n'),
]


@pytest.mark.parametrize(("node", "text"), TABLE, ids=[type(n).__name__ for n, _ in TABLE])
def test_exact_text(node: object, text: str) -> None:
    assert format_text(node) == text


def test_unknown_node_types_are_refused() -> None:
    with pytest.raises(FormatError, match="no formatting rule for object"):
        format_text(object())
    with pytest.raises(TypeError, match="no formatting rule for int"):
        format_text(3)


def test_values_the_language_cannot_spell_are_refused() -> None:
    with pytest.raises(FormatError):
        format_text(A.NumberLit(float("nan")))
    with pytest.raises(FormatError):
        format_text(A.Action("two words", ()))
    with pytest.raises(FormatError):
        format_text(A.Arg("true", A.NumberLit(1)))
    with pytest.raises(FormatError):
        format_text(A.Program((A.Segment("s", _did("x")),), _did("y")))
