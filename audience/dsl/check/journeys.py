"""Journeys: their header lines, their steps, and the names they use.

- The start's zone; the entry's event, ``where`` and ``if`` as a trigger's; an
  entry segment, the DND policy and each ``send "D"`` defined in the program or
  known from the store; durations (``again after``, ``wait``, ``within``) of at
  least one unit.
- Labels: each action and check label once in a journey (a contact's position
  and the delivery's key name it).  ``clicked "A"`` / ``opened "A"`` name an
  action that sends a delivery and that runs BEFORE the check on every path
  to it: an earlier step of the same block or of an enclosing one, not a later
  step and not one of a sibling branch.
- Blocks: ``yes { }`` and ``no { }`` hold at least one step (``end`` to stop
  there).  Nothing follows ``end`` in its block, nor a check: both branches
  decide what happens next and a path that runs out of steps ends, so steps
  after a check in the same block could never run; they are reported as
  unreachable rather than run after either branch.
- A journey action is ``send "D"``, or ``add_tag``, ``set`` or ``webhook`` checked
  as a trigger's; it runs for a contact, not for an event, so ``event.x`` has
  no value there.
- A check's section 3 condition is checked like a segment's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from audience.dsl.ast import (
    NOSPAN,
    Cond,
    Definition,
    DndPolicy,
    MapValue,
    Ref,
    Segment,
    Span,
    Value,
)
from audience.dsl.ast_journeys import (
    ActionStep,
    CheckStep,
    Clicked,
    EndStep,
    EnterOn,
    EnterSegment,
    Journey,
    Opened,
    StartAt,
    Step,
    WaitStep,
)
from audience.dsl.ast_sending import DeliveryDef
from audience.dsl.check.actions import CHECKS, name_span
from audience.dsl.check.conds import check_cond, check_pred
from audience.dsl.check.context import Ctx, head_span, known
from audience.dsl.check.names import check_event_sel, suggest
from audience.dsl.check.refs import segment_refs
from audience.dsl.check.structure import check_duration, check_timezone

__all__ = ["JOURNEY_ACTIONS", "check_journeys"]

JOURNEY_ACTIONS = ("add_tag", "set", "webhook")


def check_journeys(ctx: Ctx, definitions: tuple[Definition, ...]) -> None:
    """Every journey of a program, and the names it refers to."""
    names = _Names(
        segments={d.name for d in definitions if isinstance(d, Segment)} | set(ctx.known_segments),
        policies={d.name for d in definitions if isinstance(d, DndPolicy)}
        | set(ctx.known_policies),
        deliveries={d.name for d in definitions if isinstance(d, DeliveryDef)}
        | set(ctx.known_deliveries),
    )
    for d in definitions:
        if isinstance(d, Journey):
            _check_journey(ctx, d, names)


class _Names:
    def __init__(
        self, segments: Collection[str], policies: Collection[str], deliveries: Collection[str]
    ) -> None:
        self.segments, self.policies, self.deliveries = segments, policies, deliveries


def _check_journey(ctx: Ctx, j: Journey, names: _Names) -> None:
    head = head_span(j)
    if isinstance(j.start, StartAt):
        check_timezone(ctx, j.start.timezone, known(j.start.timezone_span, head))
    conds: list[Cond] = []
    if isinstance(j.entry, EnterOn):
        types = check_event_sel(ctx, j.entry.events)
        check_pred(ctx, j.entry.where, types)
        if j.entry.condition is not None:
            check_cond(ctx, j.entry.condition)
            conds.append(j.entry.condition)
    elif isinstance(j.entry, EnterSegment) and j.entry.segment not in names.segments:
        ctx.error(
            "unknown_segment",
            f"unknown segment '{j.entry.segment}'",
            known(j.entry.segment_span, known(j.entry.span, head)),
            suggest(j.entry.segment, names.segments, "segments"),
        )
    check_duration(ctx, j.reentry.again_after)
    if j.dnd is not None and j.dnd not in names.policies:
        ctx.error(
            "unknown_policy",
            f"unknown DND policy '{j.dnd}'",
            known(j.dnd_span, head),
            suggest(j.dnd, names.policies, "DND policies"),
        )
    labels = _labels(ctx, j)
    _Walk(ctx, names, labels).block(j.steps, {})
    for step in _all_steps(j.steps):
        if isinstance(step, CheckStep) and not isinstance(step.cond, Clicked | Opened):
            conds.append(step.cond)
    for cond in conds:
        for ref in segment_refs(cond):
            if ref.name not in names.segments:
                ctx.error(
                    "unknown_segment",
                    f"unknown segment '{ref.name}'",
                    ref.span,
                    suggest(ref.name, names.segments, "segments"),
                )


def _all_steps(steps: tuple[Step, ...]) -> Iterator[Step]:
    stack = list(reversed(steps))
    while stack:
        step = stack.pop()
        yield step
        if isinstance(step, CheckStep):
            stack += reversed(step.no)
            stack += reversed(step.yes)


def _labels(ctx: Ctx, j: Journey) -> dict[str, ActionStep | CheckStep]:
    """Each labelled step by its label; a label used twice is reported."""
    found: dict[str, ActionStep | CheckStep] = {}
    for step in _all_steps(j.steps):
        if not isinstance(step, ActionStep | CheckStep):
            continue
        first = found.setdefault(step.label, step)
        if first is not step:
            ctx.error(
                "duplicate_label",
                f"the label '{step.label}' is used twice in this journey",
                known(step.label_span, step.span),
                f"the first is at line {first.span.line}; give each step its own label",
            )
    return found


class _Walk:
    """The steps block by block, with the send actions run before each point."""

    def __init__(self, ctx: Ctx, names: _Names, labels: dict[str, ActionStep | CheckStep]) -> None:
        self.ctx, self.names, self.labels = ctx, names, labels

    def block(self, steps: tuple[Step, ...], before: dict[str, ActionStep]) -> None:
        before = dict(before)
        reported = False
        for i, step in enumerate(steps):
            if isinstance(step, ActionStep):
                self.action(step)
                before.setdefault(step.label, step)
            elif isinstance(step, WaitStep):
                check_duration(self.ctx, step.duration)
            elif isinstance(step, CheckStep):
                self.check(step, before)
            # one report per block; the steps after it are still checked
            if isinstance(step, EndStep | CheckStep) and i + 1 < len(steps) and not reported:
                self.unreachable(step, steps[i + 1])
                reported = True

    def unreachable(self, after: Step, first: Step) -> None:
        if isinstance(after, EndStep):
            why, help = "'end'", "remove them, or move 'end' after them"
        else:
            why = "a check: its 'yes' and 'no' decide what follows"
            help = "move these steps into 'yes { }' and 'no { }'"
        span = first.span
        if isinstance(first, CheckStep) and first.label_span != NOSPAN:  # its head only
            span = Span(
                span.line, span.column, first.label_span.end_line, first.label_span.end_column
            )
        self.ctx.error(
            "unreachable_step", f"this step can never run: it comes after {why}", span, help
        )

    def action(self, step: ActionStep) -> None:
        if step.send is not None:
            if step.send not in self.names.deliveries:
                self.ctx.error(
                    "unknown_delivery",
                    f"unknown delivery '{step.send}'",
                    known(step.send_span, step.span),
                    suggest(step.send, self.names.deliveries, "deliveries")
                    or f'define it first: delivery "{step.send}" {{ template "..." }}',
                )
            return
        call = step.call
        assert call is not None
        if call.name not in JOURNEY_ACTIONS:
            self.ctx.error(
                "unknown_action",
                f"'{call.name}' is not an action of a journey",
                name_span(call),
                suggest(call.name, JOURNEY_ACTIONS, "journey actions", listed=())
                or 'write send "Delivery", add_tag(...), set(...) or webhook(...)',
            )
            return
        refs = [r for a in call.args for r in _event_refs(a.value)]
        for ref in refs:
            self.ctx.error(
                "event_outside_trigger",
                f"'event.{ref.name}' has no event here: a journey's action runs for a contact",
                ref.span,
                f"use the contact's profile, like 'profile.{ref.name}'",
            )
        if not refs:
            CHECKS[call.name](self.ctx, call, None)

    def check(self, step: CheckStep, before: dict[str, ActionStep]) -> None:
        check_duration(self.ctx, step.within)
        cond = step.cond
        if isinstance(cond, Clicked | Opened):
            self.named_action(step, cond, before)
        else:
            check_cond(self.ctx, cond)
        for word, branch, span in (("yes", step.yes, step.yes_span), ("no", step.no, step.no_span)):
            if not branch:
                self.ctx.error(
                    "empty_branch",
                    f"the '{word}' branch of check '{step.label}' has no steps",
                    known(span, step.span),
                    "write 'end' in it to finish there",
                )
            self.block(branch, before)

    def named_action(
        self, step: CheckStep, cond: Clicked | Opened, before: dict[str, ActionStep]
    ) -> None:
        word = "clicked" if isinstance(cond, Clicked) else "opened"
        where = known(cond.action_span, cond.span)
        target = self.labels.get(cond.action)
        if target is None:
            self.ctx.error(
                "unknown_step_label",
                f"no action of this journey is labelled '{cond.action}'",
                where,
                suggest(cond.action, before, "actions before the check"),
            )
        elif not isinstance(target, ActionStep) or target.send is None:
            what = "a check" if isinstance(target, CheckStep) else "an action that sends nothing"
            self.ctx.error(
                "not_a_send",
                f"'{word}' needs an action that sends a delivery; '{cond.action}' is {what}",
                where,
                suggest(cond.action, _sends(before), "sending actions before the check"),
            )
        elif cond.action not in before:
            self.ctx.error(
                "label_not_before",
                f"action '{cond.action}' does not run before check '{step.label}' "
                "(it comes later, or in another branch)",
                where,
                "a check looks at a message sent earlier on the same path",
            )


def _sends(before: dict[str, ActionStep]) -> list[str]:
    return [label for label, a in before.items() if a.send is not None]


def _event_refs(value: Value) -> Iterator[Ref]:
    if isinstance(value, Ref) and value.scope == "event":
        yield value
    elif isinstance(value, MapValue):
        for _, v in value.items:
            yield from _event_refs(v)
