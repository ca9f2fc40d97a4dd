"""Lark's parse errors, said in a marketer's words.

``from_lark`` turns one ``UnexpectedInput`` into one ``Diagnostic``: what was
expected (summarised from the terminal names of the grammar into phrases such
as "a window such as 'in last 15 days'"), what was found, where, and a hint
for the common mistakes (``==``, ``in 15 days``, an unknown unit, a string
left open, a missing ``)`` or ``}``, a keyword used as a property name).
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterable

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import LexerThread
from lark.parsers.lalr_interactive_parser import InteractiveParser

from audience.dsl.ast import Span
from audience.dsl.errors import Diagnostic

_COND = "a condition such as 'did purchased'"
_WINDOW = "a window such as 'in last 15 days'"
_UNIT = "a unit (minutes, hours, days, weeks or months)"
_UNIT_TERMINALS = frozenset({"MINUTE", "HOUR", "DAY", "WEEK", "MONTH"})

# (phrase, terminals it stands for, terminals that must all be expected for it
# to apply).  Checked in order; a terminal covered by an earlier phrase is not
# described again.  The order is also the order of the phrases in the message.
_GROUPS: list[tuple[str, frozenset[str], frozenset[str]]] = [
    (
        "a definition ('segment', 'trigger', 'dnd', 'delivery', 'plan' or 'journey')",
        frozenset({"_SEGMENT", "_TRIGGER", "_DND", "_DELIVERY", "_PLAN", "_JOURNEY"}),
        frozenset({"_SEGMENT"}),
    ),
    (
        "a delivery line ('template', 'subject', 'from', 'fields', 'test list', ...)",
        frozenset(
            ["_TEMPLATE", "_MAIL", "_SUBJECT", "_FROM", "_SENDER", "_REPLY", "_FIELDS", "_TEST"]
        ),
        frozenset({"_TEMPLATE"}),
    ),
    (
        "a plan line ('who', 'when', 'send', 'dnd' or 'late up to')",
        frozenset({"_WHO", "_WHEN", "_SEND", "_DND", "_LATE"}),
        frozenset({"_WHO"}),
    ),
    (
        "a journey line ('start', 'enter', 'once per contact', 'again after' or 'dnd')",
        frozenset({"_START", "_ENTER", "_ONCE", "_AGAIN", "_DND"}),
        frozenset({"_START", "_ENTER"}),
    ),
    (
        "a step ('action', 'wait', 'check' or 'end')",
        frozenset({"_ACTION", "_WAIT", "_CHECK", "_END"}),
        frozenset({"_ACTION", "_CHECK"}),
    ),
    (
        "a schedule such as 'once at 2027-03-11 10:00' or 'every day at 09:00'",
        frozenset({"_ONCE", "_EVERY"}),
        frozenset({"_ONCE", "_EVERY"}),
    ),
    (
        "'day', 'week', 'month' or a number (every 2 days)",
        frozenset({"DAY", "WEEK", "MONTH", "INT"}),
        frozenset({"DAY", "WEEK", "MONTH", "INT"}),
    ),
    (
        _COND,
        frozenset(
            [
                "_DID",
                "_NOT",
                "LPAR",
                "_ALL",
                "_ANY",
                "_RULE",
                "AGG",
                "_LAST",
                "_FIRST",
                "_IN",
                "NAME",
                "BACKTICK_NAME",
            ]
        ),
        frozenset({"_DID"}),
    ),
    (
        "an event type such as 'purchased'",
        frozenset({"NAME", "STRING", "BACKTICK_NAME", "LPAR", "_ANYTHING", "_NOT"}),
        frozenset({"_ANYTHING"}),
    ),
    (
        "a comparison such as 'price > 50'",
        frozenset({"NAME", "BACKTICK_NAME", "_NOT", "LPAR", "_ALL", "_ANY"}),
        frozenset({"NAME", "_ALL", "LPAR"}),
    ),
    (
        "an operator such as '=', 'in' or 'contains'",
        frozenset(
            [
                "CMP_OP",
                "_IN",
                "_NOT",
                "_BETWEEN",
                "_CONTAINS",
                "_STARTS",
                "_ENDS",
                "_MATCHES",
                "_IS",
                "_BEFORE",
                "_SINCE",
                "_MORE",
                "_LESS",
            ]
        ),
        frozenset({"CMP_OP", "_CONTAINS"}),
    ),
    (
        "a trigger line ('on', 'if', 'do', 'delay', 'dnd' or 'once per contact')",
        frozenset(["_ON_EVENT", "_IF", "_DO", "_ONCE", "_AT_MOST_ONCE_PER", "_DELAY", "_DND"]),
        frozenset({"_DO"}),
    ),
    (
        "a policy line ('max 1 per day', 'for email', 'global' or 'quiet hours')",
        frozenset({"_MAX", "_FOR", "_GLOBAL", "_QUIET"}),
        frozenset({"_MAX"}),
    ),
    ("'and'", frozenset({"_AND"}), frozenset({"_AND"})),
    ("'or'", frozenset({"_OR"}), frozenset({"_OR"})),
    (
        'a value such as 42 or "text"',
        frozenset({"STRING", "NUMBER", "TRUE", "FALSE", "DATE", "DATETIME"}),
        frozenset({"STRING", "NUMBER"}),
    ),
    (
        'a list such as ("a", "b")',
        frozenset({"LPAR"}),
        frozenset({"LPAR", "_LAST", "_THE"}),
    ),
    (
        "a count such as 'at least 2 times'",
        frozenset({"_AT", "_EXACTLY", "_NEVER", "_BETWEEN"}),
        frozenset({"_EXACTLY"}),
    ),
    (
        _WINDOW,
        frozenset(
            [
                "_IN",
                "_SINCE",
                "_BEFORE",
                "_BETWEEN",
                "_ON",
                "_TODAY",
                "_YESTERDAY",
                "_THIS",
                "_LAST",
                "_THE",
            ]
        ),
        frozenset({"_LAST"}),
    ),
    (
        "a time such as 'more than 30 days ago'",
        frozenset({"_MORE", "_LESS", "_IN", "_BEFORE", "_SINCE", "_BETWEEN"}),
        frozenset({"_MORE", "_LESS"}),
    ),
    ("'week' or 'month'", frozenset({"WEEK", "MONTH"}), frozenset({"WEEK", "MONTH", "_THIS"})),
    (_UNIT, _UNIT_TERMINALS, frozenset({"DAY", "MINUTE"})),
    ("'days' or 'weeks'", frozenset({"DAY", "WEEK"}), frozenset({"DAY", "WEEK"})),
    ("'week' or 'month'", frozenset({"WEEK", "MONTH"}), frozenset({"WEEK", "MONTH"})),
    (
        "a date or time such as 2026-11-01 or 2026-11-01T18:30",
        frozenset({"DATE", "DATETIME"}),
        frozenset({"DATE", "DATETIME"}),
    ),
    (
        "a name or a string in double quotes",
        frozenset({"NAME", "STRING", "BACKTICK_NAME"}),
        frozenset({"NAME", "STRING"}),
    ),
]

_SINGLE: dict[str, str] = {
    "RPAR": "a closing ')'",
    "RBRACE": "a closing '}'",
    "LPAR": "an opening '('",
    "LBRACE": "an opening '{'",
    "COMMA": "','",
    "COLON": "':'",
    "DOT": "'.'",
    "CMP_OP": "a comparison such as '>' or '='",
    "STRING": "a string in double quotes",
    "NUMBER": "a number",
    "INT": "a whole number",
    "SIGNED_INT": "a whole number",
    "DATE": "a date such as 2026-11-01",
    "NAME": "a name",
    "BACKTICK_NAME": "a name",
    "CLOCK": "a time of day such as 22:00",
    "AGG": "'sum', 'avg', 'min', 'max' or 'count_distinct'",
    "_TIMES": "'times'",
    "_AT_MOST_ONCE_PER": "'at most once per'",
    "_ON_EVENT": "'on'",
    "$END": "the end of the text",
}
# Shown only when little else is expected: after a complete `did x` they would
# crowd out the likelier 'and', a count or a window.
_MINOR = frozenset({"_WHERE", "_THEN", "_TIMEZONE"})
_IGNORED = frozenset({"WS", "COMMENT"})
_MAX_PHRASES = 5

_KEYWORD_WORDS = """
    ago all and any anything at before between contact contains delay did dnd do ends exactly
    first for global if in is last least less matches max most more never not of on once or per
    quiet rule segment set since starts than the then this times timezone to today trigger where
    with within yesterday sum avg min count_distinct true false
    delivery every fields from group late list mail plan reply send sender subject template test
    until up when who journey
