"""The language of deliveries and plans: parsing, formatting (round trips and
exact text), the lexical forms of schedules, and the checker's names and
``check_plan_ready``.  The golden corpus (tests/corpus) covers the rest."""

from __future__ import annotations

import datetime as dt
import functools
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark import Lark

from audience.dsl import ast as A
from audience.dsl.ast_sending import DeliveryDef, Plan, Schedule
from audience.dsl.check import Known, TemplateInfo, check
from audience.dsl.check.sending import check_plan_ready
from audience.dsl.errors import DslError
from audience.dsl.formatter import FormatError, format_text
from audience.dsl.parser import parse, parse_condition
from audience.schema import Schema
from tests import ast_strategies as S
from tests.helpers.language import grammar_parser, outcome

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = Path(__file__).parent.parent / "audience" / "examples"
SCHEMA = Schema.load(CORPUS / "schema.toml")
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(parsed: object, expected: object) -> None:
    assert parsed == expected
    assert repr(parsed) == repr(expected)


def one(text: str) -> A.Definition:
    (d,) = parse(text).definitions
    return d


def plan(text: str) -> Plan:
    p = one(text)
    assert isinstance(p, Plan)
    return p


def when(clause: str) -> Schedule:
    return plan(f'plan p {{ who "s" when {clause} send "d" }}').when


# ------------------------------------------------------------------ round trips


@PROPERTY
@given(S.plans())
def test_plan_round_trip(p: Plan) -> None:
    same(parse(format_text(p)), A.Program((p,)))


