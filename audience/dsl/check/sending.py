"""Deliveries and plans: their lines, their schedules, and the names they use.

A delivery names a saved template (checked only when the templates are known,
that is with a store); a plan names a segment (or writes a condition), a
delivery and optionally a DND policy, each defined in the same program or
known from the store.  Whether a one-shot plan's time has passed depends on
when it is made ready, so that is ``check_plan_ready``'s, called at that moment.
"""

from __future__ import annotations

import datetime as dt

from audience.dsl.ast import (
    NOSPAN,
    Definition,
    DndPolicy,
    MapValue,
    Ref,
    Segment,
    Span,
)
from audience.dsl.ast_sending import DeliveryDef, Plan, Schedule
from audience.dsl.check.conds import check_cond
from audience.dsl.check.context import Ctx, head_span, known
from audience.dsl.check.names import field_type, suggest
from audience.dsl.check.refs import segment_refs
from audience.dsl.check.structure import check_duration, check_timezone
from audience.dsl.errors import Diagnostic

__all__ = ["check_plan_ready", "check_sending"]

MAX_INTERVAL = 1000  # every 1,000 days or weeks: more is surely a typo
_UNITS = {"every_n_days": "days", "every_n_weeks": "weeks"}


def check_sending(ctx: Ctx, definitions: tuple[Definition, ...]) -> None:
    """Every delivery and plan of a program, and the names they refer to."""
    segments = {d.name for d in definitions if isinstance(d, Segment)} | set(ctx.known_segments)
    policies = {d.name for d in definitions if isinstance(d, DndPolicy)} | set(ctx.known_policies)
    deliveries = {d.name for d in definitions if isinstance(d, DeliveryDef)}
    deliveries |= set(ctx.known_deliveries)
    for d in definitions:
        if isinstance(d, DeliveryDef):
            check_delivery(ctx, d)
        elif isinstance(d, Plan):
            check_plan(ctx, d)
            _check_names(ctx, d, segments, policies, deliveries)


# ------------------------------------------------------------------ deliveries


def check_delivery(ctx: Ctx, d: DeliveryDef) -> None:
    if ctx.known_templates is not None and d.template not in ctx.known_templates:
        ctx.error(
            "unknown_template",
            f"unknown template '{d.template}'",
            known(d.template_span, head_span(d)),
            suggest(d.template, ctx.known_templates, "templates")
            or f"save a template named '{d.template}' first (audience templates add)",
        )
    else:
        _check_template_fields(ctx, d)
    if d.fields is not None:
        _check_fields(ctx, d.fields)
    for address in d.test_list:
        if "@" not in address:
            ctx.error(
                "invalid_address",
                f"the test list holds '{address}', which is not an email address",
                known(d.test_list_span, head_span(d)),
                'write addresses such as "qa@example.com"',
            )


def _check_template_fields(ctx: Ctx, d: DeliveryDef) -> None:
    """Every field the message uses (the template's body, and its subject or the
    delivery's own) is given by ``fields``, as for a trigger's send_email."""
    templates = ctx.known.templates
    info = None if templates is None else templates.get(d.template)
    if info is None:
        return
    if info.error is not None:
        ctx.error(
            "template_error",
            f"template '{d.template}' does not parse: {info.error}",
            known(d.template_span, head_span(d)),
        )
        return
    if d.subject is None or info.body_fields is None:
        used = set(info.fields)
    else:
        used = set(info.body_fields)
        read = ctx.known.read_fields
        try:
            used |= read(d.subject) if read is not None else set()
        except ValueError as exc:
            ctx.error("template_error", f"the subject does not parse: {exc}", head_span(d))
            return
    given = set() if d.fields is None else {k for k, _ in d.fields.items}
    missing = sorted(used - given)
    if missing:
        ctx.error(
            "template_fields",
            f"the message of template '{d.template}' uses {', '.join(missing)}, "
            "which fields { } does not give",
            known(d.fields.span, head_span(d)) if d.fields is not None else head_span(d),
            "add " + ", ".join(f"{m}: ..." for m in missing) + " to fields { }",
        )


def _check_fields(ctx: Ctx, fields: MapValue) -> None:
    seen: set[str] = set()
    for key, value in fields.items:
        if key in seen:
            ctx.error("invalid_fields", f"field '{key}' is given twice", fields.span)
        seen.add(key)
        if isinstance(value, MapValue):
            ctx.error(
                "invalid_fields",
                f"field '{key}' needs a single value, not a map",
                value.span,
            )
        elif isinstance(value, Ref) and value.scope == "event":
            ctx.error(
                "event_outside_trigger",
                f"'event.{value.name}' has no event here: a delivery is sent to a segment",
                value.span,
                f"use the contact's profile, like 'profile.{value.name}'",
            )
        elif isinstance(value, Ref):
            field_type(ctx, value, None)


# ------------------------------------------------------------------ plans


def check_plan(ctx: Ctx, p: Plan) -> None:
    if not isinstance(p.who, str):
        check_cond(ctx, p.who)
    check_schedule(ctx, p.when, fallback=head_span(p))
    if p.lateness is not None:
        check_duration(ctx, p.lateness)


