"""Text -> typed AST: the public entry points of the language front end.

    program = parse(text, filename="shop.rules")        # definitions, or one bare condition
    cond = parse_condition("did purchased in last 30 days")
    program = parse_bytes(data, filename="shop.rules")  # UTF-8 checked here

Every problem is a ``DslError`` carrying the source and file name; Lark is an
implementation detail and none of its types or exceptions escape.  The parser
(grammar tables and lexers) is built once per process and holds no per-call
state, so concurrent calls are safe.
"""

from __future__ import annotations

import codecs
import functools
from typing import Any

from lark import Lark
from lark.exceptions import LarkError, UnexpectedInput

from audience.dsl import ast as A
from audience.dsl.builder import build
from audience.dsl.errors import Diagnostic, DslError
from audience.dsl.literals import zone

MAX_SOURCE_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 200  # nested conditions/predicates (builder.NESTING); later passes recurse


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    # cache=True: the LALR tables (a second to build) are kept in the temp
    # directory, keyed by a hash of the grammar, options and Lark version, so
    # a new process's first parse is fast.
    return Lark.open(
        "../grammar/audience.lark",
        rel_to=__file__,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        start=["program", "bare_condition"],
        cache=True,
    )


def parse(text: str, *, filename: str = "<input>", timezone: str = "UTC") -> A.Program:
    """A rules file: zero or more definitions, or one bare condition."""
    program = _parse(text, "program", filename, timezone)
    assert isinstance(program, A.Program)
    return program


def parse_condition(text: str, *, filename: str = "<input>", timezone: str = "UTC") -> A.Cond:
    """A bare condition (no ``segment`` wrapper)."""
    cond: A.Cond = _parse(text, "bare_condition", filename, timezone)
    return cond


def parse_bytes(data: bytes, *, filename: str = "<input>", timezone: str = "UTC") -> A.Program:
    """``parse`` of UTF-8 bytes; a leading byte-order mark is ignored."""
    if len(data) > MAX_SOURCE_BYTES:
        raise _too_large(len(data), filename)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid_utf8(data, exc, filename) from None
    return parse(text, filename=filename, timezone=timezone)


def _parse(text: str, start: str, filename: str, timezone: str) -> Any:
    # A character is at most 4 bytes: only encode when the length is in doubt.
    if len(text) > MAX_SOURCE_BYTES or (
        len(text) * 4 > MAX_SOURCE_BYTES
        and len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES
    ):
        raise _too_large(len(text.encode("utf-8", "surrogatepass")), filename)
    try:
        tree = _lark().parse(text, start=start)
    except UnexpectedInput as exc:
        from audience.dsl.syntax_errors import from_lark  # (only a text that fails needs it)

        raise DslError([from_lark(exc, text, _lark(), start)], text, filename) from None
    except LarkError as exc:  # not expected from a fixed LALR grammar; still never leak it
        raise DslError([Diagnostic("syntax_error", str(exc))], text, filename) from None
    try:
        return build(tree, zone(timezone), MAX_DEPTH)
    except DslError as exc:
        raise exc.with_source(text, filename) from None


def _too_large(size: int, filename: str) -> DslError:
    limit = MAX_SOURCE_BYTES // (1024 * 1024)
    return DslError(
        [
            Diagnostic(
                "too_large",
                f"the text is too large ({size:,} bytes; the limit is {limit} MiB)",
                help="split the definitions into several files",
            )
        ],
        "",
        filename,
    )


def _invalid_utf8(data: bytes, exc: UnicodeDecodeError, filename: str) -> DslError:
    before = data[: exc.start].decode("utf-8")
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    bad = data[exc.start : exc.end]
    return DslError(
        [
            Diagnostic(
                "invalid_utf8",
                f"the text is not valid UTF-8 (byte {bad[0]:#04x})",
                A.Span(line, column, line, column + 1),
                "save the file as UTF-8",
            )
        ],
        data.decode("utf-8", errors="replace"),
        filename,
    )
