"""The language of journeys: parsing (header lines, steps, nesting, keywords
that stay names elsewhere), the builder's structure errors, formatting (round
trips, idempotence, exact text, comments kept).  The checker's diagnostics are
in the golden corpus (tests/corpus/invalid_check/journey_*)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from audience.dsl import ast as A
from audience.dsl.ast_journeys import (
    ActionStep,
    CheckStep,
    Clicked,
    EndStep,
    EnterOn,
    EnterSegment,
    Journey,
    Opened,
    ReEntry,
    StartAt,
    StartNow,
    WaitStep,
    step_paths,
)
from audience.dsl.check import Known, check
from audience.dsl.errors import DslError
from audience.dsl.format_comments import format_source
from audience.dsl.formatter import format_text
from audience.dsl.parser import parse, parse_condition
from audience.schema import Schema
from tests import ast_strategies as S
from tests.helpers import golden
from tests.helpers.language import SPEC_JOURNEY as WELCOME
from tests.helpers.language import grammar_parser as _lark
from tests.helpers.language import outcome as _outcome
from tests.helpers.language import same

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = Path(__file__).parent.parent / "audience" / "examples"
GRAMMAR = Path(__file__).parent.parent / "audience" / "grammar" / "audience.lark"
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def journey(text: str) -> Journey:
    (d,) = parse(text).definitions
    assert isinstance(d, Journey)
    return d


def error(text: str) -> tuple[str, str, int, int]:
    with pytest.raises(DslError) as info:
        parse(text)
    d = info.value.diagnostics[0]
    assert d.span is not None
    return d.code, d.message, d.span.line, d.span.column


# ------------------------------------------------------------------ parsing


def test_the_welcome_journey() -> None:
    j = journey(WELCOME)
    assert j.name == "Welcome email and promotional code"
    assert j.start == StartNow()
    assert isinstance(j.entry, EnterOn) and j.entry.events.types == ("form_compiled",)
    assert isinstance(j.entry.where, A.PredAnd) and j.entry.condition is None
    assert j.reentry == ReEntry() and j.dnd == "Maison shoes, clothes and accessories"
    welcome, check = j.steps
    assert welcome == ActionStep("Welcome", send="Complete your profile")
    assert isinstance(check, CheckStep)
    assert check.cond == Clicked("Welcome") and check.within == A.Duration(3, "day")
    assert check.yes == (ActionStep("Promo", send="Your promotional code"), EndStep())
    assert check.no == (EndStep(),)
    assert [p for p, _ in step_paths(j.steps)] == ["0", "1", "1.yes.0", "1.yes.1", "1.no.0"]
    # spans: the label, the delivery, the blocks, the header lines
    assert (welcome.label_span.line, welcome.label_span.column) == (6, 10)
    assert (welcome.send_span.line, welcome.send_span.column) == (6, 25)
    assert (check.yes_span.line, check.yes_span.end_line) == (8, 11)
    assert (check.no_span.line, check.no_span.end_line) == (12, 14)
    assert [s.line for s in j.line_spans] == [2, 3, 4, 5]


def test_header_lines_in_any_order() -> None:
    a = journey('journey j { dnd "P" again after 2 weeks enter segment "S" start now end }')
    b = journey('journey j { start now enter segment "S" again after 2 weeks dnd "P" end }')
    same(a, b)
    assert a.entry == EnterSegment("S") and a.reentry == ReEntry(A.Duration(2, "week"))
    # the header lines' spans in the formatter's order, whatever the source's
    assert [s.column for s in a.line_spans] == [59, 41, 21, 13]


def test_start_at_is_a_naive_local_time_and_sets_the_zone_of_dates() -> None:
    j = journey(
        'journey j { start at 2027-01-10 09:00 timezone "Europe/Rome"\n'
        "  enter on purchased if did viewed_product since 2027-01-01\n"
        '  check "c" did purchased before 2027-02-01 within 1 day yes { end } no { end } }'
    )
    assert j.start == StartAt(dt.datetime(2027, 1, 10, 9, 0), "Europe/Rome")
    assert isinstance(j.entry, EnterOn) and isinstance(j.entry.condition, A.Did)
    assert j.entry.condition.window is not None and j.entry.condition.window.start is not None
    assert str(j.entry.condition.window.start.tz) == "Europe/Rome"
    assert journey("journey j { start at 2027-01-10 09:00 end }").start == StartAt(
        dt.datetime(2027, 1, 10, 9, 0)
    )


def test_steps_and_conditions_of_checks() -> None:
    j = journey(
        """journey j { start now
        action "Tag" add_tag("welcomed")
        action "Hook" webhook(url: "https://example.com/h", body: {id: profile.email})
        wait 90 minutes
        check "A" clicked "Hook" link "Shop now" within 2 days yes { end } no {}
        check "B" opened "Tag" within 1 hour yes {} no { wait 1 day }
        check "C" did purchased where amount > 10 or vip within 1 week yes {} no {}
        }"""
    )
    tag, hook, wait, a, b, c = j.steps
    assert isinstance(tag, ActionStep) and tag.call is not None and tag.send is None
    assert tag.call.name == "add_tag"
    assert isinstance(hook, ActionStep) and hook.call is not None and hook.call.name == "webhook"
    assert wait == WaitStep(A.Duration(90, "minute"))
    assert isinstance(a, CheckStep) and a.cond == Clicked("Hook", "Shop now") and a.no == ()
    assert isinstance(b, CheckStep) and b.cond == Opened("Tag")
    assert b.no == (WaitStep(A.Duration(1, "day")),)
    assert isinstance(c, CheckStep) and isinstance(c.cond, A.Or)
    assert c.within == A.Duration(1, "week")


def test_checks_nest() -> None:
    inner = 'check "i" opened "a" within 1 day yes { end } no { end }'
    j = journey(
        f'journey j {{ start now action "a" send "d" '
        f'check "o" clicked "a" within 1 day yes {{ {inner} }} no {{ {inner} }} }}'
    )
    ids = [p for p, _ in step_paths(j.steps)]
    nested = ["1.yes.0", "1.yes.0.yes.0", "1.yes.0.no.0", "1.no.0", "1.no.0.yes.0", "1.no.0.no.0"]
    assert ids == ["0", "1", *nested]


def test_journey_words_stay_names_where_they_were() -> None:
    words = ["start", "wait", "end", "check", "yes", "no", "action", "clicked", "opened"]
    words += ["within", "again", "enter", "now", "after", "link"]
    for w in words:
        if w == "within":  # a keyword of conditions already (then ... within)
            continue
        c = parse_condition(f"did {w} where {w} = 1 and {w} > 2")
        assert isinstance(c, A.And), w
        trig = parse(f"trigger t {{ on {w} where {w} = 1 do set({w}: 1) }}").definitions[0]
        assert isinstance(trig, A.Trigger) and trig.events.types == (w,), w
        # inside a journey too: as an event type, a property, an action's argument
        j = journey(
            f"journey j {{ start now enter on {w} where {w} = 1 if {w} > 1\n"
            f'  action "x" set({w}: 1)\n'
            f'  check "c" {w} = 2 and did {w} within 1 day yes {{ end }} no {{ end }} }}'
        )
        assert isinstance(j.entry, EnterOn) and j.entry.events.types == (w,), w
    # `clicked` / `opened` are keywords only before a string
    check = journey('journey j { start now check "c" clicked within 1 day yes {} no {} }')
    cond = check.steps[0]
    assert isinstance(cond, CheckStep) and isinstance(cond.cond, A.ProfileCond)


def test_journey_is_a_keyword_only_where_a_definition_starts() -> None:
    assert parse_condition("did journey where journey = 1") is not None
    assert error("journey = 1")[:2] == (
        "syntax_error",
        "expected a name or a string in double quotes, found '='",
    )


def test_the_grammar_reads_every_other_text_as_before_journeys() -> None:
    """Adding the journey rules and keywords changes nothing for texts without
    journeys: the same tree, or the same failure at the same place."""
    grammar = GRAMMAR.read_text()
    old = _lark(_without_journeys(grammar))
    new = _lark(grammar)
    compared = 0
    files = sorted(CORPUS.rglob("*.rules")) + sorted(EXAMPLES.glob("*.rules"))
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if re.search(r"^\s*journey\b", text, flags=re.MULTILINE | re.IGNORECASE):
            continue
        assert _outcome(new, text) == _outcome(old, text), path.name
        compared += 1
    assert compared >= 100
    assert _outcome(old, "journey j { start now end }")[0] == "failed"


JOURNEYS = re.compile(r"// -+ journeys\n.*?(?=// -+ terminals)", flags=re.DOTALL)
_NEW_KEYWORDS = "CLICKED OPENED ACTION AFTER AGAIN CHECK END ENTER JOURNEY LINK NO NOW START"
_NEW_KEYWORDS += " WAIT YES"


def _without_journeys(grammar: str) -> str:
    grammar = JOURNEYS.sub("", grammar).replace(" | plan | journey", " | plan")
    drop = tuple(f"_{k}.2:" for k in _NEW_KEYWORDS.split())
    return "\n".join(line for line in grammar.splitlines() if not line.startswith(drop)) + "\n"


# ------------------------------------------------------------------ structure errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "journey j { end }",
            ("journey_structure", "journey 'j' has no 'start' line", 1, 1),
        ),
        (
            "journey j { start now }",
            ("journey_structure", "journey 'j' has no steps", 1, 1),
        ),
        (
            "journey j { start now\n  start at 2027-01-01 10:00 end }",
            ("journey_structure", "'start' is given twice in this journey", 2, 3),
        ),
        (
            'journey j { start now enter on x enter segment "s" end }',
            ("journey_structure", "'enter' is given twice in this journey", 1, 34),
        ),
        (
            "journey j { start now once per contact again after 1 day end }",
            (
                "journey_structure",
                "'once per contact' or 'again after' is given twice in this journey",
                1,
                40,
            ),
        ),
        (
            'journey j { start now dnd "a" dnd "b" end }',
            ("journey_structure", "'dnd' is given twice in this journey", 1, 31),
        ),
        (
            "journey j { start now end start now }",
            (
                "syntax_error",
                "expected a step ('action', 'wait', 'check' or 'end') or a closing '}', "
                "found 'start'",
                1,
                27,
            ),
        ),
        (
            'journey j { start now check "c" clicked "a" within 1 day yes { end } }',
            ("syntax_error", "expected 'no', found '}'", 1, 70),
        ),
        (
            "journey j { start now wait -1 days }",
            ("syntax_error", "expected a whole number, found '-1'", 1, 28),
        ),
        (
            'journey j { start now action "a" send_email(campaign: "c") send "d" }',
            (
                "syntax_error",
                "expected a step ('action', 'wait', 'check' or 'end') or a closing '}', "
                "found 'send'",
                1,
                60,
            ),
        ),
    ],
)
def test_structure_errors(text: str, expected: tuple[str, str, int, int]) -> None:
    assert error(text) == expected


# ------------------------------------------------------------------ formatting


@PROPERTY
@given(S.journeys())
def test_journey_round_trip(j: Journey) -> None:
    same(parse(format_text(j)), A.Program((j,)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(S.journeys())
def test_journey_format_is_idempotent_on_text(j: Journey) -> None:
    text = format_text(j)
    assert format_text(parse(text)) == text


def test_the_welcome_journey_is_canonical() -> None:
    assert format_text(parse(WELCOME)) == WELCOME


def test_exact_layout() -> None:
    text = (
        'journey "J" { start at 2027-03-01 08:05 timezone "Europe/Rome" dnd "P" '
        'again after 1 month enter on purchased where amount > 1 if city = "Milan" '
        'wait 1 day action "A" add_tag("x") check "C" did viewed_product within 2 hours '
        'yes {} no { check "D" opened "A" within 1 day yes { end } no {} } }'
    )
    assert format_text(parse(text)) == (
        'journey "J" {\n'
        '  start at 2027-03-01 08:05 timezone "Europe/Rome"\n'
        '  enter on purchased where amount > 1 if profile.city = "Milan"\n'
        "  again after 1 month\n"
        '  dnd "P"\n'
        "  wait 1 day\n"
        '  action "A" add_tag("x")\n'
        '  check "C" did viewed_product within 2 hours\n'
        "    yes {}\n"
        "    no {\n"
        '      check "D" opened "A" within 1 day\n'
        "        yes {\n"
        "          end\n"
        "        }\n"
        "        no {}\n"
        "    }\n"
        "}\n"
    )


def test_once_per_contact_is_kept_as_written() -> None:
    assert "once per contact" not in format_text(parse("journey j { start now end }"))
    assert "once per contact" in format_text(parse("journey j { start now once per contact end }"))


def test_long_lines_wrap() -> None:
    cond = " and ".join(f'city = "{"x" * 10}{i}"' for i in range(6))
    j = journey(
        f"journey j {{ start now enter on purchased if {cond} "
        f'check "c" ({cond}) within 1 day yes {{ end }} no {{ end }} '
        f'action "w" webhook(url: "https://example.com/{"p" * 40}", '
        f"body: {{a: profile.email, b: profile.first_name}}) }}"
    )
    text = format_text(j)
    assert all(len(line) <= 100 for line in text.splitlines()), text
    assert "\n    if (" in text or "\n    if profile.city" in text
    same(parse(text), A.Program((j,)))


def test_comments_are_kept_on_steps_headers_and_branch_ends() -> None:
    text = """\
