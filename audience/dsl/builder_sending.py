"""Tree -> AST for ``delivery`` and ``plan`` blocks (the handlers join ``builder``'s).

Lines may come in any order; a line given twice, or a required one missing
(a delivery's ``template``; a plan's ``who``, ``when`` and ``send``), is an
error here, since the AST holds one value per line.  Weekdays are names in the
grammar and checked here, so a misspelt day gets a suggestion.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from lark import Token, Tree
from lark.tree import Meta

from audience.dsl import ast as A
from audience.dsl import builder as B
from audience.dsl.ast_sending import WEEKDAYS, DeliveryDef, Plan, Schedule, ScheduleKind, Weekday
from audience.dsl.literals import unquote, zone


@dataclass(frozen=True, slots=True)
class _Line:
    """One line of a block: its keyword, its value and where it is."""

    key: str
    value: Any
    span: A.Span
    value_span: A.Span = A.NOSPAN


@dataclass(frozen=True, slots=True)
class _Days:
    days: tuple[Weekday, ...]
    span: A.Span


_LINE_WORDS = {
    "template": "template",
    "mail_group": "mail group",
    "subject": "subject",
    "from_addr": "from",
    "sender": "sender",
    "reply_to": "reply to",
    "fields": "fields",
    "test_list": "test list",
    "who": "who",
    "when": "when",
    "send": "send",
    "dnd": "dnd",
    "lateness": "late up to",
    "timezone": "timezone",
    "from": "from",
    "until": "until",
}


def _head(span: A.Span, name: B._Name) -> A.Span:
    """From the block's keyword to the end of its name."""
    return A.Span(span.line, span.column, name.span.end_line, name.span.end_column)


def _lines(
    kind: str, items: list[_Line], words: Mapping[str, str] = _LINE_WORDS
) -> dict[str, _Line]:
    """The lines by key (``words``: how each key is written); a second one of a
    key is an error."""
    found: dict[str, _Line] = {}
    for item in items:
        first = found.setdefault(item.key, item)
        if first is not item:
            word = words[item.key]
            at = first.span
            where = f"column {at.column}" if at.line == item.span.line else f"line {at.line}"
            raise B._error(
                f"{kind}_structure",
                f"'{word}' is given twice in this {kind}",
                item.span,
                f"keep one of them (the first is at {where})",
            )
    return found


def _line(key: str, index: int = 0) -> B.Handler:
    """A line whose value is child ``index`` (a StringLit gives its text)."""

    def handler(meta: Meta, ch: list[Any], ctx: B.Ctx) -> _Line:
        value = ch[index]
        if isinstance(value, A.StringLit):
            return _Line(key, value.value, B.span_of(meta), value.span)
        return _Line(key, value, B.span_of(meta), getattr(value, "span", A.NOSPAN))

    return handler


# ------------------------------------------------------------------ deliveries


def _delivery(meta: Meta, ch: list[Any], ctx: B.Ctx) -> DeliveryDef:
    name, *items = ch
    span = B.span_of(meta)
    lines = _lines("delivery", items)
    if "template" not in lines:
        raise B._error(
            "delivery_structure",
            f"delivery '{name.value}' has no 'template' line",
            _head(span, name),
            "say which saved template it sends, like 'template \"spring-event\"'",
        )

    def text(key: str) -> str | None:
        line = lines.get(key)
        return None if line is None else cast(str, line.value)

    test_list = lines.get("test_list")
    return DeliveryDef(
        name.value,
        cast(str, lines["template"].value),
        mail_group=text("mail_group"),
        subject=text("subject"),
        from_addr=text("from_addr"),
        sender=text("sender"),
        reply_to=text("reply_to"),
        fields=lines["fields"].value if "fields" in lines else None,
        test_list=() if test_list is None else test_list.value,
        span=span,
        name_span=name.span,
        template_span=lines["template"].value_span,
        test_list_span=A.NOSPAN if test_list is None else test_list.span,
        line_spans=tuple(line.span for line in lines.values()),
    )


def _test_list(meta: Meta, ch: list[Any], ctx: B.Ctx) -> _Line:
    return _Line("test_list", tuple(s.value for s in ch), B.span_of(meta))


def _fields(meta: Meta, ch: list[Any], ctx: B.Ctx) -> _Line:
    value = A.MapValue(tuple(i for i in ch if i is not None), B.span_of(meta))
    return _Line("fields", value, B.span_of(meta), value.span)


# ------------------------------------------------------------------ plans


def _plan(meta: Meta, ch: list[Any], ctx: B.Ctx) -> Plan:
    name, *items = ch
    span = B.span_of(meta)
    lines = _lines("plan", items)
    for key, example in (
        ("who", 'who "Segment name" or who (did purchased in last 30 days)'),
        ("when", "when once at 2027-03-11 10:00, or when every day at 09:00"),
        ("send", 'send "Delivery name"'),
    ):
        if key not in lines:
            raise B._error(
                "plan_structure",
                f"plan '{name.value}' has no '{key}' line",
                _head(span, name),
                f"add a line such as '{example}'",
            )
    dnd = lines.get("dnd")
    late = lines.get("lateness")
    return Plan(
        name.value,
        lines["who"].value,
        lines["when"].value,
        cast(str, lines["send"].value),
        dnd=None if dnd is None else cast(str, dnd.value),
        lateness=None if late is None else late.value,
        span=span,
        name_span=name.span,
        who_span=lines["who"].value_span,
        send_span=lines["send"].value_span,
        dnd_span=A.NOSPAN if dnd is None else dnd.value_span,
        line_spans=tuple(line.span for line in lines.values()),
    )


