"""The canonical formatter: any AST node back to text that parses to the same AST.

``format_text(node)`` is total over the node types of ``audience.dsl.ast`` and
raises ``FormatError`` (a ``TypeError``) for anything else.  The layout is the
the documentation's own (the examples of docs/language/ print back unchanged):

- A definition is ``KIND "name" [timezone "Zone"] {`` its body indented by two
  spaces ``}``; definitions are separated by one blank line; a program ends with
  a newline.  A bare condition is written like a segment body at column 0.
- A *body* (segment, ``rule`` block, parenthesised block) holding a top-level
  ``and``/``or`` puts each operand on its own line, continuation operands
  starting with ``and ``/``or ``, when an operand holds a ``rule`` or the one-line
  form is wider than ``WIDTH``; otherwise the body is one line.
- ``rule "label" (C)`` stays on one line when C is a single profile comparison
  or segment reference and the line fits; otherwise it is a block:
  ``rule "label" (``, C indented by two spaces, ``)``.
- Any other parenthesised group (a nested ``and``/``or``, ``all of``/``any of``,
  an ``if`` condition) is one line when it fits and holds no ``rule``, else a
  block of the same shape (``all of (`` one operand a line, comma-separated).
- Parentheses appear exactly where the tree needs them, plus around an ``and``
  inside an ``or`` and a comparison under ``not`` (``not (city = "Milan")``),
  both for the reader; a ``where`` predicate is one comparison or a
  parenthesised / ``all of`` / ``any of`` / ``not`` form.  A bool property
  written alone stays alone (``vip``, ``not vip``).
- In a trigger's ``if`` condition, profile properties are written ``profile.x``
  (beside ``on`` and ``event.x`` that is the clearer form, as the language docs show);
  elsewhere a profile property is bare (``city``) unless its path starts with
  ``profile`` or ``event``.
- Counts come before windows; defaults are omitted (no count: at least once;
  no window: all time; ``max 1 per day`` for a cap of one unit).
- Action arguments are filled greedily up to ``WIDTH``, continuation lines
  aligned after the opening parenthesis.
- ``comments_at`` (the positions of the source's comments) breaks every
  ``and``/``or`` list, ``rule``, group and action whose span holds one into one
  item a line, so that each comment has a line to stay on; placing the comments
  is ``format_comments.format_source``'s work (the AST holds none).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from audience.dsl import format_lexical as lex
from audience.dsl.ast import (
    NOSPAN,
    Action,
    Aggregate,
    AgoCompare,
    And,
    Arg,
    AtMostOncePer,
    Between,
    BoolLit,
    Cap,
    Channel,
    ClockTime,
    Compare,
    Cond,
    Count,
    DateLit,
    DateTimeLit,
    Definition,
    Delay,
    Did,
    DndPolicy,
    Duration,
    EventSel,
    Field,
    Flag,
    Global,
    InList,
    InSegment,
    IsSet,
    LastFirst,
    MapValue,
    Not,
    NumberLit,
    OncePerContact,
    Or,
    PredAnd,
    PredNot,
    PredOr,
    ProfileCond,
    Program,
    QuietHours,
    Recency,
    Ref,
    Rule,
    Segment,
    Sequence,
    StringLit,
    TextMatch,
    TimeCompare,
    Trigger,
    UseDnd,
    Window,
)
from audience.dsl.format_lexical import FormatError

__all__ = ["KEYWORDS", "WIDTH", "FormatError", "format_text"]

KEYWORDS = lex.KEYWORDS
WIDTH = 100  # the line width the layout aims for (the repository's own)
INDENT = "  "

_SCOPE_PREFIXES = ("profile", "event")
_TEXT_OPS = {
    "contains": "contains",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "matches": "matches",
}

# The (line, column) of each comment of the source being formatted, sorted.
_COMMENTS: ContextVar[tuple[tuple[int, int], ...]] = ContextVar("comments", default=())
# The (line, column) where nodes start that, in parentheses, are laid out as a block.
_OPEN_GROUPS: ContextVar[frozenset[tuple[int, int]]] = ContextVar("groups", default=frozenset())


# --------------------------------------------------------------------------- public


def format_text(
    node: object,
    *,
    comments_at: Iterable[tuple[int, int]] = (),
    open_groups: Iterable[tuple[int, int]] = (),
) -> str:
    """The canonical text of ``node`` (a Program ends with a newline, nothing else does).

    ``comments_at``: (line, column) positions, in the text ``node`` was parsed
    from, of comments that the caller will put back: the constructs holding
    them are laid out one item a line; ``open_groups``: (line, column) where
    nodes start that, written in parentheses, are a block (a comment sits
    between the parenthesis and the node)."""
    token = _COMMENTS.set(tuple(sorted(comments_at)))
    groups = _OPEN_GROUPS.set(frozenset(open_groups))
    try:
        return _format(node)
    finally:
        _OPEN_GROUPS.reset(groups)
        _COMMENTS.reset(token)


def _format(node: object) -> str:
    if isinstance(node, Program):
        return _program(node)
    if isinstance(node, Segment | Trigger | DndPolicy):
        return "\n".join(_definition(node)) + "\n"
    if isinstance(node, _COND_TYPES):
        return "\n".join(_body(node, 0))
    rule = _INLINE_RULES.get(type(node))
    if rule is not None:
        return rule(node)
    # deliveries, plans and journeys last: their classes are imported on first
    # use (audience.dsl.ast), and formatting a condition needs none of them
    from audience.dsl.ast_journeys import Journey
    from audience.dsl.ast_sending import DeliveryDef, Plan, Schedule

    if isinstance(node, DeliveryDef | Plan | Journey):
        return "\n".join(_definition(node)) + "\n"
    if isinstance(node, Schedule):
        from audience.dsl.format_sending import schedule_text

        return schedule_text(node)
    raise FormatError(f"no formatting rule for {type(node).__name__}")


# --------------------------------------------------------------------------- definitions


def _program(node: Program) -> str:
    if node.condition is not None:
        if node.definitions:
            raise FormatError("a program holds definitions or one bare condition, not both")
        return "\n".join(_body(node.condition, 0)) + "\n"
    if not node.definitions:
        return ""
    return "\n\n".join("\n".join(_definition(d)) for d in node.definitions) + "\n"


def _header(kind: str, name: str, timezone: str | None) -> str:
    zone = f" timezone {lex.quote(timezone)}" if timezone is not None else ""
    return f"{kind} {lex.quote(name)}{zone} {{"


def _definition(node: Definition) -> list[str]:
    if isinstance(node, Segment):
        body = _body(node.cond, 1)
        return [_header("segment", node.name, node.timezone), *_indent(body, 1), "}"]
    if isinstance(node, Trigger):
        return [_header("trigger", node.name, node.timezone), *_trigger_body(node), "}"]
    if isinstance(node, DndPolicy):
        items = [INDENT + _dnd_item(i) for i in node.items]
        return [_header("dnd", node.name, node.timezone), *items, "}"]
    from audience.dsl.ast_journeys import Journey
    from audience.dsl.ast_sending import DeliveryDef, Plan

    if isinstance(node, DeliveryDef | Plan):
        from audience.dsl.format_sending import definition_lines  # it builds on this module

        return definition_lines(node)
    if isinstance(node, Journey):
        from audience.dsl.format_journeys import journey_lines  # it builds on this module

        return journey_lines(node)
    raise FormatError(f"no formatting rule for {type(node).__name__} as a definition")


def _trigger_body(node: Trigger) -> list[str]:
    lines = [INDENT + "on " + _events(node.events) + _where(node.where)]
    if node.condition is not None:
        cond = _expr(node.condition, 1, len(INDENT + "if "), "")
        lines += _prefixed(INDENT + "if ", _indent(cond, 1))
    for action in node.actions:
        lines.append(INDENT + _action(action, len(INDENT)))
    lines += [INDENT + _option(o) for o in node.options]
    return lines


def _action(node: Action, col: int) -> str:
    """``do name(args)``, the arguments wrapped greedily at WIDTH under the ``(``;
    when the action holds a comment, a block: one argument a line, ``)`` alone."""
    head = f"do {lex.bare_name(node.name)}("
    args = [_arg(a) for a in node.args]
    align = " " * (col + len(head))  # continuation lines carry their own indentation
    if args and _holds_comment(node):
        inner = " " * (col + len(INDENT))
        pieces = [inner + a + "," for a in args[:-1]] + [inner + args[-1]]
        return "\n".join([head, *pieces, " " * col + ")"])
    lines = [head]
    for i, text in enumerate(args):
        piece = text + ("," if i < len(args) - 1 else ")")
        current = lines[-1]
        if i == 0:
            lines[-1] = current + piece
        elif (col if len(lines) == 1 else 0) + len(current) + 1 + len(piece) <= WIDTH:
            lines[-1] = current + " " + piece
        else:
            lines.append(align + piece)
    if not args:
        lines[-1] += ")"
    return "\n".join(lines)


def _arg(node: Arg) -> str:
    value = _value(node.value)
    return value if node.key is None else f"{lex.arg_key(node.key)}: {value}"


def _value(node: object) -> str:
    if isinstance(node, Ref):
        return f"{node.scope}.{lex.path(node.path)}"
    if isinstance(node, MapValue):
        items = ", ".join(f"{lex.map_key(k)}: {_value(v)}" for k, v in node.items)
        return "{" + items + "}"
    if isinstance(node, StringLit | NumberLit | BoolLit | DateLit | DateTimeLit):
        return lex.literal(node)
    raise FormatError(f"no formatting rule for {type(node).__name__} as an action value")


def _option(node: object) -> str:
    if isinstance(node, OncePerContact):
        return "once per contact"
    if isinstance(node, AtMostOncePer):
        return f"at most once per {_per(node.duration)} per contact"
    if isinstance(node, Delay):
        return f"delay {lex.duration(node.duration)}"
    if isinstance(node, UseDnd):
        return f"dnd {lex.quote(node.policy)}"
    raise FormatError(f"no formatting rule for {type(node).__name__} as a trigger option")


def _dnd_item(node: object) -> str:
    if isinstance(node, Cap):
        return f"max {node.max} per {_per(node.per)}"
    if isinstance(node, Channel):
        return f"for {lex.bare_name(node.name)}"
    if isinstance(node, Global):
        return "global"
    if isinstance(node, QuietHours):
        zone = f" timezone {lex.quote(node.timezone)}" if node.timezone is not None else ""
        return f"quiet hours {_clock(node.start)} to {_clock(node.end)}{zone}"
    raise FormatError(f"no formatting rule for {type(node).__name__} as a dnd item")


def _per(node: Duration) -> str:
    """``day`` for one unit (``max 1 per day``), else ``2 days``."""
    return node.unit if node.n == 1 else lex.duration(node)


def _clock(node: ClockTime) -> str:
    return f"{node.hour:02d}:{node.minute:02d}"


# --------------------------------------------------------------------------- layout of conditions
#
# A layout is a list of lines; the first is written where the node starts and
# the others are relative to the indentation of that first line.  ``level``
# is that indentation in steps of INDENT, ``col`` the column the node starts at,
# ``bare`` the scope written without its prefix in profile predicates
# ("profile"; "" in a trigger's ``if``, where every property is qualified).


def _indent(lines: list[str], level: int) -> list[str]:
    return [INDENT * level + line if line else line for line in lines]


def _prefixed(prefix: str, lines: list[str]) -> list[str]:
    """``lines`` (already indented) with ``prefix`` replacing the first line's indent."""
    return [prefix + lines[0].lstrip(" "), *lines[1:]]


