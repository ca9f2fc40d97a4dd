"""Lark tree -> typed AST (audience/dsl/ast.py), without recursion.

The driver walks the tree with an explicit stack, so deep nesting cannot
exhaust Python's stack here (the parser caps the depth anyway, for the passes
that come after).  Each grammar rule has one handler, called with the rule's
position (Lark meta), its already-built children and a context: the default
scope of bare names and the zone that dates and times are read in.  Token
values (strings with escapes, numbers, dates and times) are decoded in
``literals.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast
from zoneinfo import ZoneInfo

from lark import Token, Tree
from lark.tree import Meta

from audience.dsl import ast as A
from audience.dsl.errors import Diagnostic, DslError
from audience.dsl.literals import (
    decode_clock,
    decode_date,
    decode_datetime,
    decode_int,
    decode_number,
    unquote,
    zone,
)


class Ctx(NamedTuple):
    scope: A.Scope  # where a bare name is looked up
    tz: ZoneInfo  # the zone of dates and times written without an offset


def span_of(meta: Meta) -> A.Span:
    if meta.empty:
        return A.NOSPAN
    return A.Span(meta.line, meta.column, meta.end_line, meta.end_column)


def token_span(tok: Token) -> A.Span:
    return A.Span(
        cast(int, tok.line),
        cast(int, tok.column),
        cast(int, tok.end_line),
        cast(int, tok.end_column),
    )


def _error(code: str, message: str, span: A.Span, help: str | None = None) -> DslError:
    return DslError([Diagnostic(code, message, span, help)])


# ------------------------------------------------------------------ driver

Handler = Callable[[Meta, list[Any], Ctx], Any]
_RULES: dict[str, Handler] = {}


_CTX_CHANGE: dict[str, str] = {
    "segment": "tz",
    "trigger": "tz",
    "dnd": "tz",
    "where": "event",
    "aggregate": "event",
    "profile_cond": "profile",
    "profile_flag": "profile",
}

# Grammar rules that nest in the AST, and by how much (`did not` is Not(Did)).
_NESTING_RULES = """
    or_cond and_cond not_ all_of any_of rule did seq aggregate last_ev first_ev
    profile_cond profile_flag pred_not pred_or pred_and pred_all_of pred_any_of map
