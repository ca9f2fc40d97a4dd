"""AST nodes of journeys: multi-step automations.

``journey "Name" { start ... enter ... steps }`` moves each contact that enters
through its steps: actions (a delivery sent, a tag, a property, a webhook),
waits, checks that branch on what the contact did (a click on an earlier
action's message, an open, any segment condition) within a deadline, and ends.
Frozen dataclasses with spans excluded from equality, like the rest of the AST
(``audience.dsl.ast`` re-exports ``Journey`` in its ``Definition`` union).

Every step has a stable id, its path in the tree (``step_paths``): the index of
the step in its block, with ``yes``/``no`` between a check and its branch, e.g.
``"0"``, ``"1"``, ``"1.yes.0"``, ``"1.no.0"``.  A journey version stores its
steps by those ids; a contact's position is one of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

from audience.dsl.ast import NOSPAN, Action, Cond, Duration, EventSel, Pred, Span


def _lines() -> tuple[Span, ...]:
    return field(default=(), compare=False, hash=False, repr=False)


def _span() -> Span:
    return field(default=NOSPAN, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class StartNow:
    """``start now``: the journey takes entries from the moment it goes live."""

    span: Span = _span()


@dataclass(frozen=True, slots=True)
class StartAt:
    """``start at 2027-01-10 09:00 [timezone "Z"]``: local wall time (naive) in ``timezone``."""

    at: dt.datetime  # naive local time, whole minutes
    timezone: str | None = None  # None: not written, UTC
    span: Span = _span()
    timezone_span: Span = _span()

    @property
    def tz_name(self) -> str:
        return self.timezone or "UTC"


JourneyStart: TypeAlias = StartNow | StartAt


@dataclass(frozen=True, slots=True)
class EnterOn:
    """``enter on E [where P] [if C]``: a contact enters when such an event arrives."""

    events: EventSel
    where: Pred | None = None
    condition: Cond | None = None  # the `if`, evaluated for the contact at the event's time
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class EnterSegment:
    """``enter segment "S"``: contacts enter when they join the saved segment after the start."""

    segment: str
    span: Span = _span()
    segment_span: Span = _span()  # the segment's name string


Entry: TypeAlias = EnterOn | EnterSegment


@dataclass(frozen=True, slots=True)
class ReEntry:
    """``once per contact`` (``again_after`` None, the default) or ``again after D``."""

    again_after: Duration | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ActionStep:
    """``action "Label" send "Delivery"``, or ``action "Label" add_tag("x")`` (also
    ``set(...)``, ``webhook(...)`` as in triggers).  Exactly one of ``send`` and
    ``call`` is set."""

    label: str
    send: str | None = None  # a delivery's name
    call: Action | None = None  # add_tag / set / webhook, checked as a trigger's action
    span: Span = _span()
    label_span: Span = _span()
    send_span: Span = _span()  # the delivery's name string


@dataclass(frozen=True, slots=True)
class WaitStep:
    """``wait D``."""

    duration: Duration
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Clicked:
    """``clicked "ActionLabel" [link "text"]``: a click on that action's message (any
    link, or the link whose text or URL is ``link``)."""

    action: str
    link: str | None = None
    span: Span = _span()
    action_span: Span = _span()  # the label string


@dataclass(frozen=True, slots=True)
class Opened:
    """``opened "ActionLabel"``."""

    action: str
    span: Span = _span()
    action_span: Span = _span()


# Cond: about what the contact does after reaching the check
CheckCond: TypeAlias = Clicked | Opened | Cond


@dataclass(frozen=True, slots=True)
class CheckStep:
    """``check "Label" COND within D yes { ... } no { ... }``: ``yes`` as soon as COND
    holds for an event at or before entry + D (by the event's own time), ``no`` at
    the deadline."""

    label: str
    cond: CheckCond
    within: Duration
    yes: tuple[Step, ...]
    no: tuple[Step, ...]
    span: Span = _span()
    label_span: Span = _span()
    yes_span: Span = _span()  # the `yes { ... }` block
    no_span: Span = _span()  # the `no { ... }` block
    line_spans: tuple[Span, ...] = _lines()  # the two blocks: comments at their ends anchor there


@dataclass(frozen=True, slots=True)
class EndStep:
    """``end``; a path that runs out of steps ends too."""

    span: Span = _span()


Step: TypeAlias = ActionStep | WaitStep | CheckStep | EndStep


@dataclass(frozen=True, slots=True)
class Journey:
    """``journey "Name" { start ... [enter ...] [once per contact | again after D]
    [dnd "P"] steps }``.  Without an ``enter`` line, contacts enter only through a
    trigger's ``enter_journey("Name")``."""

    name: str
    start: JourneyStart
    steps: tuple[Step, ...]
    entry: Entry | None = None
    reentry: ReEntry = ReEntry()
    dnd: str | None = None
    span: Span = _span()
    name_span: Span = _span()
    dnd_span: Span = _span()  # the policy's name string
    line_spans: tuple[Span, ...] = _lines()  # each header line as written (comments anchor to them)


def step_paths(steps: tuple[Step, ...], prefix: str = "") -> Iterator[tuple[str, Step]]:
    """Every step with its stable id, depth first in text order."""
    for i, step in enumerate(steps):
        path = f"{prefix}{i}"
        yield path, step
        if isinstance(step, CheckStep):
            yield from step_paths(step.yes, f"{path}.yes.")
            yield from step_paths(step.no, f"{path}.no.")