def _fits(col: int, text: str) -> bool:
    return col + len(text) <= WIDTH


def _holds_comment(node: object) -> bool:
    """Whether a comment of the source lies inside ``node``'s span."""
    marks = _COMMENTS.get()
    span = getattr(node, "span", NOSPAN)
    if not marks or span == NOSPAN:
        return False
    i = bisect.bisect_right(marks, (span.line, span.column))
    return i < len(marks) and marks[i] < (span.end_line, span.end_column)


def _broken(node: Cond) -> bool:
    """Whether ``node`` must be laid out over several lines whatever its width."""
    return _has_rule(node) or _holds_comment(node)


def _has_rule(node: Cond) -> bool:
    if isinstance(node, Rule):
        return True
    if isinstance(node, And | Or):
        return any(_has_rule(o) for o in node.operands)
    if isinstance(node, Not):
        return _has_rule(node.operand)
    return False


def _is_infix(node: Cond) -> bool:
    return (isinstance(node, And) and node.style == "and") or (
        isinstance(node, Or) and node.style == "or"
    )


def _needs_parens(parent: Cond, child: Cond) -> bool:
    """Whether ``child``, an operand of ``parent``, must be (or is, for the reader) in parens."""
    if isinstance(parent, Not):
        flag = isinstance(child, ProfileCond) and isinstance(child.pred, Flag)
        return _is_infix(child) or (isinstance(child, ProfileCond) and not flag)
    if isinstance(parent, And) and parent.style == "and":
        return _is_infix(child)
    if isinstance(parent, Or) and parent.style == "or":
        return _is_infix(child)
    return False  # all of / any of operands are comma-separated: no grouping needed


