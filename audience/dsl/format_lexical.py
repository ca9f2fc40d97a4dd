"""The lexical half of the formatter: how one token of the language is written.

Strings, names, event types, numbers, dates and times, durations: each has one
canonical spelling here, chosen so that the parser reads back exactly the value
it came from (docs/language/index.md).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from zoneinfo import ZoneInfo

from audience.dsl.ast import (
    BoolLit,
    DateLit,
    DateTimeLit,
    Duration,
    NumberLit,
    StringLit,
)


class FormatError(TypeError):
    """An AST that has no text: an unknown node type or a value the language cannot spell."""


# Every keyword of the grammar, lower case.  A name equal to one of them
# (case-insensitively, since keywords are) is written in backticks; an extra
# entry only costs a pair of backticks, a missing one breaks the round trip.
# fmt: off
KEYWORDS: frozenset[str] = frozenset([
    "and", "or", "not", "all", "any", "of", "did", "where", "in", "the", "last", "first",
    "since", "before", "between", "on", "today", "yesterday", "this", "week", "weeks",
    "month", "months", "day", "days", "hour", "hours", "minute", "minutes", "at", "least",
    "most", "exactly", "once", "time", "times", "never", "then", "within", "more", "less",
    "than", "ago", "is", "set", "contains", "starts", "ends", "with", "matches", "anything",
    "segment", "rule", "trigger", "dnd", "timezone", "sum", "avg", "min", "max",
    "count_distinct", "true", "false", "if", "do", "per", "contact", "delay", "global",
    "for", "quiet", "to",
    "delivery", "plan", "template", "mail", "group", "subject", "from", "sender", "reply",
    "fields", "test", "list", "who", "when", "send", "late", "up", "every", "until",
    "journey",
])
# fmt: on

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    # Control characters (C0, DEL, C1) and the Unicode line/paragraph
    # separators would be invisible or break lines: spell them as \uXXXX.
    if code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029):
        return f"\\u{code:04x}"
    return ch


def quote(text: str) -> str:
    """``text`` as a double-quoted string literal."""
    return '"' + "".join(_escape_char(ch) for ch in text) + '"'


def is_plain_name(part: str) -> bool:
    """True when ``part`` can be written bare: an identifier that is not a keyword."""
    return _NAME_RE.fullmatch(part) is not None and part.lower() not in KEYWORDS


def name(part: str) -> str:
    """A path part: bare, or in backticks when a keyword or not an identifier."""
    if _NAME_RE.fullmatch(part) is not None and part.lower() not in KEYWORDS:
        return part
    if not part or "`" in part or "\n" in part:
        raise FormatError(f"cannot write {part!r} as a name, even in backticks")
    return f"`{part}`"


def bare_name(part: str) -> str:
    """A name where the grammar takes a plain NAME only (action, channel, argument key).

    Keywords are fine there: the contextual lexer reads any word as NAME where
    no keyword is expected."""
    if _NAME_RE.fullmatch(part) is None:
        raise FormatError(f"cannot write {part!r} here: not [A-Za-z_][A-Za-z0-9_]*")
    return part


def arg_key(key: str) -> str:
    """``key:`` of an action argument, where ``true``/``false`` would read as values."""
    if key.lower() in ("true", "false"):
        raise FormatError(f"cannot write {key!r} as an argument name: it reads as a boolean")
    return bare_name(key)


def map_key(key: str) -> str:
    """A key in ``{key: value}``: a NAME, or a string when it is not one."""
    return key if _NAME_RE.fullmatch(key) else quote(key)


def path(parts: tuple[str, ...]) -> str:
    if not parts:
        raise FormatError("cannot write an empty property path")
    return ".".join(name(p) for p in parts)


def event_type(etype: str) -> str:
    """An event type: bare when a plain name, else a string literal."""
    return etype if is_plain_name(etype) else quote(etype)


def number(value: int | float) -> str:
    if isinstance(value, bool):
        raise FormatError(f"a number literal holds {value!r}, a bool")
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise FormatError(f"cannot write the number {value!r}")
    # repr is the shortest text that reads back as the same float; it always
    # has a '.' or an exponent, so the parser keeps it a float.
    return repr(value)


def date(value: dt.date) -> str:
    return value.isoformat()


def _clock(value: dt.datetime) -> str:
    text = f"{value.hour:02d}:{value.minute:02d}"
    if value.second or value.microsecond:
        text += f":{value.second:02d}"
    if value.microsecond:
        frac = f"{value.microsecond:06d}"
        # Milliseconds are the language's resolution: three digits when exact.
        text += "." + (frac[:3] if frac.endswith("000") else frac)
    return text


def datetime(value: dt.datetime) -> str:
    """Naive text when the zone is a ZoneInfo (the definition's zone), else with its offset."""
    if value.tzinfo is None:
        raise FormatError(f"a datetime literal must be timezone-aware: {value!r}")
    text = f"{value.date().isoformat()}T{_clock(value)}"
    if isinstance(value.tzinfo, ZoneInfo):
        return text
    offset = value.utcoffset()
    assert offset is not None
    if not offset:
        return text + "Z"
    seconds = int(offset.total_seconds())
    if seconds % 60:
        raise FormatError(f"cannot write the offset {offset} (not whole minutes)")
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def literal(node: StringLit | NumberLit | BoolLit | DateLit | DateTimeLit) -> str:
    if isinstance(node, StringLit):
        return quote(node.value)
    if isinstance(node, BoolLit):
        return "true" if node.value else "false"
    if isinstance(node, NumberLit):
        return number(node.value)
    if isinstance(node, DateLit):
        return date(node.value)
    if isinstance(node, DateTimeLit):
        return datetime(node.value)
    raise FormatError(f"no formatting rule for {type(node).__name__} as a literal")


def duration(node: Duration) -> str:
    """``1 day``, ``15 days``: the unit is plural unless the number is 1."""
    return f"{node.n} {node.unit}{'' if node.n == 1 else 's'}"