"""
_KEYWORDS = frozenset(_KEYWORD_WORDS.split())
_JOURNEY_HEADER_WORDS = frozenset(["start", "enter", "once", "again", "dnd"])
_WEEKDAY_WORDS = frozenset(
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
)
_WORD = re.compile(r"[A-Za-z0-9_]+")
_UNIT_WORD = re.compile(r"(?:minute|hour|day|week|month)s?", re.IGNORECASE)


def _phrase(terminal: str) -> str:
    if terminal in _SINGLE:
        return _SINGLE[terminal]
    if terminal.startswith("_"):
        return f"'{terminal[1:].lower()}'"
    return terminal.lower()


def describe(expected: Iterable[str]) -> str:
    """The expected terminals as one phrase: "a condition such as ..., or ..."."""
    todo = set(expected) - _IGNORED
    phrases: list[str] = []
    for phrase, members, needs in _GROUPS:
        if needs <= todo:
            phrases.append(phrase)
            todo -= members
    rest = sorted(todo - _MINOR, key=lambda t: (t in ("RPAR", "RBRACE", "$END"), t))
    if len(phrases) + len(rest) < 3:
        rest += sorted(todo & _MINOR)
    for terminal in rest:
        if _phrase(terminal) not in phrases:
            phrases.append(_phrase(terminal))
    if len(phrases) > _MAX_PHRASES:
        phrases = [*phrases[: _MAX_PHRASES - 1], "..."]
    if not phrases:
        return "something else"
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " or " + phrases[-1]


# ------------------------------------------------------------------ the offending text


def _line_text(lines: list[str], line: int) -> str:
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _show(text: str) -> str:
    """How a found token is quoted in a message: printable, and not too long."""
    if len(text) == 1 and not text.isprintable():
        return f"the character U+{ord(text):04X}"
    shown = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)
    if len(shown) > 30:
        shown = shown[:27] + "..."
    return f"'{shown}'"


def _end_span(tok: Token, lines: list[str]) -> Span:
    """Just after the last token (Lark's end marker borrows the last token's place)."""
    if tok.end_line is None or tok.end_column is None or not tok.start_pos:
        line = max(len(lines), 1) if any(s.strip() for s in lines) else 1
        col = len(_line_text(lines, line).rstrip()) + 1
        return Span(line, col, line, col + 1)
    return Span(tok.end_line, tok.end_column, tok.end_line, tok.end_column + 1)


def _char_span(exc: UnexpectedCharacters, text: str) -> tuple[Span, str]:
    """The offending text where no terminal matched: a word, a string, or one character."""
    pos = exc.pos_in_stream or 0
    word = _WORD.match(text, pos)
    if text[pos] == '"':
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
    elif word:
        end = word.end()
    else:
        end = pos + 1
    found = text[pos:end]
    return Span(exc.line, exc.column, exc.line, exc.column + (end - pos)), found


def _previous_word(text: str, pos: int) -> str:
    before = text[:pos].rstrip()
    match = re.search(r"[A-Za-z0-9_]+$", before)
    return match.group(0).lower() if match else before[-1:]


# ------------------------------------------------------------------ what was expected


def _accepts(interactive: InteractiveParser | None, fallback: set[str]) -> set[str]:
    """The terminals the parser could really take next.

    LALR merges states that look alike, so the raw expected set of a state
    mixes contexts (after `did x` in a segment it lists trigger lines too).
    ``accepts()`` feeds each candidate to a copy of the parser, reductions
    and all, and keeps only the real ones; without a parser, the raw set."""
    if interactive is None:
        return fallback
    # accepts() copies the parser once per candidate; without the text to lex
    # (a lexer thread with no state), each copy is a third cheaper.
    bare = InteractiveParser(
        interactive.parser,
        interactive.parser_state,
        LexerThread(interactive.lexer_thread.lexer, None),
    )
    return bare.accepts() or fallback


# ------------------------------------------------------------------ the diagnostic


def _parser_before(parser: Lark, start: str, text: str, pos: int | None) -> InteractiveParser:
    """The parser just before the token at ``pos`` (None: the end) was fed.

    A parse error is found after the reductions that the bad token's lookahead
    allowed in a merged LALR state, so the failing state can be too far up
    (``segment s { did x on y }`` would only expect '}').  Parsing the text
    again up to that token gives the state where the user's text went wrong."""
    interactive = parser.parse_interactive(text, start=start)
    # iter_parse yields each token before feeding it: stopping at the bad one
    # leaves the parser where it was about to take it (or, at the end, after
    # the last token).
    for tok in interactive.iter_parse():
        if pos is not None and tok.start_pos is not None and tok.start_pos >= pos:
            break
    return interactive