def _plan_ctx(tree: Tree[Token], ctx: B.Ctx) -> B.Ctx:
    """An inline ``who (...)`` reads its dates in the schedule's zone."""
    for item in tree.children:
        if isinstance(item, Tree) and item.data == "p_when":
            schedule = item.children[0]
            assert isinstance(schedule, Tree)
            for opt in schedule.children:
                if isinstance(opt, Tree) and opt.data == "tz_clause":
                    tok = cast(Token, opt.children[0])
                    return B.Ctx(ctx.scope, zone(unquote(tok.value, B.token_span(tok))))
    return ctx


# ------------------------------------------------------------------ schedules


@dataclass(frozen=True, slots=True)
class _Parts:
    """What a schedule rule's children hold, by kind."""

    at: A.ClockTime
    on_date: A.DateLit | None = None
    days: _Days | None = None
    number: Token | None = None


def _schedule(
    kind: ScheduleKind, pick: Callable[[list[Any]], tuple[_Parts, list[Any]]]
) -> B.Handler:
    def handler(meta: Meta, ch: list[Any], ctx: B.Ctx) -> Schedule:
        parts, opts = pick(ch)
        options = _lines("plan", [_option(o) for o in opts])
        at = parts.at
        at_span = at.span
        if parts.on_date is not None:
            at_span = A.Span(
                parts.on_date.span.line,
                parts.on_date.span.column,
                at.span.end_line,
                at.span.end_column,
            )
        number = None if parts.number is None else B._int(parts.number)
        days = parts.days

        def date(key: str) -> dt.date | None:
            line = options.get(key)
            return None if line is None else cast(A.DateLit, line.value).value

        def where(key: str) -> A.Span:
            line = options.get(key)
            return A.NOSPAN if line is None else line.span

        tz = options.get("timezone")
        return Schedule(
            kind,
            dt.time(at.hour, at.minute),
            on_date=None if parts.on_date is None else parts.on_date.value,
            weekdays=() if days is None else days.days,
            month_day=number if kind == "monthly" else None,
            interval=number if kind in ("every_n_days", "every_n_weeks") else None,
            timezone=None if tz is None else cast(str, tz.value),
            from_date=date("from"),
            until_date=date("until"),
            span=B.span_of(meta),
            at_span=at_span,
            weekdays_span=A.NOSPAN if days is None else days.span,
            number_span=A.NOSPAN if parts.number is None else B.token_span(parts.number),
            timezone_span=A.NOSPAN if tz is None else tz.value_span,
            from_span=where("from"),
            until_span=where("until"),
        )

    return handler


def _option(opt: Any) -> _Line:
    if isinstance(opt, A.StringLit):  # the tz_clause
        return _Line("timezone", opt.value, opt.span, opt.span)
    assert isinstance(opt, _Line)
    return opt


def _weekdays(meta: Meta, ch: list[Any], ctx: B.Ctx) -> _Days:
    days: list[Weekday] = []
    for tok in ch:
        if tok is None:
            continue
        word = tok.value.lower()
        if word not in WEEKDAYS:
            close = difflib.get_close_matches(word, WEEKDAYS, n=1, cutoff=0.5)
            raise B._error(
                "unknown_weekday",
                f"'{tok.value}' is not a day of the week",
                B.token_span(tok),
                f"did you mean '{close[0]}'?" if close else "write monday, tuesday, ... or sunday",
            )
        days.append(cast(Weekday, word))
    return _Days(tuple(days), B.span_of(meta))


B._RULES.update(
    delivery=_delivery,
    d_template=_line("template"),
    d_mail_group=_line("mail_group"),
    d_subject=_line("subject"),
    d_from=_line("from_addr"),
    d_sender=_line("sender"),
    d_reply_to=_line("reply_to"),
    d_fields=_fields,
    d_test_list=_test_list,
    plan=_plan,
    p_who_segment=_line("who"),
    p_who_cond=_line("who"),
    p_when=_line("when"),
    p_send=_line("send"),
    p_dnd=_line("dnd"),
    p_late=_line("lateness"),
    weekdays=_weekdays,
    s_from=_line("from"),
    s_until=_line("until"),
    # children after the keywords that Lark drops (the unit words WEEK, DAY and
    # MONTH are named terminals, so they stay)
    s_once=_schedule("once", lambda ch: (_Parts(ch[1], on_date=ch[0]), ch[2:])),
    s_daily=_schedule("daily", lambda ch: (_Parts(ch[1]), ch[2:])),
    s_weekly=_schedule("weekly", lambda ch: (_Parts(ch[2], days=ch[1]), ch[3:])),
    s_monthly=_schedule("monthly", lambda ch: (_Parts(ch[3], number=ch[2]), ch[4:])),
    s_every_days=_schedule("every_n_days", lambda ch: (_Parts(ch[2], number=ch[0]), ch[3:])),
    s_every_weeks=_schedule(
        "every_n_weeks", lambda ch: (_Parts(ch[3], days=ch[2], number=ch[0]), ch[4:])
    ),
)
B.CTX_HOOKS["plan"] = _plan_ctx
B.NESTING.update(d_fields=1, p_who_cond=1)