def _body(node: Cond, level: int, bare: str = "profile") -> list[str]:
    """A condition that fills a body: a top-level and/or one operand a line when needed."""
    col = len(INDENT) * level
    if _is_infix(node):
        assert isinstance(node, And | Or)
        if _broken(node) or not _fits(col, _inline(node, bare)):
            lines: list[str] = []
            for i, op in enumerate(node.operands):
                prefix = "" if i == 0 else ("and " if isinstance(node, And) else "or ")
                part = _operand(node, op, level, col + len(prefix), bare)
                lines += [prefix + part[0], *part[1:]]
            return lines
    return _expr(node, level, col, bare)


def _operand(parent: Cond, child: Cond, level: int, col: int, bare: str) -> list[str]:
    if _needs_parens(parent, child):
        return _group(child, level, col, bare)
    return _expr(child, level, col, bare)


def _group(node: Cond, level: int, col: int, bare: str, force: bool = False) -> list[str]:
    """``(node)`` on one line when it fits and holds no rule, else a parenthesised block
    (also when ``force``d: a comment between the parenthesis and ``node``)."""
    text = "(" + _inline(node, bare) + ")"
    span = getattr(node, "span", NOSPAN)
    force = force or (span != NOSPAN and (span.line, span.column) in _OPEN_GROUPS.get())
    if not force and not _broken(node) and _fits(col, text):
        return [text]
    return ["(", *_indent(_body(node, level + 1, bare), 1), ")"]