def from_lark(
    exc: UnexpectedInput, text: str, parser: Lark | None = None, start: str = "program"
) -> Diagnostic:
    """``exc`` in words.  With the ``parser`` (and ``start``) that raised it, the
    expected set is recomputed where the bad token arrived (see _parser_before)."""
    lines = text.splitlines()
    if isinstance(exc, UnexpectedCharacters):
        # the lexer fails before the parser reduces anything: its state is exact
        expected = _accepts(getattr(exc, "interactive_parser", None), set(exc.allowed or ()))
        span, found = _char_span(exc, text)
        pos = exc.pos_in_stream or 0
    elif isinstance(exc, UnexpectedToken):
        tok = exc.token
        interactive = getattr(exc, "interactive_parser", None)
        # Only a token the parser was fed can have run reductions.  One the
        # contextual lexer refused (a terminal of the grammar, not of this
        # state; Lark gives those a token history) never reached the parser:
        # its state is exact, and a re-parse would stop at the same token.
        if parser is not None and exc.token_history is None:
            at = None if tok.type == "$END" else tok.start_pos
            # re-parsing the same text cannot fail earlier; if it did, keep the failing parser
            with contextlib.suppress(UnexpectedInput):
                interactive = _parser_before(parser, start, text, at)
        expected = _accepts(interactive, set(exc.expected))
        if tok.type == "$END":
            return _ends_early(expected, _end_span(tok, lines))
        span = Span(tok.line or 1, tok.column or 1, tok.end_line or 1, tok.end_column or 2)
        found = str(tok.value)
        pos = tok.start_pos or 0
    else:  # UnexpectedEOF: not raised by the LALR parser, handled all the same
        return _ends_early(set(getattr(exc, "expected", ())), _end_span(Token("$END", ""), lines))
    return _unexpected(expected, found, span, text, pos)