def check_schedule(ctx: Ctx, s: Schedule, *, fallback: Span = NOSPAN) -> None:
    """A ``when`` clause on its own: its zone, numbers, days and dates."""
    where = known(s.span, fallback)
    check_timezone(ctx, s.timezone, known(s.timezone_span, where))
    if s.kind == "once":
        for date, span, word in (
            (s.from_date, s.from_span, "from"),
            (s.until_date, s.until_span, "until"),
        ):
            if date is not None:
                ctx.error(
                    "invalid_schedule",
                    f"'{word}' applies to a repeated plan, not to a one-shot one",
                    known(span, where),
                    "remove it: 'once at' already names the day",
                )
        return
    if s.kind == "monthly" and (s.month_day is None or not 1 <= s.month_day <= 31):
        ctx.error(
            "invalid_schedule",
            f"a month has no day {s.month_day}",
            known(s.number_span, where),
            "write a day from 1 to 31 (a day a month lacks means its last day)",
        )
    if s.kind in _UNITS:
        _check_interval(ctx, s, where)
    if s.kind == "weekly" and not s.weekdays:
        ctx.error(
            "invalid_schedule",
            "a weekly plan names no day of the week",
            known(s.weekdays_span, where),
            "write the days, like 'every week on monday, thursday at 09:00'",
        )
    seen: set[str] = set()
    for day in s.weekdays:
        if day in seen:
            ctx.error(
                "invalid_schedule",
                f"'{day}' is named twice",
                known(s.weekdays_span, where),
                "name each day once",
            )
        seen.add(day)
    if s.from_date is not None and s.until_date is not None and s.until_date < s.from_date:
        ctx.error(
            "invalid_schedule",
            f"'until {s.until_date}' is before 'from {s.from_date}': the plan would never run",
            known(s.until_span, where),
            "write the later date after 'until' (both dates are included)",
        )


def _check_interval(ctx: Ctx, s: Schedule, where: Span) -> None:
    unit = _UNITS[s.kind]
    n = s.interval
    if n is None or not 1 <= n <= MAX_INTERVAL:
        ctx.error(
            "invalid_schedule",
            f"'every {n} {unit}' needs a number from 1 to {MAX_INTERVAL:,}",
            known(s.number_span, where),
        )
    if s.from_date is None:
        ctx.error(
            "invalid_schedule",
            f"'every {n} {unit}' counts from a start date, and this one has none",
            where,
            f"add the first day, like 'every {n} {unit} at 09:00 from 2027-01-04'",
        )


def _check_names(
    ctx: Ctx, p: Plan, segments: set[str], policies: set[str], deliveries: set[str]
) -> None:
    head = head_span(p)
    if isinstance(p.who, str):
        if p.who not in segments:
            ctx.error(
                "unknown_segment",
                f"unknown segment '{p.who}'",
                known(p.who_span, head),
                suggest(p.who, segments, "segments"),
            )
    else:
        for ref in segment_refs(p.who):
            if ref.name not in segments:
                ctx.error(
                    "unknown_segment",
                    f"unknown segment '{ref.name}'",
                    ref.span,
                    suggest(ref.name, segments, "segments"),
                )
    if p.send not in deliveries:
        ctx.error(
            "unknown_delivery",
            f"unknown delivery '{p.send}'",
            known(p.send_span, head),
            suggest(p.send, deliveries, "deliveries"),
        )
    if p.dnd is not None and p.dnd not in policies:
        ctx.error(
            "unknown_policy",
            f"unknown DND policy '{p.dnd}'",
            known(p.dnd_span, head),
            suggest(p.dnd, policies, "DND policies"),
        )


# ------------------------------------------------------------------ when it is made ready


def check_plan_ready(plan: Plan, now_ms: int) -> list[Diagnostic]:
    """What stops ``plan`` from being made ready at ``now_ms`` (UTC epoch ms):
    a one-shot time that has passed, or a repeated plan whose last date has."""
    ctx = Ctx()
    check_timezone(ctx, plan.when.timezone, known(plan.when.timezone_span, plan.span))
    if ctx.diagnostics:
        return ctx.diagnostics
    # the recurrence is runtime code; the checker needs it only here
    from audience.runtime.plans.recurrence import next_occurrence

    s = plan.when
    try:
        upcoming = next_occurrence(s, now_ms)
    except ValueError:
        return []  # a schedule the checker rejects: check() reports it
    if upcoming is not None:
        return []
    now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    if s.kind == "once":
        assert s.on_date is not None
        message = (
            f"plan '{plan.name}' was due at {s.on_date} {s.at:%H:%M} ({s.tz_name}), "
            f"which has passed (it is now {now:%Y-%m-%d %H:%M} UTC)"
        )
        help = "set a later time in 'when once at ...', then make it ready"
    else:
        message = f"plan '{plan.name}' has no occurrence left: its last date was {s.until_date}"
        help = "move 'until' later, then make it ready"
    return [Diagnostic("plan_in_past", message, plan.span, help)]