"""
NESTING: dict[str, int] = dict.fromkeys(_NESTING_RULES.split(), 1)
NESTING.update(did_not=2, seq_not=2)


# Rules whose children's context needs more than _CTX_CHANGE says (a plan's
# zone is in its schedule); filled by the modules that add those rules.
CTX_HOOKS: dict[str, Callable[[Tree[Token], Ctx], Ctx]] = {}


def _child_ctx(tree: Tree[Token], ctx: Ctx) -> Ctx:
    hook = CTX_HOOKS.get(tree.data)
    if hook is not None:
        return hook(tree, ctx)
    change = _CTX_CHANGE.get(tree.data)
    if change is None:
        return ctx
    if change == "tz":
        clause = tree.children[1]
        if isinstance(clause, Tree):
            tok = cast(Token, clause.children[0])
            return Ctx(ctx.scope, zone(unquote(tok.value, token_span(tok))))
        return ctx
    return Ctx(cast(A.Scope, change), ctx.tz)


def build(tree: Tree[Token], tz: ZoneInfo, max_depth: int) -> Any:
    """The AST node for ``tree`` (a ``program`` or ``bare_condition`` tree).

    Raises ``DslError`` "too_deep" at the first node nested more than
    ``max_depth`` levels (see NESTING), before building anything under it."""
    done: list[Any] = []
    todo: list[tuple[Any, Ctx, int, bool]] = [(tree, Ctx("profile", tz), 0, False)]
    while todo:
        node, ctx, depth, expanded = todo.pop()
        if isinstance(node, Tree):
            if expanded:
                n = len(node.children)
                children = done[len(done) - n :]
                del done[len(done) - n :]
                done.append(_RULES[node.data](node.meta, children, ctx))
                continue
            if node.data not in _RULES:
                _load_blocks()  # (a rule no module knows fails below, as before)
            depth += NESTING.get(node.data, 0)
            if depth > max_depth:
                raise _too_deep(node.meta, max_depth)
            todo.append((node, ctx, depth, True))
            inner = _child_ctx(node, ctx)
            todo.extend((child, inner, depth, False) for child in reversed(node.children))
        elif isinstance(node, Token):
            convert = _TOKENS.get(node.type)
            done.append(convert(node, ctx) if convert else node)
        else:  # None: an optional part that was not written
            done.append(node)
    return done[0]


def _too_deep(meta: Meta, max_depth: int) -> DslError:
    return _error(
        "too_deep",
        f"the conditions are nested too deeply (more than {max_depth} levels)",
        span_of(meta),
        "split the condition into saved segments and use 'in segment \"Name\"'",
    )


# ------------------------------------------------------------------ tokens


def _string(tok: Token, ctx: Ctx) -> A.StringLit:
    span = token_span(tok)
    return A.StringLit(unquote(tok.value, span), span)


def _number(tok: Token, ctx: Ctx) -> A.NumberLit:
    span = token_span(tok)
    return A.NumberLit(decode_number(tok.value, span), span)


def _date(tok: Token, ctx: Ctx) -> A.DateLit:
    span = token_span(tok)
    return A.DateLit(decode_date(tok.value, span), ctx.tz, span)


def _datetime(tok: Token, ctx: Ctx) -> A.DateTimeLit:
    span = token_span(tok)
    return A.DateTimeLit(decode_datetime(tok.value, span, ctx.tz), span)


def _clock(tok: Token, ctx: Ctx) -> A.ClockTime:
    span = token_span(tok)
    hour, minute = decode_clock(tok.value, span)
    return A.ClockTime(hour, minute, span)


_TOKENS: dict[str, Callable[[Token, Ctx], Any]] = {
    "STRING": _string,
    "NUMBER": _number,
    "TRUE": lambda tok, ctx: A.BoolLit(True, token_span(tok)),
    "FALSE": lambda tok, ctx: A.BoolLit(False, token_span(tok)),
    "DATE": _date,
    "DATETIME": _datetime,
    "CLOCK": _clock,
}


def _int(tok: Token) -> int:
    return decode_int(tok.value, token_span(tok))


def _name(tok: Token | A.StringLit) -> str:
    """A name as written: plain, in backticks, or (where allowed) a string."""
    if isinstance(tok, A.StringLit):
        return tok.value
    return tok.value[1:-1] if tok.type == "BACKTICK_NAME" else tok.value


_UNITS: dict[str, A.TimeUnit] = {
    "MINUTE": "minute",
    "HOUR": "hour",
    "DAY": "day",
    "WEEK": "week",
    "MONTH": "month",
}


# ------------------------------------------------------------------ definitions


@dataclass(frozen=True, slots=True)
class _Name:
    value: str
    span: A.Span


@dataclass(frozen=True, slots=True)
class _On:
    events: A.EventSel
    where: A.Pred | None
    span: A.Span


@dataclass(frozen=True, slots=True)
class _If:
    cond: A.Cond
    span: A.Span


@dataclass(frozen=True, slots=True)
class _Do:
    actions: tuple[A.Action, ...]
    span: A.Span


def _trigger(meta: Meta, ch: list[Any], ctx: Ctx) -> A.Trigger:
    name, tz, *items = ch
    span = span_of(meta)
    head = A.Span(span.line, span.column, name.span.end_line, name.span.end_column)
    ons = [i for i in items if isinstance(i, _On)]
    ifs = [i for i in items if isinstance(i, _If)]
    actions = tuple(a for i in items if isinstance(i, _Do) for a in i.actions)
    if not ons:
        raise _error(
            "trigger_structure",
            "this trigger has no 'on' line",
            head,
            "say which event fires it, like 'on purchased'",
        )
    if len(ons) > 1:
        raise _error(
            "trigger_structure",
            "a trigger has one 'on' line; this is a second one",
            ons[1].span,
            "to react to several event types write 'on (viewed_product, purchased)'",
        )
    if len(ifs) > 1:
        raise _error(
            "trigger_structure",
            "a trigger has at most one 'if' line; this is a second one",
            ifs[1].span,
            "join the conditions with 'and' in one 'if'",
        )
    if not actions:
        raise _error(
            "trigger_structure",
            "this trigger has no 'do' line",
            head,
            "add an action, like 'do add_tag(\"welcomed\")'",
        )
    options = tuple(i for i in items if not isinstance(i, _On | _If | _Do))
    cond = ifs[0].cond if ifs else None
    on = ons[0]
    return A.Trigger(
        name.value,
        on.events,
        on.where,
        cond,
        actions,
        options,
        *_tz(tz),
        span,
        name.span,
        _tz_span(tz),
    )


def _tz(clause: A.StringLit | None) -> tuple[str | None]:
    return (None if clause is None else clause.value,)


def _tz_span(clause: A.StringLit | None) -> A.Span:
    return A.NOSPAN if clause is None else clause.span


def _ref(meta: Meta, ch: list[Any], ctx: Ctx) -> A.Ref:
    head, *rest = ch
    if head.value not in ("profile", "event"):
        raise _error(
            "syntax_error",
            f"'{head.value}' is not 'profile' or 'event'",
            token_span(head),
            "an action value is a literal, 'profile.NAME' or 'event.NAME'",
        )
    return A.Ref(head.value, tuple(_name(t) for t in rest), span_of(meta))


def _per_duration(meta: Meta, ch: list[Any], ctx: Ctx) -> A.Duration:
    count, unit = ch
    n = 1 if count is None else _int(count)
    return A.Duration(n, _UNITS[unit.type], span_of(meta))


_RULES.update(
    program=lambda m, ch, c: A.Program(definitions=tuple(ch), span=span_of(m)),
    program_condition=lambda m, ch, c: A.Program(condition=ch[0], span=span_of(m)),
    bare_condition=lambda m, ch, c: ch[0],
    def_name=lambda m, ch, c: _Name(_name(ch[0]), span_of(m)),
    tz_clause=lambda m, ch, c: ch[0],  # the StringLit: its span locates a bad zone
    segment=lambda m, ch, c: A.Segment(
        ch[0].value, ch[2], *_tz(ch[1]), span_of(m), ch[0].span, _tz_span(ch[1])
    ),
    dnd=lambda m, ch, c: A.DndPolicy(
        ch[0].value, tuple(ch[2:]), *_tz(ch[1]), span_of(m), ch[0].span, _tz_span(ch[1])
    ),
    trigger=_trigger,
    t_on=lambda m, ch, c: _On(ch[0], ch[1], span_of(m)),
    t_if=lambda m, ch, c: _If(ch[0], span_of(m)),
    t_do=lambda m, ch, c: _Do(tuple(ch), span_of(m)),
    t_once=lambda m, ch, c: A.OncePerContact(span_of(m)),
    t_at_most=lambda m, ch, c: A.AtMostOncePer(ch[0], span_of(m)),
    t_delay=lambda m, ch, c: A.Delay(ch[0], span_of(m)),
    t_dnd=lambda m, ch, c: A.UseDnd(ch[0].value, span_of(m)),
    action=lambda m, ch, c: A.Action(
        ch[0].value, tuple(a for a in ch[1:] if a is not None), span_of(m)
    ),
    kw_arg=lambda m, ch, c: A.Arg(ch[0].value, ch[1], span_of(m)),
    pos_arg=lambda m, ch, c: A.Arg(None, ch[0], span_of(m)),
    map=lambda m, ch, c: A.MapValue(tuple(i for i in ch if i is not None), span_of(m)),
    map_item=lambda m, ch, c: (_name(ch[0]), ch[1]),
    ref=_ref,
    per_duration=_per_duration,
    cap=lambda m, ch, c: A.Cap(_int(ch[0]), ch[1], span_of(m)),
    channel=lambda m, ch, c: A.Channel(ch[0].value, span_of(m)),
    global_=lambda m, ch, c: A.Global(span_of(m)),
    # ch[0] is the word `hours`
    quiet_hours=lambda m, ch, c: A.QuietHours(
        ch[1], ch[2], *_tz(ch[3]), span_of(m), _tz_span(ch[3])
    ),
)


# ------------------------------------------------------------------ conditions


@dataclass(frozen=True, slots=True)
class _SeqTail:
    then_not: bool
    events: A.EventSel
    where: A.Pred | None
    within: A.Duration
    window: A.Window | None


def _did(meta: Meta, ch: list[Any], ctx: Ctx) -> A.Did:
    events, where, *rest = ch  # rest: the count and the window, in the order written
    count = next((p for p in rest if isinstance(p, A.Count)), None)
    window = next((p for p in rest if isinstance(p, A.Window)), None)
    return A.Did(events, where, count, window, span_of(meta))


def _seq(meta: Meta, ch: list[Any], ctx: Ctx) -> A.Sequence:
    first, where, t = ch
    span = span_of(meta)
    return A.Sequence(first, where, t.then_not, t.events, t.where, t.within, t.window, span)


def _negated(make: Handler) -> Handler:
    """``did not ...``: the node wrapped in ``Not``, both spanning the whole text."""

    def handler(meta: Meta, ch: list[Any], ctx: Ctx) -> A.Not:
        node = make(meta, ch, ctx)
        return A.Not(node, node.span)

    return handler


def _last_first(which: Literal["last", "first"]) -> Handler:
    return lambda m, ch, c: A.LastFirst(which, ch[0], ch[1], ch[2], span_of(m))


_RULES.update(
    or_cond=lambda m, ch, c: A.Or(tuple(ch), "or", span_of(m)),
    and_cond=lambda m, ch, c: A.And(tuple(ch), "and", span_of(m)),
    all_of=lambda m, ch, c: A.And(tuple(ch), "all_of", span_of(m)),
    any_of=lambda m, ch, c: A.Or(tuple(ch), "any_of", span_of(m)),
    not_=lambda m, ch, c: A.Not(ch[0], span_of(m)),
    rule=lambda m, ch, c: A.Rule(ch[0].value, ch[1], span_of(m)),
    did=_did,
    did_not=_negated(_did),
    seq=_seq,
    seq_not=_negated(_seq),
    seq_tail=lambda m, ch, c: _SeqTail(ch[0] is not None, ch[1], ch[2], ch[3], ch[4]),
    then_not=lambda m, ch, c: True,
    aggregate=lambda m, ch, c: A.Aggregate(
        ch[0].value.lower(), ch[1], ch[2], ch[3], ch[4], ch[5].value, ch[6], span_of(m)
    ),
    last_ev=_last_first("last"),
    first_ev=_last_first("first"),
    in_segment=lambda m, ch, c: A.InSegment(ch[0].value, span_of(m)),
    profile_cond=lambda m, ch, c: A.ProfileCond(ch[0], span_of(m)),
    # A bool property alone (docs/language/values.md): `vip` is `vip = true`.
    profile_flag=lambda m, ch, c: A.ProfileCond(A.Flag(ch[0], span=span_of(m)), span_of(m)),
)


# ------------------------------------------------------------------ events, counts, windows


def _count(op: A.CountOp, n: int) -> Handler:
    """A count; ``n`` is the number the words mean when none is written (once, never)."""

    def handler(meta: Meta, ch: list[Any], ctx: Ctx) -> A.Count:
        ints = [_int(t) for t in ch] or [n]
        return A.Count(op, ints[0], ints[1] if len(ints) > 1 else None, span_of(meta))

    return handler


def _window(kind: A.WindowKind, *fields: str) -> Handler:
    """A window whose children fill ``fields`` in order.  Calendar windows have
    no fields: their only child is the unit word, which the kind already says."""
    return lambda m, ch, c: A.Window(kind, **dict(zip(fields, ch, strict=False)), span=span_of(m))


def _recency(kind: A.RecencyKind, *fields: str) -> Handler:
    return lambda m, ch, c: A.Recency(kind, **dict(zip(fields, ch, strict=True)), span=span_of(m))


_RULES.update(
    ev_one=lambda m, ch, c: A.EventSel((_name(ch[0]),), span_of(m)),
    ev_list=lambda m, ch, c: A.EventSel(tuple(_name(t) for t in ch), span_of(m)),
    ev_any=lambda m, ch, c: A.EventSel(None, span_of(m)),
    at_least=_count("at_least", 0),
    at_most=_count("at_most", 0),
    exactly=_count("exactly", 0),
    count_between=_count("between", 0),
    at_least_once=_count("at_least", 1),
    at_most_once=_count("at_most", 1),
    exactly_once=_count("exactly", 1),
    never=_count("exactly", 0),
    duration=lambda m, ch, c: A.Duration(_int(ch[0]), _UNITS[ch[1].type], span_of(m)),
    w_last=_window("last", "duration"),
    w_since=_window("since", "start"),
    w_before=_window("before", "end"),
    w_between=_window("between", "start", "end"),
    w_on=_window("on", "start"),
    w_today=_window("today"),
    w_yesterday=_window("yesterday"),
    w_this_week=_window("this_week"),
    w_this_month=_window("this_month"),
    w_last_week=_window("last_week"),
    w_last_month=_window("last_month"),
    r_more_than_ago=_recency("more_than_ago", "duration"),
    r_less_than_ago=_recency("less_than_ago", "duration"),
    r_in_last=_recency("in_last", "duration"),
    r_before=_recency("before", "end"),
    r_since=_recency("since", "start"),
    r_between=_recency("between", "start", "end"),
)


# ------------------------------------------------------------------ predicates


def _path(meta: Meta, ch: list[Any], ctx: Ctx) -> A.Field:
    parts = tuple(_name(t) for t in ch)
    head = ch[0]
    # `profile.x` / `event.x` name their scope; a backticked head never does,
    # so `` `profile`.x `` is a property called profile.
    if len(parts) > 1 and head.type == "NAME" and head.value in ("profile", "event"):
        return A.Field(head.value, parts[1:], span_of(meta))
    return A.Field(ctx.scope, parts, span_of(meta))


def _field_op(cls: Callable[..., A.Comparison], op: str) -> Handler:
    """A comparison whose operator is in the words: ``cls(field, op, value)``."""
    return lambda m, ch, c: cls(ch[0], op, ch[1], span=span_of(m))


_RULES.update(
    where=lambda m, ch, c: ch[0],
    pred_not=lambda m, ch, c: A.PredNot(ch[0], span_of(m)),
    pred_or=lambda m, ch, c: A.PredOr(tuple(ch), "or", span_of(m)),
    pred_any_of=lambda m, ch, c: A.PredOr(tuple(ch), "any_of", span_of(m)),
    pred_and=lambda m, ch, c: A.PredAnd(tuple(ch), "and", span_of(m)),
    pred_all_of=lambda m, ch, c: A.PredAnd(tuple(ch), "all_of", span_of(m)),
    path=_path,
    compare=lambda m, ch, c: A.Compare(ch[0], ch[1].value, ch[2], span_of(m)),
    in_list=lambda m, ch, c: A.InList(ch[0], tuple(ch[1:]), False, span_of(m)),
    not_in_list=lambda m, ch, c: A.InList(ch[0], tuple(ch[1:]), True, span_of(m)),
    between=lambda m, ch, c: A.Between(ch[0], ch[1], ch[2], span_of(m)),
    contains=_field_op(A.TextMatch, "contains"),
    starts_with=_field_op(A.TextMatch, "starts_with"),
    ends_with=_field_op(A.TextMatch, "ends_with"),
    matches=_field_op(A.TextMatch, "matches"),
    is_set=lambda m, ch, c: A.IsSet(ch[0], False, span_of(m)),
    is_not_set=lambda m, ch, c: A.IsSet(ch[0], True, span_of(m)),
    before=_field_op(A.TimeCompare, "before"),
    since=_field_op(A.TimeCompare, "since"),
    in_last=_field_op(A.AgoCompare, "in_last"),
    more_than_ago=_field_op(A.AgoCompare, "more_than_ago"),
    less_than_ago=_field_op(A.AgoCompare, "less_than_ago"),
)


def _load_blocks() -> None:
    """The handlers of ``delivery``, ``plan`` and ``journey`` blocks, which
    register themselves in _RULES and CTX_HOOKS on import: imported at the
    first tree that has a rule not known yet (a segment's text has none)."""
    from audience.dsl import builder_journeys, builder_sending  # noqa: F401
