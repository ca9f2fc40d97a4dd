"""The semantic checker (audience.dsl.check): one test per check, on ASTs built
directly, then on texts through the parser, plus the invalid_check corpus
(pytest --update-goldens rewrites its .err files)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.dsl.ast import (
    Action,
    Aggregate,
    AgoCompare,
    And,
    Arg,
    AtMostOncePer,
    Between,
    BoolLit,
    Cap,
    ClockTime,
    Compare,
    Cond,
    Count,
    DateLit,
    DateTimeLit,
    Delay,
    Did,
    DndPolicy,
    Duration,
    EventSel,
    Field,
    InList,
    InSegment,
    IsSet,
    LastFirst,
    MapValue,
    NumberLit,
    OncePerContact,
    Pred,
    ProfileCond,
    Program,
    QuietHours,
    Recency,
    Ref,
    Segment,
    Sequence,
    Span,
    StringLit,
    TextMatch,
    TimeCompare,
    Trigger,
    TriggerOption,
    UseDnd,
    Window,
)
from audience.dsl.check import Known, check, check_condition, check_program
from audience.dsl.errors import Diagnostic
from audience.dsl.parser import parse
from audience.schema import Schema
from tests import ast_strategies as strategies
from tests.helpers import golden

CORPUS = Path(__file__).parent / "corpus"
SCHEMA = Schema.load(CORPUS / "schema.toml")
UTC = ZoneInfo("UTC")
AT = Span(7, 3, 7, 9)  # a recognisable span to check anchoring


def codes(diags: list[Diagnostic]) -> list[str]:
    return [d.code for d in diags]


def f(name: str, scope: str = "event", span: Span = AT) -> Field:
    return Field(scope, tuple(name.split(".")), span)  # type: ignore[arg-type]


def p(name: str) -> Field:
    return f(name, "profile")


def did(*types: str, where: Pred | None = None, **kw: object) -> Did:
    return Did(EventSel(types or None, AT), where, **kw)  # type: ignore[arg-type]


def seg(cond: Cond, name: str = "S", tz: str | None = None) -> Program:
    return Program((Segment(name, cond, tz, Span(1, 1, 3, 2)),))


def trig(
    *actions: Action,
    events: tuple[str, ...] | None = ("purchased",),
    where: Pred | None = None,
    options: tuple[TriggerOption, ...] = (),
    cond: Cond | None = None,
) -> Trigger:
    acts = actions or (Action("add_tag", (Arg(None, StringLit("x")),)),)
    return Trigger("T", EventSel(events), where, cond, acts, options, None, Span(1, 1, 5, 2))


def run(*defs: Segment | Trigger | DndPolicy, schema: Schema | None = SCHEMA) -> list[Diagnostic]:
    return check(Program(tuple(defs)), schema)


def one(diags: list[Diagnostic], code: str) -> Diagnostic:
    assert codes(diags) == [code], diags
    return diags[0]


def date(s: str) -> DateLit:
    return DateLit(dt.date.fromisoformat(s), UTC, AT)


def cap() -> Cap:
    return Cap(1, Duration(1, "day"))


# --------------------------------------------------------------------------- no schema


def test_clean_program_has_no_diagnostics() -> None:
    cond = And((did("purchased", window=Window("last", Duration(3, "day"))),))
    assert check(seg(cond), SCHEMA) == []
    assert check_program is check


def test_unknown_timezone_suggests_a_close_name() -> None:
    d = one(check(seg(did("purchased"), tz="Europe/Rom")), "unknown_timezone")
    assert d.message == "unknown time zone 'Europe/Rom'"
    assert d.help == "did you mean 'Europe/Rome'?"
    assert d.span == Span(1, 1, 1, 8)  # the `segment` keyword
    assert check(seg(did("purchased"), tz="Europe/Rome")) == []


def test_unknown_timezone_of_quiet_hours_and_bare_condition() -> None:
    q = QuietHours(ClockTime(22, 0), ClockTime(8, 0), "Mars/Base", AT)
    d = one(run(DndPolicy("P", (cap(), q))), "unknown_timezone")
    assert d.span == AT
    assert codes(check_condition(did(), timezone="Nowhere/Land")) == ["unknown_timezone"]
    assert check_condition(did(), timezone="Asia/Tokyo") == []


@pytest.mark.parametrize(
    ("count", "ok"),
    [
        (Count("at_least", -1, None, AT), False),
        (Count("between", 5, 2, AT), False),
        (Count("between", 2, -2, AT), False),
        (Count("between", 2, 2, AT), True),
        (Count("exactly", 0, None, AT), True),
    ],
)
def test_counts(count: Count, ok: bool) -> None:
    diags = check(seg(did("purchased", count=count)))
    assert codes(diags) == ([] if ok else ["invalid_count"])
    assert all(d.span == AT for d in diags)


def test_non_positive_durations() -> None:
    zero = Duration(0, "day", AT)
    conds: list[Cond] = [
        did("purchased", window=Window("last", zero)),
        LastFirst("last", EventSel(("purchased",)), None, Recency("more_than_ago", zero)),
        Sequence(EventSel(("purchased",)), None, False, EventSel(("purchased",)), None, zero),
        ProfileCond(AgoCompare(p("birth_date"), "in_last", zero)),
    ]
    for cond in conds:
        d = one(check(seg(cond), SCHEMA), "invalid_duration")
        assert d.span == AT
    opts: tuple[TriggerOption, ...] = (Delay(Duration(-1, "hour", AT)),)
    assert codes(run(trig(options=opts))) == ["invalid_duration"]
    assert codes(run(DndPolicy("P", (Cap(1, zero),)))) == ["invalid_duration"]


def test_invalid_regex_names_the_reason_at_the_pattern() -> None:
    pat = StringLit("Red (Shoes", AT)
    d = one(check(seg(ProfileCond(TextMatch(p("city"), "matches", pat)))), "invalid_regex")
    assert "missing ), unterminated subpattern" in d.message
    assert d.span == AT
    ok = TextMatch(p("city"), "matches", StringLit("^Mil(an|ano)$"))
    assert check(seg(ProfileCond(ok))) == []
    # `contains "("` is a plain substring, not a pattern
    assert check(seg(ProfileCond(TextMatch(p("city"), "contains", pat)))) == []


def test_duplicate_definitions_of_one_kind() -> None:
    a = Segment("A", did(), None, Span(1, 1, 1, 20))
    b = Segment("A", did(), None, Span(4, 1, 4, 20))
    d = one(check(Program((a, b))), "duplicate_definition")
    assert d.span == Span(4, 1, 4, 8)
    assert d.help is not None and "line 1" in d.help
    # a segment and a DND policy may share a name
    assert check(Program((a, DndPolicy("A", (cap(),))))) == []


def test_unknown_segment_with_suggestion_and_known_ones() -> None:
    ref = InSegment("Lapsed buyer", AT)
    prog = Program((Segment("Lapsed buyers", did()), Segment("B", ref)))
    d = one(check(prog), "unknown_segment")
    assert d.help == "did you mean 'Lapsed buyers'?" and d.span == AT
    assert check(seg(ref), known_segments={"Lapsed buyer": Segment("x", did())}) == []
    assert codes(check_condition(ref)) == ["unknown_segment"]
    assert check_condition(ref, known_segments={"Lapsed buyer": Segment("x", did())}) == []


def test_segment_cycles() -> None:
    a = Segment("A", And((did(), InSegment("B", Span(2, 1, 2, 5)))))
    b = Segment("B", InSegment("A", Span(5, 1, 5, 5)))
    d = one(check(Program((a, b))), "segment_cycle")
    assert d.message.endswith("'A' -> 'B' -> 'A'")
    assert d.span == Span(5, 1, 5, 5)
    self_ref = one(check(seg(InSegment("S", AT))), "segment_cycle")
    assert self_ref.message.endswith("'S' -> 'S'")
    # through a saved segment: only the program's reference can be pointed at
    stored = {"B": Segment("B", InSegment("A", Span(99, 1, 99, 2)))}
    via = one(check(seg(InSegment("B", AT), name="A"), known_segments=stored), "segment_cycle")
    assert via.message.endswith("'A' -> 'B' -> 'A'") and via.span == AT
    # a diamond is no cycle
    c = Segment("C", And((InSegment("D"), InSegment("E"))))
    assert check(Program((c, Segment("D", InSegment("E")), Segment("E", did())))) == []


def test_unknown_policy_and_known_ones() -> None:
    use = UseDnd("Maison", AT)
    d = one(run(trig(options=(use,)), DndPolicy("Maison caps", (cap(),))), "unknown_policy")
    assert d.help == "did you mean 'Maison caps'?" and d.span == AT
    assert check(Program((trig(options=(use,)),)), known_policies={"Maison"}) == []


def test_duplicate_and_conflicting_trigger_options() -> None:
    two_delays = (Delay(Duration(1, "hour")), Delay(Duration(2, "hour"), AT))
    assert one(run(trig(options=two_delays)), "duplicate_option").span == AT
    two_dnd = (UseDnd("P"), UseDnd("P", AT))
    policy = DndPolicy("P", (cap(),))
    assert codes(run(trig(options=two_dnd), policy)) == ["duplicate_option"]
    conflict = (OncePerContact(), AtMostOncePer(Duration(1, "day"), AT))
    d = one(run(trig(options=conflict)), "duplicate_option")
    assert "conflict" in d.message and d.span == AT


def test_dnd_policy_shape() -> None:
    head = Span(3, 1, 3, 4)
    d = one(
        run(DndPolicy("P", (QuietHours(ClockTime(22, 0), ClockTime(8, 0)),), None, head)),
        "dnd_without_cap",
    )
    assert d.span == head
    same = QuietHours(ClockTime(22, 0), ClockTime(22, 0), None, AT)
    assert one(run(DndPolicy("P", (cap(), same))), "invalid_quiet_hours").span == AT
    assert run(DndPolicy("P", (cap(), QuietHours(ClockTime(22, 0), ClockTime(8, 0))))) == []


def test_event_field_outside_a_trigger() -> None:
    cond = ProfileCond(Compare(f("amount"), ">", NumberLit(3)))
    d = one(check(seg(cond), SCHEMA), "event_outside_trigger")
    assert d.span == AT and "event.amount" in d.message


def test_between_values_and_time_ranges() -> None:
    rev = Between(p("loyalty_points"), NumberLit(10), NumberLit(1), AT)
    assert one(check(seg(ProfileCond(rev))), "invalid_range").span == AT
    same_day = Window("between", start=date("2026-01-01"), end=date("2026-01-01"))
    assert check(seg(did("purchased", window=same_day))) == []
    backwards = Window("between", start=date("2026-02-01"), end=date("2026-01-01"), span=AT)
    assert one(check(seg(did("purchased", window=backwards))), "invalid_range").span == AT
    t1 = DateTimeLit(dt.datetime(2026, 1, 1, 12, tzinfo=UTC))
    t0 = DateTimeLit(dt.datetime(2026, 1, 1, 11, tzinfo=UTC))
    # a datetime in the end day is inside a date end
    assert check(seg(did(window=Window("between", start=t1, end=date("2026-01-01"))))) == []
    rec = Recency("between", start=t1, end=t0, span=AT)
    last = LastFirst("last", EventSel(("purchased",)), None, rec)
    assert one(check(seg(last)), "invalid_range").span == AT


# --------------------------------------------------------------------------- actions


def send(*args: Arg) -> Action:
    return Action("send_email", args, AT)


CAMPAIGN = Arg("campaign", StringLit("C-1"))
TO = Arg("to", Ref("profile", ("email",)))


def test_valid_actions() -> None:
    fields = MapValue(
        (("first", Ref("profile", ("first_name",))), ("amount", Ref("event", ("amount",))))
    )
    actions = (
        send(CAMPAIGN, TO, Arg("fields", fields)),
        send(CAMPAIGN, Arg("to", StringLit("test@example.com"))),
        Action(
            "webhook",
            (Arg("url", StringLit("https://x.test/h")), Arg("body", MapValue((("m", fields),)))),
        ),
        Action("add_tag", (Arg(None, StringLit("buyer")),)),
        Action("set", (Arg("city", Ref("event", ("store",))), Arg("loyalty_points", NumberLit(3)))),
    )
    assert run(trig(*actions)) == []
    assert check(Program((trig(*actions),))) == []


def test_unknown_action_is_suggested() -> None:
    d = one(run(trig(Action("send_mail", (CAMPAIGN, TO), AT))), "unknown_action")
    assert d.help == "did you mean 'send_email'?" and d.span == Span(7, 3, 7, 12)


@pytest.mark.parametrize(
    "action",
    [
        send(CAMPAIGN),  # missing to
        send(CAMPAIGN, TO, Arg("to", Ref("profile", ("email",)), AT)),  # twice
        send(CAMPAIGN, TO, Arg("subject", StringLit("x"), AT)),  # unknown
        send(CAMPAIGN, TO, Arg(None, StringLit("x"), AT)),  # positional
        send(CAMPAIGN, Arg("to", StringLit("nobody"))),  # not an address
        send(CAMPAIGN, Arg("to", Ref("event", ("store",)))),  # not the profile
        send(CAMPAIGN, TO, Arg("fields", StringLit("x"))),  # not a map
        send(Arg("campaign", NumberLit(3)), TO),
        Action("webhook", (Arg("url", StringLit("ftp://x")),)),
        Action("webhook", ()),
        Action("add_tag", (Arg(None, StringLit("a")), Arg(None, StringLit("b")))),
        Action("add_tag", (Arg("tag", StringLit("a")),)),
        Action("add_tag", (Arg(None, NumberLit(1)),)),
        Action("set", ()),
        Action("set", (Arg(None, StringLit("x")),)),
        Action("set", (Arg("city", MapValue(())),)),
    ],
)
def test_invalid_arguments(action: Action) -> None:
    assert codes(run(trig(action))) == ["invalid_argument"]


def test_enter_journey_names_a_journey_of_the_program_or_saved() -> None:
    enter = trig(Action("enter_journey", (Arg(None, StringLit("Welcome")),), AT))
    d = one(run(enter), "unknown_journey")
    assert d.message == "unknown journey 'Welcome'" and d.span == Span(7, 3, 7, 16)
    d = one(check(Program((enter,)), SCHEMA, known=Known(journeys={"Welcome!"})), "unknown_journey")
    assert d.help == "did you mean 'Welcome!'?"
    assert check(Program((enter,)), SCHEMA, known=Known(journeys={"Welcome"})) == []
    own = parse('journey "Welcome" { start now wait 1 day }').definitions[0]
    assert check(Program((enter, own)), SCHEMA) == []


def test_action_references_against_the_schema() -> None:
    bad_event = Ref("event", ("product_name",), AT)  # not a property of purchased
    d = one(
        run(trig(send(CAMPAIGN, TO, Arg("fields", MapValue((("p", bad_event),)))))),
        "unknown_property",
    )
    assert d.span == AT
    bad_profile = Ref("profile", ("emial",), AT)
    d = one(run(trig(send(CAMPAIGN, Arg("to", bad_profile)))), "unknown_profile_property")
    assert d.help == "did you mean 'email'?"
    points = Ref("profile", ("loyalty_points",), AT)
    assert one(run(trig(send(CAMPAIGN, Arg("to", points)))), "type_mismatch").span == AT
    # `anything` triggers reach every type's properties
    assert (
        run(trig(send(CAMPAIGN, TO, Arg("fields", MapValue((("p", bad_event),)))), events=None))
        == []
    )


def test_set_against_the_schema() -> None:
    unknown = Arg("favourite", StringLit("x"), AT)
    d = one(run(trig(Action("set", (unknown,)))), "unknown_profile_property")
    assert d.span == Span(7, 3, 7, 12)  # the key
    wrong = Arg("loyalty_points", StringLit("many", AT))
    assert one(run(trig(Action("set", (wrong,)))), "type_mismatch").span == AT
    ref = Arg("newsletter", Ref("event", ("amount",), AT))
    assert one(run(trig(Action("set", (ref,)))), "type_mismatch").span == AT
    assert run(trig(Action("set", (Arg("newsletter", BoolLit(True)),)))) == []


# --------------------------------------------------------------------------- schema


def test_unknown_event_type_message_and_help() -> None:
    sel = EventSel(("purchase",), AT)
    d = one(check(seg(Did(sel)), SCHEMA), "unknown_event_type")
    assert d.message == "unknown event type 'purchase'"
    assert d.help == "did you mean 'purchased'?"
    assert d.span == AT
    assert check(seg(Did(sel))) == []  # no schema: any type


def test_unknown_event_type_in_type_predicate() -> None:
    where = InList(f("type"), (StringLit("purchased"), StringLit("viewed", AT)))
    d = one(check(seg(did(where=where)), SCHEMA), "unknown_event_type")
    assert d.span == AT and d.help == "did you mean 'viewed_product'?"


def test_event_properties_over_the_selected_types() -> None:
    amount = Compare(f("amount"), ">", NumberLit(3))
    d = one(check(seg(did("viewed_product", where=amount)), SCHEMA), "unknown_property")
    assert d.message == "unknown property 'amount' for 'viewed_product'" and d.span == AT
    assert check(seg(did("viewed_product", "purchased", where=amount)), SCHEMA) == []
    assert check(seg(did(where=amount)), SCHEMA) == []  # anything
    typo = Compare(f("ammount"), ">", NumberLit(3))
    assert (
        one(check(seg(did(where=typo)), SCHEMA), "unknown_property").help
        == "did you mean 'amount'?"
    )
    # an unknown type is reported once, its properties are not
    assert codes(check(seg(did("purchase", where=amount)), SCHEMA)) == ["unknown_event_type"]
    # builtins exist for every type
    ctx = Compare(f("context"), "=", StringLit("WEB"))
    assert check(seg(did("email_sent", where=ctx)), SCHEMA) == []


def test_inconsistent_property_types_across_types() -> None:
    schema = Schema(events={"a": {"x": "string"}, "b": {"x": "float"}, "c": {"x": "int"}})
    where = IsSet(f("x"))
    assert codes(check(seg(did("a", "b", where=where)), schema)) == ["inconsistent_property"]
    assert check(seg(did("b", "c", where=where)), schema) == []  # both numbers


def test_unknown_profile_property() -> None:
    d = one(check(seg(ProfileCond(IsSet(p("citty")))), SCHEMA), "unknown_profile_property")
    assert d.help == "did you mean 'city'?" and d.span == AT
    in_where = Compare(p("gendre"), "=", StringLit("f"))
    assert codes(check(seg(did(where=in_where)), SCHEMA)) == ["unknown_profile_property"]


def test_aggregates_need_numbers() -> None:
    def agg(func: str, prop: str) -> Aggregate:
        return Aggregate(func, f(prop), EventSel(("purchased",)), None, None, ">", NumberLit(1))  # type: ignore[arg-type]

    d = one(check(seg(agg("sum", "store")), SCHEMA), "non_numeric_aggregate")
    assert d.span == AT and "'store' is a string" in d.message
    assert check(seg(agg("count_distinct", "store")), SCHEMA) == []
    assert check(seg(agg("avg", "items")), SCHEMA) == []
    assert codes(check(seg(agg("max", "amout")), SCHEMA)) == ["unknown_property"]


@pytest.mark.parametrize(
    ("pred", "ok"),
    [
        (Compare(p("city"), "=", StringLit("Milan")), True),
        (Compare(p("city"), ">", NumberLit(3, AT)), False),
        (Compare(p("loyalty_points"), "=", StringLit("abc", AT)), False),
        (Compare(p("loyalty_points"), ">=", NumberLit(2.5)), True),
        (Compare(p("newsletter"), "=", BoolLit(True)), True),
        (Compare(p("newsletter"), "=", StringLit("true", AT)), False),
        (Compare(p("birth_date"), "<", DateLit(dt.date(2000, 1, 1), UTC)), True),
        (Compare(p("signup_ts"), ">=", DateLit(dt.date(2000, 1, 1), UTC)), True),
        (Compare(p("birth_date"), "=", StringLit("2000-01-01", AT)), False),
        (InList(p("city"), (StringLit("Milan"), NumberLit(3, AT))), False),
        (Between(p("loyalty_points"), NumberLit(1), StringLit("9", AT)), False),
        (TextMatch(p("city"), "starts_with", StringLit("Mi")), True),
        (TextMatch(p("tags"), "contains", StringLit("vip")), True),
        (IsSet(p("tags"), True), True),
        (InList(p("tags"), (StringLit("vip"), StringLit("gold"))), True),
        (InList(p("tags"), (StringLit("vip"), NumberLit(1, AT))), False),
    ],
)
def test_values_fit_the_property(pred: Pred, ok: bool) -> None:
    diags = check(seg(ProfileCond(pred)), SCHEMA)  # type: ignore[arg-type]
    assert codes(diags) == ([] if ok else ["type_mismatch"])
    assert all(d.span == AT for d in diags)


@pytest.mark.parametrize(
    "pred",
    [
        TextMatch(p("loyalty_points"), "contains", StringLit("1")),
        TextMatch(p("tags"), "starts_with", StringLit("v")),
        Compare(p("tags"), "=", StringLit("vip")),
        InList(p("tags"), (StringLit("vip"),), negated=True),
        TimeCompare(p("city"), "before", DateLit(dt.date(2020, 1, 1), UTC)),
        AgoCompare(p("loyalty_points"), "more_than_ago", Duration(1, "day")),
        Compare(p("newsletter"), ">", BoolLit(False)),
    ],
)
def test_operators_fit_the_property(pred: Pred) -> None:
    d = one(check(seg(ProfileCond(pred)), SCHEMA), "type_mismatch")  # type: ignore[arg-type]
    assert d.span == AT  # the property


def test_builtin_event_fields_are_typed_without_a_schema() -> None:
    where = Compare(f("ts"), "=", StringLit("yesterday", AT))
    assert codes(check(seg(did("x", where=where)))) == ["type_mismatch"]
    since = TimeCompare(f("ts"), "since", DateLit(dt.date(2026, 1, 1), UTC))
    assert check(seg(did("x", where=since))) == []


def test_unknown_context_is_suggested() -> None:
    where = Compare(f("context"), "=", StringLit("web", AT))
    d = one(check(seg(did(where=where))), "unknown_context")
    assert d.help == "did you mean 'WEB'?" and d.span == AT


def test_trigger_where_uses_the_trigger_events() -> None:
    where = Compare(f("product_name"), "=", StringLit("x"))
    assert codes(run(trig(where=where))) == ["unknown_property"]
    assert run(trig(where=where, events=("viewed_product",))) == []


def test_every_problem_is_reported_in_text_order() -> None:
    cond = And(
        (
            Did(EventSel(("purchase",), Span(2, 5, 2, 13))),
            ProfileCond(
                Compare(
                    p(
                        "city",
                    ),
                    ">",
                    NumberLit(3, Span(3, 10, 3, 11)),
                )
            ),
            InSegment("nope", Span(1, 4, 1, 9)),
        )
    )
    diags = check(seg(cond), SCHEMA)
    assert codes(diags) == ["unknown_segment", "unknown_event_type", "type_mismatch"]


# --------------------------------------------------------------------------- texts

GOLDEN = sorted((CORPUS / "invalid_check").glob("*.rules"))
MAISON = Path(__file__).parents[1] / "audience" / "examples"

SPEC_EXAMPLES = [
    """
