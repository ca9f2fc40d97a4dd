"""SPEC 3.3: a ``bool`` profile property written alone is a condition
(``newsletter`` means ``newsletter = true``, false for a contact without it)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import audience
from audience.dsl import ast as A
from audience.dsl.check import check
from audience.dsl.errors import DslError
from audience.dsl.formatter import format_text
from audience.dsl.parser import parse, parse_condition
from audience.schema import Schema

SCHEMA = Schema.load(Path(audience.__file__).parent / "examples" / "maison.toml")
NOW = "2026-11-01T12:00:00Z"
NEWSLETTER = A.ProfileCond(A.Flag(A.Field("profile", ("newsletter",))))


# ------------------------------------------------------------------ the tree and its text


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("newsletter", NEWSLETTER),
        ("profile.newsletter", NEWSLETTER),
        ("not newsletter", A.Not(NEWSLETTER)),
        ('rule "r" (newsletter)', A.Rule("r", NEWSLETTER)),
        (
            "newsletter and did purchased",
            A.And((NEWSLETTER, A.Did(A.EventSel(("purchased",)), None, None, None)), "and"),
        ),
        ("all of (newsletter, newsletter)", A.And((NEWSLETTER, NEWSLETTER), "all_of")),
    ],
)
def test_a_name_alone_parses_to_a_flag(text: str, tree: A.Cond) -> None:
    assert parse_condition(text) == tree


def test_a_flag_is_not_the_comparison_it_means() -> None:
    # Equal in meaning, apart in the tree: each is written back as it was.
    written = parse_condition("newsletter = true")
    assert parse_condition("newsletter") != written
    assert isinstance(NEWSLETTER.pred, A.Compare)  # every pass sees `= true`
    assert (NEWSLETTER.pred.op, NEWSLETTER.pred.value) == ("=", A.BoolLit(True))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("newsletter", "newsletter"),
        ("NOT newsletter", "not newsletter"),
        ("profile.newsletter", "newsletter"),
        ("newsletter = true", "newsletter = true"),
        ("not (newsletter = true)", "not (newsletter = true)"),
        ('rule "r" (newsletter)', 'rule "r" (newsletter)'),
        ("any of (newsletter, `last`)", "any of (newsletter, `last`)"),
    ],
)
def test_the_formatter_writes_it_back_alone(text: str, canonical: str) -> None:
    assert format_text(parse_condition(text)) == canonical
    assert parse_condition(canonical) == parse_condition(text)


def test_in_a_trigger_condition() -> None:
    text = 'trigger "t" {\n  on purchased\n  if profile.newsletter\n  do add_tag("x")\n}\n'
    program = parse(text)
    trigger = program.definitions[0]
    assert isinstance(trigger, A.Trigger) and trigger.condition == NEWSLETTER
    assert format_text(program) == text


# ------------------------------------------------------------------ the check


def _errors(text: str) -> list[tuple[str, str, str | None]]:
    return [(d.code, d.message, d.help) for d in check(parse(text), SCHEMA)]


def test_a_bool_property_alone_checks() -> None:
    assert _errors("newsletter and not profile.newsletter") == []


def test_a_property_of_another_type_alone_is_an_error_with_a_comparison_to_write() -> None:
    assert _errors("city") == [
        (
            "not_a_condition",
            "'city' is a string property; a condition needs a comparison such as city = \"...\"",
            "only a bool property is a condition alone; 'city is set' tests that it has a value",
        )
    ]
    assert [m for _, m, _ in _errors("loyalty_points or tags")] == [
        "'loyalty_points' is an int property; a condition needs a comparison such as "
        "loyalty_points > 0",
        "'tags' is a list<string> property; a condition needs a comparison such as "
        'tags contains "..."',
    ]


def test_an_unknown_name_alone_gets_a_suggestion() -> None:
    [(code, message, help_)] = _errors("newsleter")
    assert code == "unknown_profile_property"
    assert "'newsleter'" in message and help_ == "did you mean 'newsletter'?"
    [(code, _, help_)] = _errors("purchased")
    assert code == "unknown_profile_property"
    assert help_ == "to test the contact's events, write 'did purchased'"


def test_the_error_points_at_the_name() -> None:
    store = audience.Node.from_arrow(None, None, SCHEMA)
    with pytest.raises(DslError) as err:
        store.compile("did purchased and city\n")
    d = err.value.first
    assert (d.code, d.span.line, d.span.column, d.span.end_column) == ("not_a_condition", 1, 19, 23)


# ------------------------------------------------------------------ the meaning


def test_true_only_for_contacts_whose_property_is_true() -> None:
    profiles = pa.table(
        {
            "contact_id": ["yes", "no", "unset"],
            "newsletter": pa.array([True, False, None], pa.bool_()),
        }
    )
    events = pa.table(
        {
            "contact_id": ["events_only"],
            "type": ["purchased"],
            "ts": pa.array([1_790_000_000_000]).cast(pa.timestamp("ms", tz="UTC")),
        }
    )
    store = audience.Node.from_arrow(events, profiles, SCHEMA)

    def ids(text: str) -> list[str]:
        return sorted(store.compile(text).evaluate(as_of=NOW).ids())

    assert ids("newsletter") == ids("newsletter = true") == ["yes"]
    assert ids("profile.newsletter") == ["yes"]
    assert ids("not newsletter") == ["events_only", "no", "unset"]
    assert ids('rule "subscribed" (newsletter) or did purchased') == ["events_only", "yes"]