journey "J" {
  start now
  # how they come in
  enter on purchased  # any purchase
  action "A" send "d"  # the first mail
  check "C" clicked "A" within 1 day
    yes {
      # they clicked
      end
      # after the last step of yes
    }
    no {
      wait 1 day  # then stop
    }
  # after the check
}
"""
    out = format_source(text)
    assert out == (
        'journey "J" {\n'
        "  start now\n"
        "  # how they come in\n"
        "  enter on purchased  # any purchase\n"
        '  action "A" send "d"  # the first mail\n'
        '  check "C" clicked "A" within 1 day\n'
        "    yes {\n"
        "      # they clicked\n"
        "      end\n"
        "      # after the last step of yes\n"
        "    }\n"
        "    no {\n"
        "      wait 1 day  # then stop\n"
        "    }\n"
        "  # after the check\n"
        "}\n"
    )
    assert format_source(out) == out


JOURNEY_FILES = sorted((CORPUS / "valid").glob("journey_*.rules"))


@pytest.mark.parametrize("path", JOURNEY_FILES, ids=lambda p: p.stem)
def test_golden_formatted_journeys(path: Path) -> None:
    """The valid corpus's journeys formatted, comments kept (the .ast is test_parse's)."""
    text = path.read_text(encoding="utf-8")
    out = format_source(text, filename=path.name)
    golden.check(path.with_suffix(".out"), out)
    same(parse(out), parse(text))
    assert format_source(out) == out


# ------------------------------------------------------------------ the checker

SCHEMA = Schema.load(CORPUS / "schema.toml")
DEFS = """
delivery "Complete your profile" { template "t" }
delivery "Your promotional code" { template "t" }
dnd "Maison shoes, clothes and accessories" { max 1 per day }
"""


def check_codes(text: str, **known: Any) -> list[str]:
    return [d.code for d in check(parse(DEFS + text), SCHEMA, known=Known(**known))]


def test_the_spec_example_checks_clean() -> None:
    spec = (CORPUS / "valid" / "journey_spec_example.rules").read_text(encoding="utf-8")
    assert check_codes(spec) == []
    # its names may as well be saved in the store
    known = {"deliveries": {"Complete your profile", "Your promotional code"}}
    assert [d.code for d in check(parse(spec), SCHEMA, known=Known(**known))] == ["unknown_policy"]


@pytest.mark.parametrize(
    ("steps", "codes"),
    [
        # an action of an enclosing block, earlier: seen from a nested check
        ('action "W" send "Complete your profile" '
         'check "a" opened "W" within 1 day yes { check "b" clicked "W" within 1 day '
         "yes { end } no { end } } no { end }", []),
        # an action earlier in the same branch
        ('check "a" did purchased within 1 day yes { action "P" send "Your promotional code" '
         'check "b" clicked "P" within 1 day yes { end } no { end } } no { end }', []),
        # an action of the sibling branch
        ('check "a" did purchased within 1 day yes { action "P" send "Your promotional code" } '
         'no { check "b" clicked "P" within 1 day yes { end } no { end } }',
         ["label_not_before"]),
        # an action of the same branch, but after the check
        ('check "a" did purchased within 1 day yes { '
         'check "b" clicked "P" within 1 day yes { end } no { end } '
         'action "P" send "Your promotional code" } no { end }',
         ["label_not_before", "unreachable_step"]),
        ('action "W" set(city: "Milan") check "a" opened "W" within 1 day yes { end } no { end }',
         ["not_a_send"]),
        ('action "W" enter_journey("J") end', ["unknown_action"]),
        ('action "W" set(citty: "Milan")', ["unknown_profile_property"]),
        ('action "W" webhook(url: "ftp://x")', ["invalid_argument"]),
        ('check "a" in segment "Nope" within 1 day yes { end } no { end }', ["unknown_segment"]),
    ],
)  # fmt: skip
def test_paths_and_actions(steps: str, codes: list[str]) -> None:
    assert check_codes(f"journey j {{ start now {steps} }}") == codes


def test_enter_journey_names_journeys_of_the_text_or_the_store() -> None:
    trigger = 'trigger t { on purchased do enter_journey("Welcome") }'
    assert check_codes(trigger) == ["unknown_journey"]
    assert check_codes(trigger, journeys={"Welcome"}) == []
    assert check_codes(trigger + ' journey "Welcome" { start now wait 1 day }') == []


def test_a_comment_in_an_action_or_a_condition_breaks_it_into_lines() -> None:
    text = (
        'journey "j" {\n  start now\n'
        '  action "Hook" webhook(url: "https://example.com/h",  # where\n'
        "    body: {a: 1})\n"
        '  check "c" (did purchased  # bought\n    or did viewed_product) within 1 day\n'
        "    yes { end }\n    no { end }\n}\n"
    )
    assert format_source(text) == (
        'journey "j" {\n'
        "  start now\n"
        '  action "Hook" webhook(\n'
        '    url: "https://example.com/h",  # where\n'
        "    body: {a: 1}\n"
        "  )\n"
        '  check "c" (\n'
        "    did purchased  # bought\n"
        "    or did viewed_product\n"
        "  ) within 1 day\n"
        "    yes {\n"
        "      end\n"
        "    }\n"
        "    no {\n"
        "      end\n"
        "    }\n"
        "}\n"
    )