def _expr(node: Cond, level: int, col: int, bare: str) -> list[str]:
    """A condition in any position, on one line unless it holds a rule or is too wide."""
    text = _inline(node, bare)
    if not _broken(node) and _fits(col, text):
        return [text]
    if isinstance(node, Rule):
        label = f"rule {lex.quote(node.label)} ("
        one_line = isinstance(node.cond, ProfileCond | InSegment) and not _holds_comment(node)
        if one_line and _fits(col, text):
            return [text]
        return [label, *_indent(_body(node.cond, level + 1, bare), 1), ")"]
    if _is_infix(node):
        return _group(node, level, col, bare)
    if isinstance(node, And | Or):
        head = "all of (" if isinstance(node, And) else "any of ("
        items: list[str] = []
        for i, op in enumerate(node.operands):
            part = _expr(op, level + 1, len(INDENT) * (level + 1), bare)
            if i < len(node.operands) - 1:
                part[-1] += ","
            items += _indent(part, 1)
        return [head, *items, ")"]
    if isinstance(node, Not):
        if _needs_parens(node, node.operand):
            part = _group(node.operand, level, col + 4, bare, _holds_comment(node))
        else:
            part = _expr(node.operand, level, col + 4, bare)
        return ["not " + part[0], *part[1:]]
    return [text]  # a leaf wider than WIDTH stays on its line


# --------------------------------------------------------------------------- one-line conditions


