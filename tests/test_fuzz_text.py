"""Mutated rules texts: the parser answers with a Program or a DslError, never
anything else; and whatever it accepts, the formatter writes back to the same AST."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.dsl import ast as A
from audience.dsl.errors import DslError
from audience.dsl.format_lexical import KEYWORDS
from audience.dsl.formatter import format_text
from audience.dsl.parser import parse, parse_bytes, parse_condition
from tests import ast_strategies as S
from tests.helpers.language import SPEC_DND, SPEC_SEGMENT, SPEC_TRIGGER, same

ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def _corpus() -> list[str]:
    files = [ROOT / "audience" / "examples" / "maison.rules"]
    files += sorted((ROOT / "tests" / "corpus").rglob("*.rules"))
    texts = [SPEC_SEGMENT, SPEC_TRIGGER, SPEC_DND]
    for f in files:
        try:
            texts.append(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue  # a corpus file of invalid bytes is some other test's input
    return texts


CORPUS = _corpus()

# Pieces worth inserting: every kind of token, and the characters that open or
# close something (strings, backticks, comments, groups).
# fmt: off
TOKENS = [
    *sorted(KEYWORDS),
    "(", ")", "{", "}", ",", ".", ":", '"', "`", "#", "\\", "\n", "\t", " ", "-",
    "=", "!=", "<=", ">", "1", "-3", "1e400", "1" * 500, "19.90", ".5", "2026-11-01",
    "2026-02-30", "2026-11-01T18:30", "2026-11-01T25:61:00Z", "2026-11-01T18:30:00+01:00",
    "22:00", "99:99", '"x"', '"\\u00e9"', '"\\ud800"', '"\\q"', "`x`", "``", "\x00", "\u2028",
    "\ufeff", "é", "😀", "did x", "rule \"r\" (", "segment \"s\" {", "all of (", "profile.",
    "event.", "timezone \"Nowhere/City\"", "timezone \"Europe/Rome\"",
]
# fmt: on

seeds = st.one_of(st.sampled_from(CORPUS), S.programs.map(format_text))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(seeds)
    for _ in range(draw(st.integers(1, 4))):
        text = draw(_mutation(text))
    return text


def _mutation(text: str) -> st.SearchStrategy[str]:
    n = len(text)
    pos = st.integers(0, n)
    span = st.tuples(pos, pos).map(sorted)
    piece = st.one_of(st.sampled_from(TOKENS), st.text(max_size=4))
    words = text.split(" ")
    word_pos = st.integers(0, max(len(words) - 1, 0))

    def word_edit(i: int, j: int, how: int) -> str:
        w = list(words)
        if how == 0:
            del w[i]
        elif how == 1:
            w.insert(i, w[j])
        else:
            w[i], w[j] = w[j], w[i]
        return " ".join(w)

    return st.one_of(
        span.map(lambda s: text[: s[0]] + text[s[1] :]),  # delete
        st.tuples(pos, piece).map(lambda t: text[: t[0]] + t[1] + text[t[0] :]),  # insert
        span.map(lambda s: text[: s[1]] + text[s[0] : s[1]] + text[s[1] :]),  # duplicate
        st.tuples(span, span).map(lambda t: _swap(text, *t[0], *t[1])),  # swap slices
        pos.map(lambda i: text[:i]),  # truncate
        st.tuples(word_pos, word_pos, st.integers(0, 2)).map(lambda t: word_edit(*t)),
    )


def _swap(text: str, a: int, b: int, c: int, d: int) -> str:
    if b > c:  # only disjoint slices swap; otherwise leave the text as it is
        return text
    return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]


def _parses_or_reports(text: str) -> A.Program | None:
    try:
        return parse(text)
    except DslError as err:
        assert err.diagnostics, "a DslError must carry at least one diagnostic"
        err.render()  # rendering the caret lines must not fail either
        return None


@FUZZ
@given(mutated())
def test_mutated_text_parses_or_raises_dsl_error(text: str) -> None:
    program = _parses_or_reports(text)
    if program is not None:
        same(parse(format_text(program)), program)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutated_condition_parses_or_raises_dsl_error(text: str) -> None:
    try:
        cond = parse_condition(text)
    except DslError:
        return
    same(parse_condition(format_text(cond)), cond)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.one_of(st.sampled_from(CORPUS), S.programs.map(format_text)),
    st.binary(max_size=12),
    st.data(),
)
def test_random_bytes_parse_or_raise_dsl_error(
    text: str, noise: bytes, data: st.DataObject
) -> None:
    raw = text.encode("utf-8")
    at = data.draw(st.integers(0, len(raw)))
    for blob in (noise, raw[:at] + noise + raw[at:]):
        with contextlib.suppress(DslError):
            parse_bytes(blob)


PATHOLOGICAL = [
    "",
    "# only a comment",
    "\ufeffdid x",
    "(" * 5000 + "did x" + ")" * 5000,
    "not " * 5000 + "did x",
    "did x where " + "not " * 5000 + "a = 1",
    "did x where " + "(" * 3000 + "a = 1" + ")" * 3000,
    " and ".join(["did x"] * 5000),
    "did x at least " + "9" * 5000 + " times",
    "city = " + "1" * 5000,
    'city = "' + "a" * 100_000 + '"',
    'segment "s" {' * 2000,
    "do x(" + "{a: " * 3000 + "1" + "}" * 3000 + ")",
    "\x00",
    "`" * 7,
]


@pytest.mark.parametrize("text", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_pathological_text_parses_or_raises_dsl_error(text: str) -> None:
    program = _parses_or_reports(text)
    if program is not None:
        same(parse(format_text(program)), program)