@PROPERTY
@given(S.deliveries)
def test_delivery_round_trip(d: DeliveryDef) -> None:
    same(parse(format_text(d)), A.Program((d,)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.plans())
def test_plan_format_is_idempotent_on_text(p: Plan) -> None:
    text = format_text(p)
    assert format_text(parse(text)) == text


def test_spec_examples_print_back_unchanged() -> None:
    text = (CORPUS / "valid" / "spec_deliveries_plans.rules").read_text()
    # the only difference: the comment the formatter does not keep
    expected = text.replace("    # overrides the template's subject", "")
    assert format_text(parse(text)) == expected


@pytest.mark.parametrize(
    ("clause", "text"),
    [
        ("once at 2027-03-11 10:00", "once at 2027-03-11 10:00"),
        ('ONCE AT 2027-03-11 9:05 TIMEZONE "UTC"', 'once at 2027-03-11 09:05 timezone "UTC"'),
        ("every days at 7:00", "every day at 07:00"),
        ("every week on Monday,Thursday at 09:00", "every week on monday, thursday at 09:00"),
        ("every week at 09:00", "every week at 09:00"),
        ("every month on day 31 at 23:59", "every month on day 31 at 23:59"),
        ("every 1 days at 00:00 from 2027-01-01", "every 1 day at 00:00 from 2027-01-01"),
        ("every 2 week at 00:00 from 2027-01-01", "every 2 weeks at 00:00 from 2027-01-01"),
        (
            'every 2 weeks on sunday at 10:00 until 2027-12-31 timezone "Asia/Tokyo" '
            "from 2027-01-03",
            'every 2 weeks on sunday at 10:00 timezone "Asia/Tokyo" from 2027-01-03 '
            "until 2027-12-31",
        ),
    ],
)
def test_schedule_text(clause: str, text: str) -> None:
    assert format_text(when(clause)) == text
    assert when(text) == when(clause)


def test_long_when_continues_under_its_first_word_and_wide_fields_one_a_line() -> None:
    p = plan(
        'plan p { who "s" send "d" when every week on monday, tuesday, wednesday at 09:00 '
        'timezone "America/Argentina/Buenos_Aires" from 2027-01-04 until 2027-06-30 }'
    )
    assert format_text(p).splitlines()[2:4] == [
        "  when every week on monday, tuesday, wednesday at 09:00 "
        'timezone "America/Argentina/Buenos_Aires"',
        "       from 2027-01-04 until 2027-06-30",
    ]
    d = one(
        'delivery d { template "t" fields { first_name: profile.first_name, '
        'last_name: profile.last_name, city: profile.city, code: "SPRING-2027" } }'
    )
    assert format_text(d).splitlines()[2:] == [
        "  fields {",
        "    first_name: profile.first_name,",
        "    last_name: profile.last_name,",
        "    city: profile.city,",
        '    code: "SPRING-2027"',
        "  }",
        "}",
    ]


def test_inline_condition_with_a_rule_is_a_block() -> None:
    p = plan(
        'plan p { who (rule "Loyal" (loyalty_points > 100) and city = "Rome") '
        'when every day at 09:00 send "d" }'
    )
    assert format_text(p).splitlines()[1:6] == [
        "  who (",
        '    rule "Loyal" (loyalty_points > 100)',
        '    and city = "Rome"',
        "  )",
        "  when every day at 09:00",
    ]


def test_schedules_the_language_cannot_spell_are_refused() -> None:
    at = dt.time(9, 0)
    with pytest.raises(FormatError):
        format_text(Schedule("daily", at, month_day=3))
    with pytest.raises(FormatError):
        format_text(Schedule("once", at))
    with pytest.raises(FormatError):
        format_text(Schedule("daily", dt.time(9, 0, 30)))
    with pytest.raises(FormatError):
        format_text(Schedule("yearly", at))  # type: ignore[arg-type]


# ------------------------------------------------------------------ parsing


def test_lines_in_any_order_and_any_case_give_one_ast() -> None:
    a = plan('plan p { who "s" when every day at 09:00 dnd "c" send "d" late up to 2 hours }')
    b = plan('PLAN p { Late Up To 2 Hours SEND "d" Dnd "c" WHEN EVERY DAY AT 9:00 WHO "s" }')
    assert a == b
    assert a == Plan("p", "s", Schedule("daily", dt.time(9, 0)), "d", "c", A.Duration(2, "hour"))


def test_the_spec_weekly_plan() -> None:
    p = plan(
        'plan "Weekly picks" {\n'
        "  who (did viewed_product in last 7 days and not did purchased in last 7 days)\n"
        '  when every week on monday, thursday at 09:00 timezone "Europe/Rome"\n'
        "       from 2027-01-04 until 2027-06-30\n"
        '  dnd "Maison shoes, clothes and accessories"\n'
        '  send "Weekly picks"\n'
        "}\n"
    )
    assert p.when == Schedule(
        "weekly",
        dt.time(9, 0),
        weekdays=("monday", "thursday"),
        timezone="Europe/Rome",
        from_date=dt.date(2027, 1, 4),
        until_date=dt.date(2027, 6, 30),
    )
    assert isinstance(p.who, A.And) and p.dnd == "Maison shoes, clothes and accessories"
    assert p.tz_name == "Europe/Rome" and p.lateness is None
    assert p.when.span == A.Span(3, 8, 4, 40)
    assert p.when.from_span == A.Span(4, 8, 4, 23) and p.send_span == A.Span(6, 8, 6, 22)


def test_inline_condition_dates_are_read_in_the_schedules_zone() -> None:
    p = plan(
        "plan p { who (did x since 2027-01-01 and did y before 2027-01-01T10:00) "
        'when every day at 09:00 timezone "Europe/Rome" send "d" }'
    )
    assert isinstance(p.who, A.And)
    since, before = (c.window for c in p.who.operands if isinstance(c, A.Did))
    assert since is not None and isinstance(since.start, A.DateLit)
    assert since.start.tz == ZoneInfo("Europe/Rome")
    assert before is not None and isinstance(before.end, A.DateTimeLit)
    assert before.end.value.tzinfo == ZoneInfo("Europe/Rome")
    utc = plan('plan p { who (did x since 2027-01-01) when every day at 09:00 send "d" }')
    assert isinstance(utc.who, A.Did) and utc.who.window is not None
    assert isinstance(utc.who.window.start, A.DateLit)
    assert utc.who.window.start.tz == ZoneInfo("UTC")


def test_once_at_a_date_and_a_time_beside_the_other_date_forms() -> None:
    p = plan(
        "plan p { who (did x between 2027-01-01 and 2027-01-31T18:30:00Z) "
        'when once at 2027-03-11 10:00 send "d" }'
    )
    assert p.when == Schedule("once", dt.time(10, 0), on_date=dt.date(2027, 3, 11))
    assert p.when.at_span == A.Span(1, 79, 1, 95)  # the date and the time together
    assert isinstance(p.who, A.Did) and p.who.window is not None
    assert isinstance(p.who.window.start, A.DateLit)
    assert isinstance(p.who.window.end, A.DateTimeLit) and p.who.window.end.has_offset


def test_new_keywords_are_still_property_names_in_conditions() -> None:
    # `from`, `template`, `who`, `send`, `every`, `plan`... are keywords only in
    # the lines of deliveries and plans.
    text = (
        'from = "x" and template is set and who = 1 and send = true and every > 2 '
        'and list contains "a" and up = 1 and plan = "gold" and late = false'
    )
    cond = parse_condition(text)
    assert isinstance(cond, A.And) and len(cond.operands) == 9
    seg = one(f"segment s {{ {text} }}")
    assert isinstance(seg, A.Segment) and seg.cond == cond
    trigger = one('trigger t { on x where (from = 1 and test = 2) do send_email(to: "a@b") }')
    assert isinstance(trigger, A.Trigger)
    # at the very start of a file `plan` opens a definition, as `segment` does
    assert parse('`plan` = "gold"').condition == parse_condition('plan = "gold"')
    with pytest.raises(DslError):
        parse('plan = "gold"')


def test_a_delivery_has_every_line() -> None:
    d = one(
        'delivery "Spring" { template "spring-event" mail group "Events" subject "Hi {{ x }}" '
        'from "M <n@m.example>" sender "b@m.example" reply to "c@m.example" '
        'fields { a: profile.first_name, "b c": 2 } test list ("q@m.example", "r@m.example") }'
    )
    assert d == DeliveryDef(
        "Spring",
        "spring-event",
        "Events",
        "Hi {{ x }}",
        "M <n@m.example>",
        "b@m.example",
        "c@m.example",
        A.MapValue((("a", A.Ref("profile", ("first_name",))), ("b c", A.NumberLit(2)))),
        ("q@m.example", "r@m.example"),
    )


# ------------------------------------------------------------------ checking


SPEC = (CORPUS / "valid" / "spec_deliveries_plans.rules").read_text()
STORED_SEGMENTS = {
    "Milan store loyal customers": A.Segment(
        "Milan store loyal customers", parse_condition('city = "Milan"')
    )
}


def test_spec_examples_check_clean_with_the_store_names() -> None:
    program = parse(SPEC)
    found = check(
        program,
        SCHEMA,
        known_segments=STORED_SEGMENTS,
        known_policies={"Maison shoes, clothes and accessories"},
        known=Known(deliveries={"Weekly picks"}, templates={"spring-event": TemplateInfo()}),
    )
    assert found == []
    without = check(program, SCHEMA, known_segments=STORED_SEGMENTS)
    assert [(d.code, d.message) for d in without] == [
        ("unknown_policy", "unknown DND policy 'Maison shoes, clothes and accessories'"),
        ("unknown_delivery", "unknown delivery 'Weekly picks'"),
    ]


def _templates(*names: str) -> Known:
    return Known(templates={n: TemplateInfo() for n in names})


def test_templates_are_checked_only_when_known() -> None:
    program = parse('delivery d { template "sprng-event" }')
    assert check(program) == []
    (diag,) = check(program, known=_templates("spring-event", "autumn"))
    assert diag.code == "unknown_template" and diag.help == "did you mean 'spring-event'?"
    assert diag.span == A.Span(1, 23, 1, 36)
    (diag,) = check(program, known=_templates())
    assert diag.code == "unknown_template"
    assert diag.help == "save a template named 'sprng-event' first (audience templates add)"


def test_saved_deliveries_count_and_program_ones_too() -> None:
    text = 'segment s { city = "x" } plan p { who "s" when every day at 09:00 send "Saved" }'
    program = parse(text)
    assert [d.code for d in check(program)] == ["unknown_delivery"]
    assert check(program, known=Known(deliveries=["Saved"])) == []
    (diag,) = check(program, known=Known(deliveries=["Saver", "Other"]))
    assert diag.help == "did you mean 'Saver'?"


def test_duplicate_deliveries_and_plans() -> None:
    text = (
        'delivery d { template "t" }\ndelivery d { template "u" }\n'
        'plan p { who (city = "x") when every day at 09:00 send "d" }\n'
        'plan p { who (city = "y") when every day at 10:00 send "d" }\n'
    )
    assert [(d.code, d.message, d.span.line) for d in check(parse(text))] == [
        ("duplicate_definition", "delivery 'd' is defined twice", 2),
        ("duplicate_definition", "plan 'p' is defined twice", 4),
    ]


def _ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def test_check_plan_ready_refuses_a_one_shot_time_already_past() -> None:
    p = plan(
        'plan "Spring" { who "s" when once at 2027-03-11 10:00 timezone "Europe/Rome" send "d" }'
    )
    due = _ms("2027-03-11T09:00:00Z")
    assert check_plan_ready(p, due - 1) == []
    (diag,) = check_plan_ready(p, due)
    assert diag.code == "plan_in_past" and diag.span == p.span
    assert diag.message == (
        "plan 'Spring' was due at 2027-03-11 10:00 (Europe/Rome), which has passed "
        "(it is now 2027-03-11 09:00 UTC)"
    )


def test_check_plan_ready_on_repeated_plans() -> None:
    p = plan('plan p { who "s" when every day at 09:00 until 2027-01-31 send "d" }')
    assert check_plan_ready(p, _ms("2027-01-31T08:59:00Z")) == []
    (diag,) = check_plan_ready(p, _ms("2027-01-31T09:00:00Z"))
    assert diag.code == "plan_in_past" and "2027-01-31" in diag.message
    forever = plan('plan p { who "s" when every week on monday at 09:00 send "d" }')
    assert check_plan_ready(forever, _ms("2090-01-01T00:00:00Z")) == []
    bad_zone = plan('plan p { who "s" when once at 2027-01-01 09:00 timezone "Mars" send "d" }')
    assert [d.code for d in check_plan_ready(bad_zone, 0)] == ["unknown_timezone"]


def test_audience_check_describes_deliveries_and_plans(tmp_path: Path) -> None:
    rules = tmp_path / "spring.rules"
    rules.write_text(
        'segment "Loyal" { loyalty_points > 100 }\n\n'
        'dnd "Caps" { max 1 per day }\n\n'
        + SPEC.replace("Milan store loyal customers", "Loyal")
        .replace("Maison shoes, clothes and accessories", "Caps")
        .replace('send "Weekly picks"', 'send "Spring event reminder"')
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "audience",
            "check",
            str(rules),
            "--schema",
            str(CORPUS / "schema.toml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"{rules}: ok against the schema: 1 segment, 1 dnd policy, 1 delivery, 2 plans",
        "  segment 'Loyal' (line 1)",
        "  dnd policy 'Caps' (line 3)",
        "  delivery 'Spring event reminder' (line 5)",
        "  plan 'Spring collection reminder' (line 16)",
        "  plan 'Weekly picks' (line 22)",
    ]


# ------------------------------------------------------------------ the lexer beside the old forms

GRAMMAR = Path(__file__).parent.parent / "audience" / "grammar" / "audience.lark"
SENDING = re.compile(r"// -+ deliveries and plans\n.*?(?=// -+ terminals)", flags=re.DOTALL)


_lark = grammar_parser


NEW_KEYWORDS = [
    *("DELIVERY", "EVERY", "FIELDS", "FROM", "GROUP", "LATE", "LIST", "MAIL", "PLAN", "REPLY"),
    *("SEND", "SENDER", "SUBJECT", "TEMPLATE", "TEST", "UNTIL", "UP", "WHEN", "WHO"),
]


def _without_sending(grammar: str) -> str:
    """The grammar as it was before deliveries and plans: their rules and keywords out."""
    grammar = SENDING.sub("", grammar).replace(" | delivery | plan | journey", "")
    lines = [
        line
        for line in grammar.splitlines()
        if not any(line.startswith(f"_{k}.2:") for k in NEW_KEYWORDS)
    ]
    return "\n".join(lines) + "\n"


_outcome = outcome


def test_every_corpus_file_parses_as_it_did_before_plans() -> None:
    """Adding the blocks' rules and keywords changes nothing for existing texts:
    same tree, or the same failure at the same place."""
    new_grammar = GRAMMAR.read_text()
    old = _lark(_without_sending(new_grammar))
    new = _lark(new_grammar)
    files = sorted(CORPUS.rglob("*.rules")) + sorted(EXAMPLES.glob("*.rules"))
    compared = 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if re.search(r"^\s*(plan|delivery|journey)\b", text, flags=re.MULTILINE | re.IGNORECASE):
            continue  # a file of the new blocks
        assert _outcome(new, text) == _outcome(old, text), path.name
        compared += 1
    assert compared >= 90
    # and the old grammar really is the old one
    assert _outcome(old, 'plan p { who "s" when every day at 09:00 send "d" }')[0] == "failed"


@functools.cache
def _parsers() -> tuple[Lark, Lark]:
    text = GRAMMAR.read_text()
    return _lark(_without_sending(text)), _lark(text)


_OLD_PROGRAMS = st.one_of(
    st.builds(
        A.Program,
        st.lists(
            st.one_of(S.segments(), S.triggers(), S.dnd_policies()), min_size=1, max_size=3
        ).map(tuple),
    ),
    st.builds(A.Program, st.just(()), S.conds("UTC")),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_OLD_PROGRAMS)
def test_random_programs_without_plans_parse_as_before(program: A.Program) -> None:
    old, new = _parsers()
    text = format_text(program)
    assert _outcome(new, text) == _outcome(old, text)