segment "Red Shoes viewed without purchase" {
  rule "Clicked Red shoes" (
    did viewed_product where product_name = "Red Shoes" in last 15 days
  )
  and rule "No purchase in the last 15 days" (
    not did purchased in last 15 days
  )
}
""",
    """
trigger "Thank newsletter subscribers" {
  on form_compiled where (form_name = "addUser" and context = "WEB")
  if profile.email is set
  do send_email(campaign: "C-1234", to: profile.email,
                fields: {first_name: profile.first_name, form: event.form_name})
  dnd "Maison shoes, clothes and accessories"
}

dnd "Maison shoes, clothes and accessories" {
  max 1 per day
  max 3 per week
  global
}
""",
    """
dnd "Quiet nights" {
  max 2 per 3 days
  for email
  quiet hours 22:00 to 08:00 timezone "Europe/Rome"
}
""",
    "did purchased in last 30 days",
    "sum(amount) of purchased in last 90 days > 200",
    "last purchased more than 60 days ago",
    "did added_to_cart then purchased within 1 hour",
    'did viewed_product where product_name = "Red Shoes" then not purchased within 2 days'
    " in last 15 days",
    'did viewed_product where (category = "shoes" and price > 50)',
    "did (viewed_product, added_to_cart) at least 3 times between 2026-01-01 and 2026-01-31",
    'did anything where context != "WEB" since 2026-11-01T18:30:00+01:00',
    "count_distinct(category) of purchased this month >= 2",
    'not (city = "Milan") and gender in ("female", "other") and loyalty_points between 10 and 100',
    'tags contains "vip" and birth_date before 2000-01-01 and signup_ts in last 2 weeks',
    "first email_opened less than 3 days ago and newsletter = true",
]


def _parse(text: str, filename: str = "<input>") -> Program:
    from audience.dsl.parser import parse

    return parse(text, filename=filename)


@pytest.mark.parametrize("text", SPEC_EXAMPLES)
def test_spec_examples_check_clean(text: str) -> None:
    assert check(_parse(text), SCHEMA) == []


def test_maison_example_checks_clean() -> None:
    schema = Schema.load(MAISON / "maison.toml")
    program = _parse((MAISON / "maison.rules").read_text(), "maison.rules")
    assert check(program, schema) == []


def test_corpus_is_big_enough() -> None:
    assert len(GOLDEN) >= 15


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_invalid_check_corpus(path: Path) -> None:
    from audience.dsl import check as check_pkg
    from audience.dsl.errors import DslError

    text = path.read_text()
    diags = check(_parse(text, path.name), SCHEMA)
    assert diags, f"{path.name} checks clean"
    documented = check_pkg.__doc__ or ""
    assert all(f"``{d.code}``" in documented for d in diags)
    if f"``{path.stem}``" in documented:  # a file named for a code shows that code
        assert path.stem in codes(diags)
    rendered = DslError(diags, text, path.name).render() + "\n"
    golden.check(path.with_suffix(".err"), rendered)


# --------------------------------------------------------------------------- robustness


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=strategies.programs,
    stored=st.lists(strategies.segments(), max_size=3),
    with_schema=st.booleans(),
)
def test_any_parsable_program_checks_without_crashing(
    program: Program, stored: list[Segment], with_schema: bool
) -> None:
    from audience.dsl import check as check_pkg

    known = {s.name: s for s in stored}
    diags = check(program, SCHEMA if with_schema else None, known_segments=known)
    documented = check_pkg.__doc__ or ""
    assert all(f"``{d.code}``" in documented and d.message for d in diags)
    assert diags == sorted(diags, key=lambda d: (d.span.line, d.span.column, d.code))


def test_known_names_per_kind() -> None:
    """Saved names come in one ``Known``; templates resolve only when given."""
    from audience.dsl.check import Known, TemplateInfo

    text = (
        'trigger "T" {\n  on form_compiled\n'
        '  do send_email(campaign: "Welcome", to: profile.email, fields: {a: 1})\n'
        '  dnd "Caps"\n}\n'
    )
    program = _parse(text, "t.rules")
    assert codes(check(program, SCHEMA)) == ["unknown_policy"]  # templates not resolved
    assert check(program, SCHEMA, known_policies=["Caps"]) == []  # the older spelling
    known = Known(policies={"Caps"}, templates={"Welcome": TemplateInfo(frozenset({"a", "b"}))})
    [d] = check(program, SCHEMA, known=known)
    assert (d.code, d.message) == (
        "template_fields",
        "template 'Welcome' uses b, which fields: does not give",
    )
    [d] = check(
        program, SCHEMA, known=Known(policies={"Caps"}, templates={"Welcom": TemplateInfo()})
    )
    assert (d.code, d.help) == ("unknown_template", "did you mean 'Welcom'?")
