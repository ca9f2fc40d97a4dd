"""The language front end: text -> typed AST (with spans) -> checked AST.

    from audience.dsl import load
    program = load(text, schema, filename="shop.rules")   # parse + check, or DslError

Lark is an implementation detail of this package: nothing it returns holds a
Lark type, and every problem is an ``audience.dsl.errors.DslError``.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from audience.dsl.errors import Diagnostic, DslError

if TYPE_CHECKING:
    from audience.dsl.ast import Program, Segment
    from audience.dsl.check import check, check_condition
    from audience.dsl.formatter import format_text
    from audience.dsl.parser import parse, parse_bytes, parse_condition
    from audience.schema import Schema

# Submodules load on first use, so `import audience.dsl.ast` stays cheap and a
# caller that only parses never imports the checker.
_LAZY = {
    "check": "audience.dsl.check",
    "check_condition": "audience.dsl.check",
    "format_text": "audience.dsl.formatter",
    "parse": "audience.dsl.parser",
    "parse_bytes": "audience.dsl.parser",
    "parse_condition": "audience.dsl.parser",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audience.dsl' has no attribute {name!r}")


__all__ = [
    "Diagnostic",
    "DslError",
    "check",
    "check_condition",
    "format_text",
    "load",
    "parse",
    "parse_bytes",
    "parse_condition",
]


def load(
    text: str | bytes,
    schema: Schema | None = None,
    *,
    filename: str = "<input>",
    timezone: str = "UTC",
    known_segments: Mapping[str, Segment] | None = None,
    known_policies: Collection[str] = (),
) -> Program:
    """Parse and check a rules text; raise one DslError with every problem found."""
    from audience.dsl.check import check
    from audience.dsl.parser import parse, parse_bytes

    if isinstance(text, bytes):
        program = parse_bytes(text, filename=filename, timezone=timezone)
        source = text.decode("utf-8")
    else:
        program = parse(text, filename=filename, timezone=timezone)
        source = text
    found = check(program, schema, known_segments=known_segments, known_policies=known_policies)
    if found:
        raise DslError(found, source, filename)
    return program
