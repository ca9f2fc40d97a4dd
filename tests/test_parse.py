"""The parser: golden ASTs of the valid corpus, normalisations, spans, limits.

pytest --update-goldens rewrites tests/corpus/valid/*.ast from the current parser.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.dsl import ast as A
from audience.dsl.dump import dump
from audience.dsl.errors import DslError
from audience.dsl.parser import (
    MAX_DEPTH,
    MAX_SOURCE_BYTES,
    parse,
    parse_bytes,
    parse_condition,
)
from tests.helpers import golden

CORPUS = Path(__file__).parent / "corpus" / "valid"
EXAMPLES = Path(__file__).parent.parent / "audience" / "examples"


def _rules() -> list[Path]:
    return sorted(CORPUS.glob("*.rules"))


@pytest.mark.parametrize("path", _rules(), ids=lambda p: p.stem)
def test_golden_ast(path: Path) -> None:
    text = dump(parse(path.read_text(encoding="utf-8"), filename=path.name))
    golden.check(path.with_suffix(".ast"), text)
    assert "Token(" not in text and "Tree(" not in text  # no Lark type leaks into the AST


def test_corpus_is_complete() -> None:
    snapshots = {p.stem for p in CORPUS.glob("*.ast")}
    assert snapshots == {p.stem for p in _rules()}, "every snapshot needs its .rules and back"
    assert len(snapshots) >= 30


def test_corpus_keeps_the_shipped_example_verbatim() -> None:
    assert (CORPUS / "maison.rules").read_text() == (EXAMPLES / "maison.rules").read_text()


def cond(text: str, **kw: str) -> A.Cond:
    return parse_condition(text, **kw)


# ------------------------------------------------------------------ normalisations


def test_did_not_is_not_did_spanning_the_whole_text() -> None:
    node = cond("did not purchased in last 3 days")
    assert isinstance(node, A.Not) and isinstance(node.operand, A.Did)
    assert node.span == node.operand.span == A.Span(1, 1, 1, 33)
    assert node == cond("not did purchased in last 3 days")


def test_did_not_then_is_not_sequence() -> None:
    node = cond("did not a then b within 1 day")
    assert isinstance(node, A.Not) and isinstance(node.operand, A.Sequence)
    assert node.operand.then_not is False


def test_counts_are_normalised() -> None:
    def count(text: str) -> A.Count | None:
        did = cond(f"did x {text}")
        assert isinstance(did, A.Did)
        return did.count

    assert count("") is None
    assert count("never") == A.Count("exactly", 0)
    assert count("at least once") == A.Count("at_least", 1)
    assert count("at most once") == A.Count("at_most", 1)
    assert count("exactly once") == A.Count("exactly", 1)
    assert count("at least 1 time") == A.Count("at_least", 1)
    assert count("between 2 and 5 times") == A.Count("between", 2, 5)
    assert count("at most -2 times") == A.Count("at_most", -2)


def test_count_and_window_in_either_order() -> None:
    assert cond("did x at least 2 times in last 3 days") == cond(
        "did x in last 3 days at least 2 times"
    )


def test_flat_and_nested_boolean() -> None:
    flat = cond("did a and did b and did c")
    assert isinstance(flat, A.And) and len(flat.operands) == 3
    nested = cond("did a and (did b and did c)")
    assert isinstance(nested, A.And) and len(nested.operands) == 2
    assert isinstance(nested.operands[1], A.And)
    assert flat != nested


def test_precedence_or_and_not() -> None:
    node = cond("did a or did b and not did c")
    assert isinstance(node, A.Or)
    right = node.operands[1]
    assert isinstance(right, A.And) and isinstance(right.operands[1], A.Not)


def test_all_of_any_of_keep_their_style() -> None:
    assert cond("all of (did a, did b)") == A.And((cond("did a"), cond("did b")), style="all_of")
    assert cond("any of (did a)") == A.Or((cond("did a"),), style="any_of")


def test_one_comparison_after_where_unless_parenthesised() -> None:
    two = cond("did x where a = 1 and b = 2")
    assert isinstance(two, A.And) and isinstance(two.operands[1], A.ProfileCond)
    one = cond("did x where (a = 1 and b = 2)")
    assert isinstance(one, A.Did) and isinstance(one.where, A.PredAnd)


def test_scopes_of_names() -> None:
    did = cond("did x where a = 1")
    assert isinstance(did, A.Did) and isinstance(did.where, A.Compare)
    assert did.where.field == A.Field("event", ("a",))
    did = cond("did x where profile.city.name = 1")
    assert isinstance(did, A.Did) and isinstance(did.where, A.Compare)
    assert did.where.field == A.Field("profile", ("city", "name"))
    assert cond("city = 1") == cond("profile.city = 1")
    prof = cond("event.x = 1")
    assert isinstance(prof, A.ProfileCond) and prof.pred.field == A.Field("event", ("x",))
    # a lone `profile` is a property; a backticked head is never a scope
    prof = cond("profile = 1")
    assert isinstance(prof, A.ProfileCond) and prof.pred.field == A.Field("profile", ("profile",))
    did = cond("did x where `event`.y = 1")
    assert isinstance(did, A.Did) and isinstance(did.where, A.Compare)
    assert did.where.field == A.Field("event", ("event", "y"))


def test_aggregate_fields_are_event_properties() -> None:
    agg = cond("sum(amount) of purchased in last 90 days > 200")
    assert agg == A.Aggregate(
        "sum",
        A.Field("event", ("amount",)),
        A.EventSel(("purchased",)),
        None,
        A.Window("last", duration=A.Duration(90, "day")),
        ">",
        A.NumberLit(200),
    )


# ------------------------------------------------------------------ lexical rules


def test_keywords_are_case_insensitive() -> None:
    lower = "did x at least 2 times in the last 3 days and not last y more than 1 day ago"
    assert cond(lower.upper().replace("X", "x").replace("Y", "y")) == cond(lower)
    assert cond("DID x AND Did y Or dId z") == cond("did x and did y or did z")


def test_names_that_begin_like_keywords_are_names() -> None:
    for name in ("android", "order_id", "first_name", "lastname", "notes", "not_x", "isbn"):
        node = cond(f"{name} = 1")
        assert isinstance(node, A.ProfileCond), name
        assert node.pred.field.path == (name,)


@pytest.mark.parametrize(
    "text", ['city = "x" order = 2', "did x andy", "did x where a = 1 andy = 2", "did x orx did y"]
)
def test_a_keyword_is_never_the_start_of_a_longer_word(text: str) -> None:
    # an `"or"i` literal would read `order` as `or der` and accept the first text
    with pytest.raises(DslError):
        cond(text)


def test_keywords_are_names_where_no_keyword_fits() -> None:
    did = cond("did x where first = 1")
    assert isinstance(did, A.Did) and isinstance(did.where, A.Compare)
    assert did.where.field.path == ("first",)
    trig = parse("trigger t { on x do set(last: 1) }").definitions[0]
    assert isinstance(trig, A.Trigger)
    assert trig.actions[0].name == "set" and trig.actions[0].args[0].key == "last"


def test_backticks() -> None:
    node = cond("`last`.`some name` = 1")
    assert isinstance(node, A.ProfileCond)
    assert node.pred.field.path == ("last", "some name")
    assert cond("did `anything`") == A.Did(A.EventSel(("anything",)))
    assert cond('did "viewed product"') == A.Did(A.EventSel(("viewed product",)))


def test_string_escapes() -> None:
    node = cond(r'x = "a\"b\\c\nd\te\u00e9\ud83d\ude00"')
    assert isinstance(node, A.ProfileCond) and isinstance(node.pred, A.Compare)
    assert node.pred.value == A.StringLit('a"b\\c\nd\te\u00e9\U0001f600')


@pytest.mark.parametrize("bad", [r'"\q"', r'"\u12"', r'"\uZZZZ"', r'"\udc00"'])
def test_bad_escapes_are_errors(bad: str) -> None:
    with pytest.raises(DslError) as info:
        cond(f"x = {bad}")
    assert info.value.first.code == "syntax_error"
    assert info.value.first.span.line == 1 and info.value.first.span.column >= 6


def test_numbers() -> None:
    def value(text: str) -> object:
        node = cond(f"x = {text}")
        assert isinstance(node, A.ProfileCond) and isinstance(node.pred, A.Compare)
        assert isinstance(node.pred.value, A.NumberLit)
        return node.pred.value.value

    assert value("42") == 42 and isinstance(value("42"), int)
    assert value("-3") == -3
    assert value("19.90") == 19.9 and isinstance(value("19.90"), float)
    assert value("1e6") == 1e6 and isinstance(value("1e6"), float)
    with pytest.raises(DslError):
        value("1e999")
    with pytest.raises(DslError):
        value("9" * 5000)


def test_comments() -> None:
    assert cond("did x # a comment\n and # another\n did y") == cond("did x and did y")
    assert parse("# nothing\n# at all\n") == A.Program()
    assert cond('x = "# not a comment"') == A.ProfileCond(
        A.Compare(A.Field("profile", ("x",)), "=", A.StringLit("# not a comment"))
    )


def test_durations_any_plural() -> None:
    assert cond("did x in last 1 days") == cond("did x in last 1 day")
    assert cond("did x in last 3 hour") == cond("did x in last 3 hours")


# ------------------------------------------------------------------ time zones


def _window_start(node: A.Cond) -> A.TimeLit:
    assert isinstance(node, A.Did) and node.window and node.window.start
    return node.window.start


def test_time_literals_default_to_utc_or_the_argument() -> None:
    start = _window_start(cond("did x since 2026-11-01T18:30"))
    assert start == A.DateTimeLit(dt.datetime(2026, 11, 1, 18, 30, tzinfo=ZoneInfo("UTC")))
    start = _window_start(cond("did x since 2026-11-01T18:30", timezone="Europe/Rome"))
    assert isinstance(start, A.DateTimeLit)
    assert start.value.tzinfo == ZoneInfo("Europe/Rome") and not start.has_offset
    day = _window_start(cond("did x on 2026-11-01", timezone="Asia/Tokyo"))
    assert day == A.DateLit(dt.date(2026, 11, 1), ZoneInfo("Asia/Tokyo"))


def test_offsets_are_fixed_zones() -> None:
    start = _window_start(cond("did x since 2026-11-01T18:30:00Z", timezone="Europe/Rome"))
    assert isinstance(start, A.DateTimeLit) and start.value.tzinfo is dt.UTC
    start = _window_start(cond("did x since 2026-11-01T18:30:00+01:00"))
    assert isinstance(start, A.DateTimeLit) and start.has_offset
    assert start.value.utcoffset() == dt.timedelta(hours=1)


def test_definition_timezone_overrides_the_argument() -> None:
    program = parse(
        'segment s timezone "Europe/Rome" { did x on 2026-11-01 }\n'
        "segment t { did x on 2026-11-01 }",
        timezone="America/New_York",
    )
    rome, other = program.definitions
    assert isinstance(rome, A.Segment) and isinstance(other, A.Segment)
    assert rome.timezone == "Europe/Rome" and other.timezone is None
    assert _window_start(rome.cond) == A.DateLit(dt.date(2026, 11, 1), ZoneInfo("Europe/Rome"))
    assert _window_start(other.cond) == A.DateLit(
        dt.date(2026, 11, 1), ZoneInfo("America/New_York")
    )


def test_unknown_zone_reads_in_utc_and_keeps_the_name() -> None:
    seg = parse('segment s timezone "Mars/Base" { did x on 2026-11-01 }').definitions[0]
    assert isinstance(seg, A.Segment) and seg.timezone == "Mars/Base"
    assert _window_start(seg.cond) == A.DateLit(dt.date(2026, 11, 1), ZoneInfo("UTC"))
    assert _window_start(cond("did x on 2026-11-01", timezone="../etc")) == A.DateLit(
        dt.date(2026, 11, 1), ZoneInfo("UTC")
    )


# ------------------------------------------------------------------ spans


def test_spans_of_nodes() -> None:
    text = 'segment "s" {\n  did viewed_product where price > 50 at least 2 times\n}'
    seg = parse(text).definitions[0]
    assert isinstance(seg, A.Segment) and seg.span == A.Span(1, 1, 3, 2)
    did = seg.cond
    assert isinstance(did, A.Did)
    assert did.span == A.Span(2, 3, 2, 55)
    assert did.events.span == A.Span(2, 7, 2, 21)
    assert did.where is not None and did.where.span == A.Span(2, 28, 2, 38)
    assert isinstance(did.where, A.Compare)
    assert did.where.field.span == A.Span(2, 28, 2, 33)
    assert did.where.value.span == A.Span(2, 36, 2, 38)
    assert did.count is not None and did.count.span == A.Span(2, 39, 2, 55)


def test_span_across_lines() -> None:
    node = cond("did a\n  and did b")
    assert node.span == A.Span(1, 1, 2, 12)


# ------------------------------------------------------------------ triggers and dnd


def test_trigger_parts() -> None:
    trig = parse(
        "trigger t {\n"
        "  do a(1), b(k: {x: profile.y})\n"
        "  if did x\n"
        "  at most once per day per contact\n"
        "  on y where z = 1\n"
        "  do c()\n"
        "  delay 2 hours\n"
        "}"
    ).definitions[0]
    assert isinstance(trig, A.Trigger)
    assert [a.name for a in trig.actions] == ["a", "b", "c"]
    assert trig.condition == A.Did(A.EventSel(("x",)))
    assert trig.options == (A.AtMostOncePer(A.Duration(1, "day")), A.Delay(A.Duration(2, "hour")))
    assert trig.actions[1].args == (A.Arg("k", A.MapValue((("x", A.Ref("profile", ("y",))),))),)


def test_dnd_items() -> None:
    policy = parse(
        'dnd d { max 2 per 3 days for email quiet hours 22:00 to 8:00 timezone "Europe/Rome" }'
    ).definitions[0]
    assert isinstance(policy, A.DndPolicy)
    assert policy.caps == (A.Cap(2, A.Duration(3, "day")),)
    assert policy.channels == ("email",)
    assert policy.quiet_hours == A.QuietHours(A.ClockTime(22, 0), A.ClockTime(8, 0), "Europe/Rome")


# ------------------------------------------------------------------ entry points and limits


def test_parse_condition_takes_only_a_condition() -> None:
    with pytest.raises(DslError):
        parse_condition("segment s { did x }")
    with pytest.raises(DslError):
        parse_condition("")
    program = parse("did x")
    assert program.condition == cond("did x") and program.definitions == ()


def test_errors_carry_source_and_filename() -> None:
    with pytest.raises(DslError) as info:
        parse("did x in 15 days", filename="f.rules")
    assert info.value.source == "did x in 15 days" and info.value.filename == "f.rules"


def test_deep_parentheses_parse() -> None:
    assert cond("(" * 10_000 + "did x" + ")" * 10_000) == cond("did x")
    assert cond("did x where " + "(" * 10_000 + "a = 1" + ")" * 10_000) == cond("did x where a = 1")


@pytest.mark.parametrize(
    "text",
    [
        "not " * 10_000 + "did x",
        "did x where " + "not " * 10_000 + "a = 1",
        "all of (" * 10_000 + "did x" + ")" * 10_000,
        "did x and (" * 10_000 + "did y" + ")" * 10_000,
        "trigger t { on x do a(k: " + "{k: " * 10_000 + "1" + "}" * 10_000 + ") }",
    ],
    ids=["not", "pred_not", "all_of", "and", "map"],
)
def test_too_deep_is_a_clean_error(text: str) -> None:
    with pytest.raises(DslError) as info:
        parse(text)
    first = info.value.first
    assert first.code == "too_deep"
    assert first.span.line == 1 and first.span.column > 1


def test_depth_limit_is_exact() -> None:
    assert isinstance(cond("not " * (MAX_DEPTH - 1) + "did x"), A.Not)
    with pytest.raises(DslError):
        cond("not " * MAX_DEPTH + "did x")


def test_too_large_is_fast() -> None:
    big = "#" * (50 * 1024 * 1024)
    start = time.perf_counter()
    with pytest.raises(DslError) as info:
        parse(big)
    with pytest.raises(DslError) as binfo:
        parse_bytes(big.encode())
    assert time.perf_counter() - start < 1.0
    assert info.value.first.code == binfo.value.first.code == "too_large"
    # exactly at the limit is still read (as a comment)
    assert parse("#" * MAX_SOURCE_BYTES) == A.Program()
    with pytest.raises(DslError):
        parse("é" * (MAX_SOURCE_BYTES // 2 + 1))  # few characters, too many bytes


def test_invalid_utf8_points_at_the_byte() -> None:
    with pytest.raises(DslError) as info:
        parse_bytes(b"did x\nand did \xc3(y", filename="bad.rules")
    first = info.value.first
    assert first.code == "invalid_utf8"
    assert (first.span.line, first.span.column) == (2, 9)
    assert "bad.rules:2:9" in info.value.render()


def test_parse_bytes_skips_a_bom() -> None:
    assert parse_bytes("\ufeffdid x".encode()) == parse("did x")
    with pytest.raises(DslError) as info:
        parse_bytes("\ufeffdid x\n and \xff".encode()[:-2] + b"\xff")
    assert (info.value.first.span.line, info.value.first.span.column) == (2, 6)


def test_nul_and_binary_garbage_are_clean_errors() -> None:
    with pytest.raises(DslError) as info:
        parse_bytes(b"did x\x00")
    assert info.value.first.code == "syntax_error"
    rng = random.Random(7)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        with pytest.raises(DslError):
            parse_bytes(data)


_SOUP = (
    "did not where and or ( ) , { } segment trigger dnd then within at least most times once "
    "never in the last 15 days since before between 2026-01-01 2026-01-01T10:00Z = != > "
    'contains is set x y.z `q` "s" "open 3 -2 1.5 # all of any rule sum avg of first '
    "more than ago on if do delay per contact max for global quiet hours 22:00 to ` \\ \x00"
)
_WORDS = _SOUP.split(" ")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=30), st.sampled_from([" ", "\n", ""]))
def test_token_soup_never_escapes_as_another_exception(words: list[str], sep: str) -> None:
    text = sep.join(words)
    try:
        parse(text)
    except DslError as exc:
        assert exc.diagnostics and exc.render()


def test_parse_speed_of_a_500_line_file() -> None:
    block = (EXAMPLES / "maison.rules").read_text()
    text = "\n".join([block] * (500 // block.count("\n") + 1))
    assert text.count("\n") >= 500
    parse(text)  # warm
    start = time.perf_counter()
    parse(text)
    elapsed = time.perf_counter() - start
    # the target is well under 50 ms; a loose bound keeps slow CI machines green
    assert elapsed < 0.5, elapsed
