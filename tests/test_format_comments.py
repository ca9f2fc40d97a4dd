"""The formatter keeps comments: goldens of formatted files, the refusals, and
two properties over random programs (comments at random token boundaries are
kept in order or refused, never lost; comments at the line boundaries of
canonical text are always kept).

UPDATE_GOLDEN=1 rewrites tests/corpus/format_comments/*.out and *.err.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from lark import Lark, Token

import audience
from audience.dsl import ast as A
from audience.dsl.errors import DslError
from audience.dsl.format_comments import format_source, scan_comments
from audience.dsl.formatter import format_text
from audience.dsl.parser import parse
from tests import ast_strategies as S

CORPUS = Path(__file__).parent / "corpus" / "format_comments"
EXAMPLES = Path(audience.__file__).parent / "examples"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _golden(path: Path, actual: str) -> None:
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"no golden {path.name}: run with UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8")


def _texts(comments: list) -> list[str]:
    return [c.text for c in comments]


# ------------------------------------------------------------------ goldens


@pytest.mark.parametrize(
    "path", sorted(p for p in CORPUS.glob("*.rules") if not p.name.startswith("refused"))
)
def test_formatted_files_keep_their_comments(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    out = format_source(text, filename=path.name)
    _golden(path.with_suffix(".out"), out)
    assert _texts(scan_comments(out)) == _texts(scan_comments(text))
    assert parse(out) == parse(text)
    assert format_source(out) == out  # idempotent


@pytest.mark.parametrize("path", sorted(CORPUS.glob("refused*.rules")))
def test_a_comment_inside_an_expression_is_refused_at_its_line(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    with pytest.raises(DslError) as err:
        format_source(text, filename=path.name)
    assert err.value.first.code == "comment_position"
    _golden(path.with_suffix(".err"), err.value.render() + "\n")


def test_the_example_rules_are_canonical_with_their_comments() -> None:
    text = (EXAMPLES / "maison.rules").read_text(encoding="utf-8")
    assert format_source(text) == text


def test_a_hash_in_a_string_or_backticked_name_is_not_a_comment() -> None:
    text = 'did x where `a#b` = "c # d"  # real\n'
    assert _texts(scan_comments(text)) == ["# real"]
    assert format_source(text) == text


def test_a_file_of_comments_only_is_kept() -> None:
    assert format_source("# one\n\n# two\n") == "# one\n\n# two\n"
    assert format_source("") == ""


def test_the_layout_breaks_what_holds_a_comment() -> None:
    text = 'all of (city = "a",  # first\n  city = "b")\n'
    assert format_source(text) == 'all of (\n  city = "a",  # first\n  city = "b"\n)\n'
    # Without the comment the same condition is one line.
    assert (
        format_source('all of (city = "a",\n  city = "b")\n') == 'all of (city = "a", city = "b")\n'
    )


def test_trigger_action_arguments_keep_their_comments() -> None:
    text = (
        'trigger "t" {\n  on purchased\n  do send(\n'
        '    # which template\n    template: "a",\n    channel: "email"  # the channel\n  )\n}\n'
    )
    assert format_source(text) == (
        'trigger "t" {\n  on purchased\n  do send(\n'
        '    # which template\n    template: "a",\n    channel: "email"  # the channel\n  )\n}\n'
    )


# ------------------------------------------------------------------ the command


def _fmt(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "audience", "fmt", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_fmt_write_keeps_comments_and_refuses_without_touching_the_file(tmp_path: Path) -> None:
    kept = tmp_path / "kept.rules"
    kept.write_text('# head\nsegment "s" {did x   # why\n}\n', encoding="utf-8")
    assert _fmt("--write", str(kept)).returncode == 0
    assert kept.read_text() == '# head\nsegment "s" {\n  did x  # why\n}\n'
    assert _fmt("--check", str(kept)).returncode == 0

    bad = tmp_path / "bad.rules"
    original = 'segment "s" {\n  did x # inside\n    in last 3 days\n}\n'
    bad.write_text(original, encoding="utf-8")
    for flags in (("--write",), ("--check",), ()):
        proc = _fmt(*flags, str(bad))
        assert proc.returncode == 1
        assert "bad.rules:2:9" in proc.stderr and "cannot keep this comment" in proc.stderr
        assert proc.stdout == ""
    assert bad.read_text() == original


# ------------------------------------------------------------------ properties


@cache
def _token_lark() -> Lark:
    """The grammar with every token kept: its tokens' ends are the token boundaries."""
    grammar = Path(audience.__file__).parent / "grammar" / "audience.lark"
    return Lark(
        grammar.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        keep_all_tokens=True,
        start="program",
    )


def _boundaries(text: str) -> list[int]:
    tree = _token_lark().parse(text)
    ends = {t.end_pos for t in tree.scan_values(lambda v: isinstance(v, Token))}
    return sorted(e for e in ends if e is not None)


def _insert(text: str, places: list[tuple[int, bool]]) -> tuple[str, list[str]]:
    """``text`` with a comment at each (offset, own line); their texts in order."""
    out, last, names = [], 0, []
    for i, (at, own_line) in enumerate(sorted(places)):
        name = f'# c{i} #x "y"'
        out += [text[last:at], f"\n{name}\n" if own_line else f"  {name}\n"]
        names.append(name)
        last = at
    out.append(text[last:])
    return "".join(out), names


def _same(a: object, b: object) -> None:
    assert a == b
    assert repr(a) == repr(b)


@PROPERTY
@given(S.programs, st.data())
def test_comments_at_token_boundaries_are_kept_or_refused(program: A.Program, data) -> None:
    text = format_text(program)
    bounds = _boundaries(text)
    assume(bounds)
    places = data.draw(
        st.lists(
            st.tuples(st.sampled_from(bounds), st.booleans()),
            min_size=1,
            max_size=4,
            unique_by=lambda p: p[0],
        )
    )
    commented, names = _insert(text, places)
    try:
        reparsed = parse(commented)
    except DslError:
        reparsed = None  # a comment that splits a look-ahead keyword (`on`, `at most once per`)
    assume(reparsed == program)
    try:
        out = format_source(commented)
    except DslError as err:
        assert [d.code for d in err.diagnostics] == ["comment_position"]
        event("refused")
        return
    event("kept")
    _same(parse(out), program)
    assert _texts(scan_comments(out)) == names
    assert format_source(out) == out


@PROPERTY
@given(S.programs, st.data())
def test_comments_at_line_boundaries_of_canonical_text_are_always_kept(
    program: A.Program, data
) -> None:
    lines = format_text(program).split("\n")[:-1]
    spots = [i for i, line in enumerate(lines) if line.strip()]
    assume(spots)
    chosen = data.draw(st.lists(st.sampled_from(spots), max_size=4, unique=True))
    names = []
    for n, i in enumerate(sorted(chosen, reverse=True)):
        name = f"# c{len(chosen) - 1 - n}"
        if data.draw(st.booleans(), label="own line"):
            indent = len(lines[i]) - len(lines[i].lstrip())
            lines[i] = " " * indent + name + "\n" + lines[i]
        else:
            lines[i] += "  " + name
        names.append(name)
    commented = "\n".join(lines) + "\n"
    out = format_source(commented)
    _same(parse(out), program)
    assert _texts(scan_comments(out)) == sorted(names)
    assert format_source(out) == out