def _ends_early(expected: set[str], span: Span) -> Diagnostic:
    help = None
    if "RBRACE" in expected:
        help = "a definition ends with '}'"
    elif "RPAR" in expected:
        help = "every '(' needs a matching ')'"
    elif "MINUTE" in expected:  # a duration (after `every` only days and weeks count)
        help = "a duration is a whole number and a unit, like '15 days'"
    elif expected == {"_TIMES"}:
        help = "a count ends with 'times', like 'at least 3 times'"
    message = f"the text ends too early; expected {describe(expected)}"
    return Diagnostic("syntax_error", message, span, help)


def _unexpected(expected: set[str], found: str, span: Span, text: str, pos: int) -> Diagnostic:
    what = describe(expected)
    prev = _previous_word(text, pos)
    if (found.startswith('"') and not found.endswith('"')) or found == '"':
        return Diagnostic(
            "syntax_error",
            "this string is not closed",
            span,
            "end it with '\"' on the same line (write \\n for a line break inside it)",
        )
    if found == "=" and prev == "=":
        wide = Span(span.line, span.column - 1, span.end_line, span.end_column)
        return Diagnostic("syntax_error", "'==' is not an operator", wide, "use '=' to compare")
    if found in ("&", "|"):
        word = "and" if found == "&" else "or"
        return Diagnostic(
            "syntax_error", f"expected {what}, found '{found}'", span, f"write '{word}'"
        )
    help = _hint(expected, found, prev, text, pos)
    return Diagnostic("syntax_error", f"expected {what}, found {_show(found)}", span, help)