def _inline(node: Cond, bare: str) -> str:
    if isinstance(node, And | Or):
        if _is_infix(node):
            sep = " and " if isinstance(node, And) else " or "
            return sep.join(_inline_operand(node, op, bare) for op in node.operands)
        head = "all of" if isinstance(node, And) else "any of"
        return f"{head} (" + ", ".join(_inline(op, bare) for op in node.operands) + ")"
    if isinstance(node, Not):
        return "not " + _inline_operand(node, node.operand, bare)
    if isinstance(node, Rule):
        return f"rule {lex.quote(node.label)} ({_inline(node.cond, bare)})"
    if isinstance(node, Did):
        return _did(node)
    if isinstance(node, Aggregate):
        head = f"{node.func}({_field(node.field, 'event')}) of {_events(node.events)}"
        tail = f" {node.op} {lex.literal(node.value)}"
        return head + _where(node.where) + _window_suffix(node.window) + tail
    if isinstance(node, LastFirst):
        head = f"{node.which} {_events(node.events)}{_where(node.where)}"
        return f"{head} {_recency(node.recency)}"
    if isinstance(node, Sequence):
        first = f"did {_events(node.first)}{_where(node.first_where)}"
        then = "then not " if node.then_not else "then "
        second = f"{_events(node.second)}{_where(node.second_where)}"
        within = f" within {lex.duration(node.within)}"
        return f"{first} {then}{second}{within}{_window_suffix(node.window)}"
    if isinstance(node, ProfileCond):
        return _comparison(node.pred, bare)
    if isinstance(node, InSegment):
        return f"in segment {lex.quote(node.name)}"
    raise FormatError(f"no formatting rule for {type(node).__name__} as a condition")


def _inline_operand(parent: Cond, child: Cond, bare: str) -> str:
    text = _inline(child, bare)
    return f"({text})" if _needs_parens(parent, child) else text


def _did(node: Did) -> str:
    text = f"did {_events(node.events)}{_where(node.where)}"
    if node.count is not None:
        text += " " + _count(node.count)
    return text + _window_suffix(node.window)


def _events(node: EventSel) -> str:
    if node.types is None:
        return "anything"
    if len(node.types) == 1:
        return lex.event_type(node.types[0])
    if not node.types:
        raise FormatError("an event selection names no event type")
    return "(" + ", ".join(lex.event_type(t) for t in node.types) + ")"


def _count(node: Count) -> str:
    if node.op == "between":
        if node.high is None:
            raise FormatError("a 'between' count has no upper bound")
        return f"between {node.n} and {node.high} times"
    if node.op == "exactly" and node.n == 0:
        return "never"
    words = {"at_least": "at least", "at_most": "at most", "exactly": "exactly"}[node.op]
    return f"{words} once" if node.n == 1 else f"{words} {node.n} times"


def _window_suffix(node: Window | None) -> str:
    return "" if node is None else " " + _window(node)


def _time(node: DateLit | DateTimeLit | None, what: str) -> str:
    if node is None:
        raise FormatError(f"{what} has no time")
    return lex.literal(node)


def _need_duration(node: Duration | None, what: str) -> Duration:
    if node is None:
        raise FormatError(f"{what} has no duration")
    return node


def _window(node: Window) -> str:
    kind = node.kind
    if kind == "last":
        return "in last " + lex.duration(_need_duration(node.duration, "an 'in last' window"))
    if kind == "since":
        return "since " + _time(node.start, "a 'since' window")
    if kind == "before":
        return "before " + _time(node.end, "a 'before' window")
    if kind == "between":
        start, end = _time(node.start, "a window"), _time(node.end, "a window")
        return f"between {start} and {end}"
    if kind == "on":
        return "on " + _time(node.start, "an 'on' window")
    return kind.replace("_", " ")  # today, yesterday, this week, ..., last month


def _recency(node: Recency) -> str:
    kind = node.kind
    if kind in ("more_than_ago", "less_than_ago"):
        d = lex.duration(_need_duration(node.duration, "a recency"))
        return f"{kind.split('_')[0]} than {d} ago"
    if kind == "in_last":
        return "in last " + lex.duration(_need_duration(node.duration, "a recency"))
    if kind == "before":
        return "before " + _time(node.end, "a 'before' recency")
    if kind == "since":
        return "since " + _time(node.start, "a 'since' recency")
    if kind == "between":
        start, end = _time(node.start, "a recency"), _time(node.end, "a recency")
        return f"between {start} and {end}"
    raise FormatError(f"no formatting rule for the recency {kind!r}")


# --------------------------------------------------------------------------- predicates


def _field(node: Field, context: str) -> str:
    """A path as written in a ``context`` ("profile" condition or "event" predicate)."""
    text = lex.path(node.path)
    if node.scope != context:
        return f"{node.scope}.{text}"
    if node.path[0] in _SCOPE_PREFIXES:
        return f"{node.scope}.{text}"  # a bare `profile.x` would read as the scope
    return text


