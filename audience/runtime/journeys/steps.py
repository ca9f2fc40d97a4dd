"""A journey version as the runtime walks it: its steps by stable id, the
step after each, the action a check's ``clicked "Label"`` names, and its
time zone (waits and deadlines are calendar arithmetic in it).

``Catalog`` keeps one ``Compiled`` per (journey id, version), parsed from the
version's saved text on first use (or handed over by whoever just checked it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audience.dsl.ast_journeys import (
    ActionStep,
    CheckStep,
    EndStep,
    Journey,
    StartAt,
    Step,
    WaitStep,
    step_paths,
)
from audience.dsl.errors import DslError
from audience.timecalc import to_ms, zone


class JourneyUnreadable(Exception):
    """A saved version that no longer parses (its runs cannot move)."""


@dataclass(frozen=True)
class Compiled:
    journey_id: int
    version: int
    journey: Journey
    steps: dict[str, Step]
    labels: dict[str, str]  # an action's label -> its step id
    cache: dict[str, Any] = field(default_factory=dict, compare=False)  # compiled conditions

    @classmethod
    def of(cls, journey_id: int, version: int, journey: Journey) -> Compiled:
        steps = dict(step_paths(journey.steps))
        labels = {s.label: sid for sid, s in steps.items() if isinstance(s, ActionStep)}
        return cls(journey_id, version, journey, steps, labels)

    @property
    def name(self) -> str:
        return self.journey.name

    @property
    def tz(self) -> str:
        start = self.journey.start
        return start.tz_name if isinstance(start, StartAt) else "UTC"

    def start_ms(self, live_ms: int | None) -> int | None:
        """The first instant entries count (None: not live yet)."""
        if live_ms is None:
            return None
        start = self.journey.start
        if isinstance(start, StartAt):
            return max(live_ms, to_ms(start.at.replace(tzinfo=zone(start.tz_name))))
        return live_ms

    def kind(self, step_id: str) -> str:
        step = self.steps.get(step_id)
        if isinstance(step, ActionStep):
            return "action"
        if isinstance(step, WaitStep):
            return "wait"
        if isinstance(step, CheckStep):
            return "check"
        if isinstance(step, EndStep):
            return "end"
        return "out of steps"


def next_id(step_id: str) -> str:
    """The step after ``step_id`` in its block (which may not exist: the path ends)."""
    head, _, last = step_id.rpartition(".")
    return f"{head}.{int(last) + 1}" if head else str(int(last) + 1)


def step_label(step: Step) -> str | None:
    return step.label if isinstance(step, ActionStep | CheckStep) else None


# (delivery log uid, journey id, version) -> Compiled, shared by the process's
# catalogs: versions are immutable, so whoever compiled one first serves all
_found: dict[tuple[str, int, int], Compiled] = {}
_lock = threading.Lock()


class Catalog:
    """Compiled versions by (journey id, version) of one store (its delivery
    log's ``uid``); a miss parses the version's saved text."""

    def __init__(self, text_of: Callable[[int, int], str | None], uid: str) -> None:
        self._text_of = text_of
        self._uid = uid

    def remember(self, journey_id: int, version: int, journey: Journey) -> Compiled:
        c = Compiled.of(journey_id, version, journey)
        with _lock:
            _found[(self._uid, journey_id, version)] = c
        return c

    def get(self, journey_id: int, version: int) -> Compiled:
        with _lock:
            hit = _found.get((self._uid, journey_id, version))
        if hit is not None:
            return hit
        text = self._text_of(journey_id, version)
        if text is None:
            raise JourneyUnreadable(f"journey {journey_id} has no version {version}")
        return self.remember(journey_id, version, parse_journey(text))


def parse_journey(text: str, name: str | None = None) -> Journey:
    from audience.dsl.parser import parse

    try:
        program = parse(text, filename=f"<journey {name!r}>" if name else "<journey>")
    except DslError as exc:
        raise JourneyUnreadable(str(exc)) from None
    found = [d for d in program.definitions if isinstance(d, Journey)]
    if len(found) != 1:
        raise JourneyUnreadable(f"a saved journey is one journey definition; found {len(found)}")
    return found[0]
