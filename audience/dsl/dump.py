"""A readable, indented dump of an AST with its spans (the golden snapshots).

    Did @3:5-3:72
      events: EventSel @3:9-3:23
        types: ('viewed_product',)
      where: Compare @3:30-3:56
      ...

One node per line with its span (``@-`` when it has none), then one line per
field.  Dates and times show their zone, so a snapshot also pins how literals
were resolved.  Iterative, so any AST the parser accepts can be dumped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, cast
from zoneinfo import ZoneInfo

from audience.dsl.ast import NOSPAN, Span

_INDENT = "  "


def _is_node(value: object) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type | Span)


def _span(span: Span) -> str:
    if span == NOSPAN:
        return "@-"
    return f"@{span.line}:{span.column}-{span.end_line}:{span.end_column}"


def _scalar(value: object) -> str:
    if isinstance(value, Span):
        return _span(value)
    if isinstance(value, tuple) and value and all(isinstance(v, Span) for v in value):
        return " ".join(_span(v) for v in value)
    if isinstance(value, dt.datetime):
        tz = value.tzinfo
        zone = f"zone {tz.key}" if isinstance(tz, ZoneInfo) else f"offset {tz}"
        return f"{value.isoformat()} ({zone})"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, ZoneInfo):
        return value.key
    return repr(value)


def _header(node: Any) -> str:
    return f"{type(node).__name__} {_span(getattr(node, 'span', NOSPAN))}"


def dump(node: object) -> str:
    """``node`` (any AST node) as indented text, one line per node and field."""
    out: list[str] = []
    # (depth, prefix, value): prefix is "field: ", "- " or "" before the value.
    todo: list[tuple[int, str, object]] = [(0, "", node)]
    while todo:
        depth, prefix, value = todo.pop()
        pad = _INDENT * depth
        if not _is_node(value):
            if _is_seq(value):
                out.append(f"{pad}{prefix.rstrip()}")
                todo.extend(
                    (depth + 1, "- ", item) for item in reversed(cast(tuple[Any, ...], value))
                )
            elif isinstance(value, tuple) and len(value) == 2 and _is_node(value[1]):
                out.append(f"{pad}{prefix}{value[0]!r}:")  # a (key, value) pair of a map
                todo.append((depth + 1, "", value[1]))
            else:
                out.append(f"{pad}{prefix}{_scalar(value)}")
            continue
        out.append(f"{pad}{prefix}{_header(value)}")
        fields = [f for f in dataclasses.fields(value) if f.name != "span"]  # type: ignore[arg-type]
        todo.extend((depth + 1, f"{f.name}: ", getattr(value, f.name)) for f in reversed(fields))
    return "\n".join(out) + "\n"


def _is_seq(value: object) -> bool:
    """A tuple of nodes or of map items, shown one per line (empty ones too)."""
    if not isinstance(value, tuple):
        return False
    if not value:
        return False
    return all(_is_node(v) or (isinstance(v, tuple) and len(v) == 2) for v in value)
