"""The semantic checker: a parsed program (and, when given, the data schema)
in, every problem found out, as ``Diagnostic`` objects with a stable code.

    from audience.dsl.check import check, check_condition
    diags = check(program, schema, known=Known(segments=..., policies=..., templates=...))
    if diags: raise DslError(diags, source, filename)

``known`` holds the definitions saved elsewhere (the store), one field per kind
of name; the program's own definitions count too, and override saved ones of
the same name.  Templates are resolved only when ``known.templates`` is given
(a store): without one a ``send_email`` campaign is taken as written.
(``known_segments`` / ``known_policies`` are the older spelling, still accepted.)
Diagnostics come sorted by position; each points at the most
precise node the AST has a span for.

Codes (stable; clients and tests match on them):

Without a schema
- ``unknown_timezone``      a definition's or quiet hours' time zone is not an IANA name
- ``invalid_count``         a negative count or cap, or ``between N and M times`` with N > M
- ``invalid_duration``      a duration of zero or fewer units
- ``invalid_regex``         ``matches`` with a pattern Python's ``re`` rejects
- ``invalid_range``         ``between`` with its low end above its high end (values or times)
- ``duplicate_definition``  two segments (triggers, DND policies) with one name
- ``unknown_segment``       ``in segment "X"`` with X neither in the program nor saved
- ``segment_cycle``         segments that include each other (or themselves)
- ``unknown_policy``        a trigger's ``dnd "P"`` with P neither in the program nor saved
- ``unknown_template``      ``send_email(campaign: "X")`` with no saved template X (with a store)
- ``template_fields``       the campaign's template uses fields ``fields:`` does not give
- ``template_error``        the campaign's saved template does not parse
- ``duplicate_option``      a trigger or DND option given twice, or two that conflict
- ``dnd_without_cap``       a DND policy with no ``max N per ...``
- ``invalid_quiet_hours``   quiet hours that start when they end, or a clock time out of range
- ``event_outside_trigger`` ``event.x`` in a segment condition (no event there)
- ``unknown_context``       ``context`` compared with a value outside the list of contexts
- ``unknown_action``        a trigger action that does not exist
- ``invalid_argument``      an action argument missing, unknown, repeated or of the wrong form
- ``unknown_journey``       ``enter_journey("X")`` with X neither in the program nor saved
- ``invalid_schedule``      a plan's ``when``: a day of the month outside 1..31, an interval
  below 1, ``every N days|weeks`` without ``from``, a weekly plan with no day or a day
  named twice, ``until`` before ``from``, ``from``/``until`` on a one-shot plan
- ``unknown_delivery``      a plan's ``send "D"`` with D neither in the program nor saved
- ``invalid_fields``        a delivery's ``fields`` with a key twice or a map as a value
- ``invalid_address``       a delivery's test list with something that is not an address
- ``journey_structure``     (the parser) a journey with no ``start`` line or no steps, or a
  header line given twice
- ``unknown_step_label``    a check's ``clicked "A"`` / ``opened "A"`` where no action is labelled A
- ``label_not_before``      ... naming an action that does not run before the check (a later
  step, or one in another branch)
- ``not_a_send``            ... naming a check, or an action that sends no delivery
- ``duplicate_label``       two steps of a journey with one label
- ``empty_branch``          a check's ``yes { }`` or ``no { }`` with no steps
- ``unreachable_step``      a step after ``end`` or after a check in the same block
  (journeys also use ``unknown_delivery``, ``unknown_segment``, ``unknown_policy``,
  ``unknown_action``, ``invalid_duration`` and ``event_outside_trigger``)
- ``plan_in_past``          (``check_plan_ready``, when a plan is made ready) a one-shot
  plan whose time has passed, or a repeated one whose last date has

With the store's templates (``known.templates``)
- ``unknown_template``      a delivery's ``template "T"`` that is not saved

With a schema
- ``unknown_event_type``        an event type (or ``type = "x"``) the schema does not declare
- ``unknown_property``          an event property none of the selected event types has
- ``inconsistent_property``     an event property whose type differs across the selected types
- ``unknown_profile_property``  a profile property (``set(x: ...)`` included) not declared
- ``non_numeric_aggregate``     sum/avg/min/max over a property that is not a number
- ``type_mismatch``             a value or operator that does not fit the property's type
- ``not_a_condition``           a profile property alone (``city``) that is not a bool
  (built-in event fields such as ``ts`` are checked even without a schema)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

from audience.dsl.ast import NOSPAN, Cond, DndPolicy, Program, Segment, Trigger
from audience.dsl.check.conds import check_cond, check_pred
from audience.dsl.check.context import Ctx, Known, TemplateInfo, head_span
from audience.dsl.check.context import known as span_or
from audience.dsl.check.names import check_event_sel
from audience.dsl.check.refs import check_duplicates, check_policy_refs, check_segment_refs
from audience.dsl.check.structure import check_policy, check_timezone
from audience.dsl.errors import Diagnostic
from audience.schema import Schema

__all__ = ["Known", "TemplateInfo", "check", "check_condition", "check_program"]


def check(
    program: Program,
    schema: Schema | None = None,
    *,
    known: Known | None = None,
    known_segments: Mapping[str, Segment] | None = None,
    known_policies: Collection[str] = (),
) -> list[Diagnostic]:
    """Every problem of a program (definitions, or one bare condition)."""
    given = (known or Known()).with_legacy(known_segments, known_policies)
    defs = program.definitions
    # Deliveries, plans and journeys: their checks (and node classes) are
    # imported only for a program that has one (a segment's text has none).
    blocks = any(not isinstance(d, Segment | Trigger | DndPolicy) for d in defs)
    own: list[str] = []
    if blocks:
        from audience.dsl.ast_journeys import Journey

        # enter_journey may name a journey of the program as well as a saved one
        own = [d.name for d in defs if isinstance(d, Journey)]
    ctx = Ctx(schema, replace(given, journeys={*given.journeys, *own}) if own else given)
    check_duplicates(ctx, defs)
    for d in defs:
        if isinstance(d, Segment):
            check_timezone(ctx, d.timezone, span_or(d.timezone_span, head_span(d)))
            check_cond(ctx, d.cond)
        elif isinstance(d, Trigger):
            _check_trigger(ctx, d)
        elif isinstance(d, DndPolicy):
            check_policy(ctx, d)
    if program.condition is not None:
        check_cond(ctx, program.condition)
    check_segment_refs(ctx, defs, program.condition)
    check_policy_refs(ctx, defs)
    if blocks:
        from audience.dsl.check.journeys import check_journeys
        from audience.dsl.check.sending import check_sending

        check_sending(ctx, defs)
        check_journeys(ctx, defs)
    return _sorted(ctx.diagnostics)


check_program = check


def check_condition(
    cond: Cond,
    schema: Schema | None = None,
    *,
    timezone: str = "UTC",
    known: Known | None = None,
    known_segments: Mapping[str, Segment] | None = None,
    known_policies: Collection[str] = (),
) -> list[Diagnostic]:
    """Every problem of a bare condition evaluated in ``timezone``."""
    ctx = Ctx(schema, (known or Known()).with_legacy(known_segments, known_policies))
    check_timezone(ctx, timezone, NOSPAN)
    check_cond(ctx, cond)
    check_segment_refs(ctx, (), cond)
    return _sorted(ctx.diagnostics)


def _check_trigger(ctx: Ctx, t: Trigger) -> None:
    from audience.dsl.check.actions import check_actions, check_options

    check_timezone(ctx, t.timezone, span_or(t.timezone_span, head_span(t)))
    types = check_event_sel(ctx, t.events)
    check_pred(ctx, t.where, types)
    if t.condition is not None:
        check_cond(ctx, t.condition)
    check_actions(ctx, t, types)
    check_options(ctx, t.options)


def _sorted(diags: list[Diagnostic]) -> list[Diagnostic]:
    # The order DslError renders them in; stable, so ties keep the walk's order.
    return sorted(diags, key=lambda d: (d.span.line, d.span.column, d.code))
