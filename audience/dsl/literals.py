"""Token values of the language: strings with escapes, numbers, dates, times, zones.

Decoded here rather than in the grammar so that each problem gets its own
message and a span inside the token (a bad escape points at the escape).
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

from audience import timecalc
from audience.dsl import ast as A
from audience.dsl.errors import Diagnostic, DslError


def _error(code: str, message: str, span: A.Span, help: str | None = None) -> DslError:
    return DslError([Diagnostic(code, message, span, help)])


MAX_NUMBER_CHARS = 400  # int() refuses very long digit strings; no real value needs more

_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")


def zone(name: str) -> ZoneInfo:
    """The zone called ``name``, or UTC when there is none: reporting an unknown
    zone is the checker's job, literals still need some zone to be read in."""
    try:
        return timecalc.zone(name)
    except timecalc.UnknownZone:
        return timecalc.zone("UTC")


def _escape_span(span: A.Span, start: int, length: int) -> A.Span:
    # Strings never span lines, so offsets inside the token are columns.
    return A.Span(span.line, span.column + start, span.line, span.column + start + length)


def unquote(token: str, span: A.Span) -> str:
    """The value of a ``"..."`` literal (quotes included in ``token``)."""
    body = token[1:-1]
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]  # the terminal guarantees a character after a backslash
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
            continue
        if nxt == "u":
            code, width = _unicode_escape(body, i, span)
            out.append(chr(code))
            i += width
            continue
        raise _error(
            "syntax_error",
            f"unknown escape '\\{nxt}' in a string",
            _escape_span(span, i + 1, 2),
            "the escapes are \\\" \\\\ \\n \\t and \\uXXXX; write '\\\\' for a backslash",
        )
    return "".join(out)


def _hex4(body: str, i: int) -> int | None:
    digits = body[i + 2 : i + 6]
    if body[i : i + 2] != "\\u" or len(digits) != 4 or not set(digits) <= _HEX:
        return None
    return int(digits, 16)


def _unicode_escape(body: str, i: int, span: A.Span) -> tuple[int, int]:
    """(code point, characters consumed) of the ``\\uXXXX`` at ``body[i]``;
    a surrogate pair written as two escapes is one character."""
    code = _hex4(body, i)
    if code is None:
        raise _error(
            "syntax_error",
            "'\\u' must be followed by four hexadecimal digits",
            _escape_span(span, i + 1, min(6, len(body) - i)),
            "write a character as \\u00e9, for example",
        )
    if 0xD800 <= code <= 0xDBFF:
        low = _hex4(body, i + 6)
        if low is not None and 0xDC00 <= low <= 0xDFFF:
            return 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), 12
    if 0xD800 <= code <= 0xDFFF:
        raise _error(
            "syntax_error",
            "'\\u' escape of a lone surrogate",
            _escape_span(span, i + 1, 6),
            "a character above \\uFFFF is written as a surrogate pair, like \\ud83d\\ude00",
        )
    return code, 6


def decode_number(token: str, span: A.Span) -> int | float:
    """An int when written without '.' or exponent, else a float."""
    if len(token) > MAX_NUMBER_CHARS:
        raise _error("syntax_error", "this number is too long", span)
    if "." in token or "e" in token or "E" in token:
        value = float(token)
        if not math.isfinite(value):
            raise _error("syntax_error", "this number is too large", span)
        return value
    return int(token)


def decode_int(token: str, span: A.Span) -> int:
    if len(token) > MAX_NUMBER_CHARS:
        raise _error("syntax_error", "this number is too long", span)
    return int(token)


# Dates far from now have no use in a shop and overflow the arithmetic of
# windows and time zones at the ends of Python's calendar (years 1 and 9999).
MIN_YEAR, MAX_YEAR = 1000, 9000


def _in_range(value: dt.date, token: str, span: A.Span) -> None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise _error(
            "invalid_date",
            f"'{token}' is out of range",
            span,
            f"dates and times go from {MIN_YEAR}-01-01 to {MAX_YEAR}-12-31",
        )


def decode_date(token: str, span: A.Span) -> dt.date:
    try:
        value = dt.date.fromisoformat(token)
    except ValueError:
        raise _error(
            "invalid_date",
            f"'{token}' is not a date of the calendar",
            span,
            "write a date as YYYY-MM-DD, like 2026-11-01",
        ) from None
    _in_range(value, token, span)
    return value


def decode_datetime(token: str, span: A.Span, tz: ZoneInfo) -> dt.datetime:
    """Aware: a written offset (or Z) gives a fixed ``datetime.timezone``,
    no offset means the definition's zone."""
    try:
        value = dt.datetime.fromisoformat(token)
    except ValueError:
        raise _error(
            "invalid_date",
            f"'{token}' is not a valid date and time",
            span,
            "write a time as 2026-11-01T18:30, 2026-11-01T18:30:00Z or 2026-11-01T18:30:00+01:00",
        ) from None
    _in_range(value, token, span)
    if value.tzinfo is None:
        return value.replace(tzinfo=tz)
    offset = value.utcoffset()
    assert offset is not None  # an aware datetime parsed from an offset always has one
    return value.replace(tzinfo=dt.UTC if not offset else dt.timezone(offset))


def decode_clock(token: str, span: A.Span) -> tuple[int, int]:
    hour, minute = (int(part) for part in token.split(":"))
    if hour > 23 or minute > 59:
        raise _error(
            "invalid_time",
            f"'{token}' is not a time of day",
            span,
            "write a time of day as HH:MM, from 00:00 to 23:59",
        )
    return hour, minute