def _comparison(node: object, context: str) -> str:
    if not isinstance(node, _COMPARISON_TYPES):
        raise FormatError(f"no formatting rule for {type(node).__name__} as a comparison")
    f = _field(node.field, context)
    if isinstance(node, Flag):
        return f  # a bool property alone, as written
    if isinstance(node, Compare):
        return f"{f} {node.op} {lex.literal(node.value)}"
    if isinstance(node, InList):
        if not node.values:
            raise FormatError("an 'in' list holds no value")
        values = ", ".join(lex.literal(v) for v in node.values)
        return f"{f} {'not in' if node.negated else 'in'} ({values})"
    if isinstance(node, Between):
        return f"{f} between {lex.literal(node.low)} and {lex.literal(node.high)}"
    if isinstance(node, TextMatch):
        return f"{f} {_TEXT_OPS[node.op]} {lex.literal(node.value)}"
    if isinstance(node, IsSet):
        return f"{f} is not set" if node.negated else f"{f} is set"
    if isinstance(node, TimeCompare):
        return f"{f} {node.op} {lex.literal(node.value)}"
    assert isinstance(node, AgoCompare)
    d = lex.duration(node.duration)
    if node.op == "in_last":
        return f"{f} in last {d}"
    return f"{f} {node.op.split('_')[0]} than {d} ago"


def _pred_infix(node: object) -> bool:
    return (isinstance(node, PredAnd) and node.style == "and") or (
        isinstance(node, PredOr) and node.style == "or"
    )


def _pred_needs_parens(parent: object, child: object) -> bool:
    if isinstance(parent, PredNot):
        return True  # `not (a = 1)`, `not (a or b)`: the operand always in parens
    if isinstance(parent, PredAnd | PredOr) and _pred_infix(parent):
        return _pred_infix(child)
    return False


def _pred(node: object) -> str:
    """An event predicate, anywhere inside a ``where``."""
    if isinstance(node, PredAnd | PredOr):
        if _pred_infix(node):
            sep = " and " if isinstance(node, PredAnd) else " or "
            return sep.join(_pred_operand(node, op) for op in node.operands)
        head = "all of" if isinstance(node, PredAnd) else "any of"
        return f"{head} (" + ", ".join(_pred(op) for op in node.operands) + ")"
    if isinstance(node, PredNot):
        return "not " + _pred_operand(node, node.operand)
    return _comparison(node, "event")


def _pred_operand(parent: object, child: object) -> str:
    text = _pred(child)
    return f"({text})" if _pred_needs_parens(parent, child) else text


def _where(node: object) -> str:
    """`` where P``: one comparison or a form that cannot swallow what follows."""
    if node is None:
        return ""
    text = _pred(node)
    return f" where ({text})" if _pred_infix(node) else f" where {text}"


# --------------------------------------------------------------------------- dispatch tables

_COMPARISON_TYPES = (Flag, Compare, InList, Between, TextMatch, IsSet, TimeCompare, AgoCompare)
_COND_TYPES = (Did, Aggregate, LastFirst, Sequence, ProfileCond, InSegment, And, Or, Not, Rule)

# Nodes below the condition level, each written on one line.  A comparison
# alone is written as a profile predicate (its form in a condition).
_INLINE_RULES: dict[type, Callable[[Any], str]] = {
    **{t: (lambda n: _comparison(n, "profile")) for t in _COMPARISON_TYPES},
    PredAnd: _pred,
    PredOr: _pred,
    PredNot: _pred,
    Field: lambda n: _field(n, "profile"),
    EventSel: _events,
    Count: _count,
    Window: _window,
    Recency: _recency,
    Duration: lex.duration,
    StringLit: lex.literal,
    NumberLit: lex.literal,
    BoolLit: lex.literal,
    DateLit: lex.literal,
    DateTimeLit: lex.literal,
    Ref: _value,
    MapValue: _value,
    Arg: _arg,
    Action: lambda n: _action(n, 0),
    OncePerContact: _option,
    AtMostOncePer: _option,
    Delay: _option,
    UseDnd: _option,
    Cap: _dnd_item,
    Channel: _dnd_item,
    Global: _dnd_item,
    QuietHours: _dnd_item,
    ClockTime: _clock,
}