def _hint(expected: set[str], found: str, prev: str, text: str, pos: int) -> str | None:
    schedule = _schedule_hint(expected, found, prev)
    if schedule is not None:
        return schedule
    number = found.lstrip("-").replace(".", "", 1).isdigit()
    if number and "_LAST" in expected and prev in ("in", "the", "last"):
        after = re.compile(r"[ \t]+([A-Za-z]+)").match(text, pos + len(found))
        word = after.group(1) if after and _UNIT_WORD.fullmatch(after.group(1)) else "days"
        return f"write 'in last {found} {word}'"
    if number and expected >= {"WEEK", "MONTH"} and prev == "last":
        return f"write 'in last {found} days'"
    if expected & _UNIT_TERMINALS:
        return "a duration is a whole number and a unit, like '15 days'"
    if prev in _KEYWORDS and (found in ("=", "!=", "<", "<=", ">", ">=") or found == "."):
        return f"'{prev}' is a keyword; write a property called {prev} in backticks: `{prev}`"
    if found.lower() == "on" and "_ON" in expected:
        return "'on' starts a window here and takes a date, like 'on 2026-11-01'"
    if found in (")", "}") and "RPAR" in expected:
        return "every '(' needs a matching ')'"
    if found == ")" and "RBRACE" in expected:
        return "this ')' has no matching '('"
    if found == "}" and "_DID" in expected:
        return "a segment holds one condition, like 'did purchased'"
    if found == "}" and "_SEGMENT" in expected:
        return "this '}' has no matching '{'"
    if expected == {"COLON", "DOT"}:
        return f'a text value is written in double quotes, like "{prev}"'
    if expected == {"_TIMES"}:
        return f"write '{prev} times'"
    if number and {"_MORE", "_LESS"} <= expected:
        return f"write 'more than {found} days ago' or 'less than {found} days ago'"
    if "_WITHIN" in expected:
        before = text[:pos].lower()
        if before.rfind("check") > before.rfind("then"):  # a journey's check, not `then`
            return "say how long the check waits, like 'within 3 days'"
        return "say how soon the second event follows, like 'then purchased within 2 days'"
    if "_ACTION" in expected and found.lower() in _JOURNEY_HEADER_WORDS:
        return "a journey's lines (start, enter, once per contact, again after, dnd) come first"
    bare_word = found[:1].isalpha() and _WORD.fullmatch(found) is not None
    if "STRING" in expected and bare_word and found.lower() not in _KEYWORDS:
        return f'a text value is written in double quotes, like "{found}"'
    keywords = [t[1:].lower() for t in expected if t.startswith("_") and t[1:].isalpha()]
    close = difflib.get_close_matches(found.lower(), keywords, n=1, cutoff=0.75)
    if close and _WORD.fullmatch(found):
        return f"did you mean '{close[0]}'?"
    if "_AND" in expected and _WORD.fullmatch(found):
        return "join two conditions with 'and' or 'or'"
    return None


def _schedule_hint(expected: set[str], found: str, prev: str) -> str | None:
    """Hints for a plan's ``who`` and ``when`` lines."""
    if prev == "who" and expected >= {"STRING", "LPAR"}:
        return 'write who "Segment name", or a condition in parentheses: who (did purchased)'
    if expected >= {"_ONCE", "_EVERY"}:
        return "write 'when once at 2027-03-11 10:00' or 'when every day at 09:00'"
    if expected == {"DAY", "WEEK"}:
        return "write 'every 2 days at 09:00' or 'every 2 weeks on monday at 09:00'"
    if prev == "every" and found.lower() in _WEEKDAY_WORDS:
        return f"write 'every week on {found.lower()} at 09:00'"
    if expected == {"DATE"} and prev == "at" and "T" in found.upper():
        return "write the date and the time of day apart: 'once at 2027-03-11 10:00'"
    if "CLOCK" in expected:
        return "write a time of day as HH:MM, like 09:00"
    return None
