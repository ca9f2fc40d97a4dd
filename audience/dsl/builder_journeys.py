"""Tree -> AST for ``journey`` blocks (the handlers join ``builder``'s).

Header lines (``start``, ``enter``, ``once per contact`` / ``again after``,
``dnd``) come in any order before the steps; one given twice, or a missing
``start``, is an error here since the AST holds one value per line.  Dates and
times in the entry's conditions are read in the zone of ``start at ...
timezone "Z"`` when there is one (as a plan's inline ``who`` reads its
schedule's zone).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from lark import Token, Tree
from lark.tree import Meta

from audience.dsl import ast as A
from audience.dsl import builder as B
from audience.dsl import builder_sending as BS
from audience.dsl.ast_journeys import (
    ActionStep,
    CheckStep,
    Clicked,
    EndStep,
    EnterOn,
    EnterSegment,
    Journey,
    JourneyStart,
    Opened,
    ReEntry,
    StartAt,
    StartNow,
    Step,
    WaitStep,
)
from audience.dsl.literals import unquote, zone


@dataclass(frozen=True, slots=True)
class _Block:
    """``yes { ... }`` or ``no { ... }``."""

    steps: tuple[Step, ...]
    span: A.Span


# The header lines' keys as written, in the formatter's order.
_WORDS = {
    "start": "start",
    "entry": "enter",
    "reentry": "once per contact' or 'again after",
    "dnd": "dnd",
}


def _journey(meta: Meta, ch: list[Any], ctx: B.Ctx) -> Journey:
    name, *items = ch
    span = B.span_of(meta)
    head = A.Span(span.line, span.column, name.span.end_line, name.span.end_column)
    lines = BS._lines("journey", [i for i in items if isinstance(i, BS._Line)], _WORDS)
    steps = tuple(i for i in items if not isinstance(i, BS._Line))
    if "start" not in lines:
        raise B._error(
            "journey_structure",
            f"journey '{name.value}' has no 'start' line",
            head,
            "add 'start now', or 'start at 2027-01-10 09:00 timezone \"Europe/Rome\"'",
        )
    if not steps:
        raise B._error(
            "journey_structure",
            f"journey '{name.value}' has no steps",
            head,
            'add a step, like \'action "Welcome" send "Delivery name"\'',
        )
    entry = lines.get("entry")
    reentry = lines.get("reentry")
    dnd = lines.get("dnd")
    return Journey(
        name.value,
        cast(JourneyStart, lines["start"].value),
        steps,
        entry=None if entry is None else entry.value,
        reentry=ReEntry() if reentry is None else reentry.value,
        dnd=None if dnd is None else cast(str, dnd.value),
        span=span,
        name_span=name.span,
        dnd_span=A.NOSPAN if dnd is None else dnd.value_span,
        # in the formatter's order, so the source's and the output's pair up
        line_spans=tuple(lines[k].span for k in _WORDS if k in lines),
    )


def _journey_ctx(tree: Tree[Token], ctx: B.Ctx) -> B.Ctx:
    """Conditions in the block read dates in the zone of ``start at ... timezone``."""
    for item in tree.children:
        if isinstance(item, Tree) and item.data == "j_start_at":
            clause = item.children[2]
            if isinstance(clause, Tree):
                tok = cast(Token, clause.children[0])
                return B.Ctx(ctx.scope, zone(unquote(tok.value, B.token_span(tok))))
    return ctx


def _start_at(meta: Meta, ch: list[Any], ctx: B.Ctx) -> BS._Line:
    date, clock, tz = ch
    at = dt.datetime.combine(date.value, dt.time(clock.hour, clock.minute))
    span = B.span_of(meta)
    start = StartAt(
        at,
        None if tz is None else tz.value,
        span,
        A.NOSPAN if tz is None else tz.span,
    )
    return BS._Line("start", start, span)


def _header(key: str, make: Any) -> B.Handler:
    """A header line whose value is ``make(span, *children)``."""

    def handler(meta: Meta, ch: list[Any], ctx: B.Ctx) -> BS._Line:
        span = B.span_of(meta)
        return BS._Line(key, make(span, *ch), span)

    return handler


def _dnd(meta: Meta, ch: list[Any], ctx: B.Ctx) -> BS._Line:
    return BS._Line("dnd", ch[0].value, B.span_of(meta), ch[0].span)


def _check(meta: Meta, ch: list[Any], ctx: B.Ctx) -> CheckStep:
    label, cond, within, yes, no = ch
    return CheckStep(
        label.value,
        cond,
        within,
        yes.steps,
        no.steps,
        span=B.span_of(meta),
        label_span=label.span,
        yes_span=yes.span,
        no_span=no.span,
        line_spans=(yes.span, no.span),
    )


B._RULES.update(
    journey=_journey,
    j_start_now=_header("start", lambda span: StartNow(span)),
    j_start_at=_start_at,
    j_enter_on=_header(
        "entry", lambda span, events, where, cond: EnterOn(events, where, cond, span)
    ),
    j_enter_segment=_header("entry", lambda span, name: EnterSegment(name.value, span, name.span)),
    j_once=_header("reentry", lambda span: ReEntry(None, span)),
    j_again=_header("reentry", lambda span, duration: ReEntry(duration, span)),
    j_dnd=_dnd,
    j_send=lambda m, ch, c: ActionStep(
        ch[0].value,
        send=ch[1].value,
        span=B.span_of(m),
        label_span=ch[0].span,
        send_span=ch[1].span,
    ),
    j_call=lambda m, ch, c: ActionStep(
        ch[0].value, call=ch[1], span=B.span_of(m), label_span=ch[0].span
    ),
    j_wait=lambda m, ch, c: WaitStep(ch[0], B.span_of(m)),
    j_check=_check,
    j_end=lambda m, ch, c: EndStep(B.span_of(m)),
    j_yes=lambda m, ch, c: _Block(tuple(ch), B.span_of(m)),
    j_no=lambda m, ch, c: _Block(tuple(ch), B.span_of(m)),
    j_clicked=lambda m, ch, c: Clicked(
        ch[0].value,
        None if ch[1] is None else ch[1].value,
        B.span_of(m),
        ch[0].span,
    ),
    j_opened=lambda m, ch, c: Opened(ch[0].value, B.span_of(m), ch[0].span),
)
B.CTX_HOOKS["journey"] = _journey_ctx
# A check's branches nest: deep enough nesting is refused like deep conditions.
B.NESTING.update(j_check=1)
