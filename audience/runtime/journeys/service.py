"""Journeys of one store node: adding, states, positions, history, dry runs,
in ONE place (the CLI and the HTTP API both call this).

States: a new journey is a ``draft`` (takes no entries; editing replaces it).
``go_live`` makes it ``live`` (entries count from that moment, or from its
``start at``); ``pause`` stops entries and moves (waiting runs wait; on
``go_live`` again their checks are decided by the events' own times, so a
deadline that passed during the pause is decided as if it had not); ``end``
stops every run for good.  Editing a live or paused journey saves a new
version: new entries take it, runs already inside stay on theirs.

A refused request raises ``JourneyError`` (a stable ``code``, a message that
says why) and changes nothing.
"""

from __future__ import annotations

import builtins
import json
from typing import TYPE_CHECKING, Any

from audience.dsl.ast import Program
from audience.dsl.ast_journeys import EnterSegment, Journey, step_paths
from audience.runtime.journeys.definitions import (
    DRAFT,
    ENDED,
    LIVE,
    PAUSED,
    STOPPED,
    WAITING,
    JourneyDefinitions,
    SavedJourney,
)
from audience.runtime.journeys.engine import AdvanceReport, JourneyRuntime
from audience.runtime.journeys.steps import Compiled, step_label
from audience.runtime.plans.clock import Clock, wall_clock
from audience.runtime.plans.service import parse_program, source_of

if TYPE_CHECKING:
    from audience.runtime.journeys.dryrun import DryRunReport
    from audience.runtime.node import Node


class JourneyError(Exception):
    """A refused request.  Codes (stable):

    - ``not_found``       no journey of that name in the node
    - ``no_definition``   the text holds no journey
    - ``bad_state``       the request does not apply in the journey's state
    - ``not_ready``       it cannot go live (``problems`` says why)
    - ``ended``           an ended journey is not edited
    """

    def __init__(self, code: str, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = problems or []

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "problems": self.problems}


class JourneyService:
    def __init__(
        self, store: Node, clock: Clock = wall_clock, defs: JourneyDefinitions | None = None
    ) -> None:
        self.store = store
        self.node = store.node
        self.clock = clock
        self.runtime = JourneyRuntime(store, clock, defs=defs)
        self.defs = self.runtime.defs

    # ------------------------------------------------------------ definitions
    def check(self, text: str, filename: str = "<input>") -> Program:
        from audience.runtime.triggers.known import check_against, known_names, with_plans

        known = with_plans(known_names(self.store), self.runtime.plan_defs, self.node)
        return check_against(self.store, parse_program(text, filename), text, filename, known)

    def add(self, text: str, filename: str = "<input>") -> list[SavedJourney]:
        program = self.check(text, filename)
        found = [d for d in program.definitions if isinstance(d, Journey)]
        if not found:
            raise JourneyError("no_definition", f"{filename} holds no journey")
        return [self.save(j, source_of(text, j)) for j in found]

    def save(self, journey: Journey, text: str) -> SavedJourney:
        """Save one checked journey: new, a draft replaced, or a new version of
        a live or paused one."""
        now = self.clock()
        steps = [sid for sid, _ in step_paths(journey.steps)]
        with self.defs.transaction() as conn:
            row = conn.execute(
                "select id, state, version from journeys where node = ? and name = ?",
                [self.node, journey.name],
            ).fetchone()
            if row is None:
                cur = conn.execute(
                    "insert into journeys (node, name, state, version, created_ms, updated_ms) "
                    "values (?, ?, ?, 1, ?, ?)",
                    [self.node, journey.name, DRAFT, now, now],
                )
                jid, version = int(cur.lastrowid or 0), 1
            else:
                jid, state, old = int(row[0]), row[1], int(row[2])
                if state == ENDED:
                    raise JourneyError(
                        "ended", f"journey {journey.name!r} has ended: save it under a new name"
                    )
                version = old + 1  # a version number is never reused
                if state == DRAFT:  # nobody entered a draft: it is replaced
                    conn.execute(
                        "delete from journey_versions where journey_id = ? and version = ?",
                        [jid, old],
                    )
                conn.execute(
                    "update journeys set version = ?, updated_ms = ? where id = ?",
                    [version, now, jid],
                )
            conn.execute(
                "insert into journey_versions (journey_id, version, text, steps, created_ms) "
                "values (?, ?, ?, ?, ?)",
                [jid, version, text, json.dumps(steps), now],
            )
        self.runtime.catalog.remember(jid, version, journey)
        return self.get(journey.name)

    # ------------------------------------------------------------ reading
    def list(self) -> list[SavedJourney]:
        return self.defs.journeys(self.node)

    def get(self, name: str) -> SavedJourney:
        saved = self.defs.get(self.node, name)
        if saved is None:
            raise JourneyError("not_found", f"no journey named {name!r}")
        return saved

    def describe(self, saved: SavedJourney) -> dict[str, Any]:
        out = saved.to_dict()
        out["versions"] = self.defs.versions(saved.id)
        out["steps"] = self.step_counts(saved.name)
        rows = self.defs.read(
            "select state, count(*) from journey_runs where journey_id = ? group by state",
            [saved.id],
        )
        out["runs"] = {state: n for state, n in rows}
        return out

    def step_counts(self, name: str) -> builtins.list[dict[str, Any]]:
        """Per step id of the current version: how many runs reached it (over
        every version), wait there now, and ended there."""
        saved = self.get(name)
        return step_counts(self.defs, self.runtime.compiled(saved), saved.id)

    def position(self, name: str, contact_id: str) -> builtins.list[dict[str, Any]]:
        saved = self.get(name)
        return [r.to_dict() for r in self.defs.runs_of(saved.id, contact_id)]

    def history(self, name: str, contact_id: str) -> builtins.list[dict[str, Any]]:
        saved = self.get(name)
        return self.defs.step_log([r.id for r in self.defs.runs_of(saved.id, contact_id)])

    # ------------------------------------------------------------ states
    def go_live(self, name: str) -> SavedJourney:
        saved = self.get(name)
        if saved.state == LIVE:
            return saved
        if saved.state not in (DRAFT, PAUSED):
            raise JourneyError(
                "bad_state", f"journey {name!r} has {saved.state}: it cannot go live"
            )
        c = self.runtime.compiled(saved)
        problems = self.ready_problems(c)
        if problems:
            raise JourneyError("not_ready", f"journey {name!r} cannot go live", problems)
        now = self.clock()
        self._set_state(saved, (DRAFT, PAUSED), LIVE, live_ms=now)
        if saved.state == PAUSED:
            self.runtime.resume(saved.id, now)
        elif isinstance(c.journey.entry, EnterSegment):
            # the members at going live are the baseline: later joiners enter
            self.runtime.segment_entries(now, AdvanceReport(now), only=saved.id)
        return self.get(name)

    def ready_problems(self, c: Compiled) -> builtins.list[str]:
        """What is missing for the journey to run: deliveries, policy, segment."""
        from audience.dsl.ast_journeys import ActionStep
        from audience.runtime.node import ShardedNode

        problems = []
        if isinstance(self.store, ShardedNode):
            problems.append(
                f"node '{self.node}' is sharded ({self.store.count} shards): journeys do not "
                "work on a sharded node yet"
            )
        for sid, step in c.steps.items():
            send = step.send if isinstance(step, ActionStep) else None
            if send is not None and self.runtime.plan_defs.get_delivery(self.node, send) is None:
                problems.append(f"step {sid}: delivery {send!r} is not saved")
        if c.journey.dnd is not None and self.store.triggers.policy(c.journey.dnd) is None:
            problems.append(f"DND policy {c.journey.dnd!r} is not saved")
        entry = c.journey.entry
        if isinstance(entry, EnterSegment) and self.store.get_segment(entry.segment) is None:
            problems.append(f"segment {entry.segment!r} is not saved")
        return problems

    def pause(self, name: str) -> SavedJourney:
        saved = self.get(name)
        if saved.state == PAUSED:
            return saved
        self._set_state(saved, (LIVE,), PAUSED)
        return self.get(name)

    def end(self, name: str) -> SavedJourney:
        saved = self.get(name)
        if saved.state == ENDED:
            return saved
        now = self.clock()
        with self.defs.transaction() as conn:
            self._check_state(conn, saved, (DRAFT, LIVE, PAUSED))
            conn.execute(
                "update journeys set state = ?, updated_ms = ? where id = ?", [ENDED, now, saved.id]
            )
            conn.execute(
                "insert into journey_steps (run_id, step, seq, kind, at_ms, outcome) "
                "select id, step, (select coalesce(max(seq) + 1, 0) from journey_steps s "
                "where s.run_id = journey_runs.id and s.step = journey_runs.step), "
                "'stopped', ?, '{\"why\": \"the journey ended\"}' from journey_runs "
                "where journey_id = ? and state = ?",
                [now, saved.id, WAITING],
            )
            conn.execute(
                "update journey_runs set state = ?, finished_ms = ?, waits = null, "
                "wake_ms = null, watch = null where journey_id = ? and state = ?",
                [STOPPED, now, saved.id, WAITING],
            )
        return self.get(name)

    def delete(self, name: str) -> None:
        saved = self.get(name)
        with self.defs.transaction() as conn:
            self._check_state(conn, saved, (DRAFT, ENDED))
            runs = "select id from journey_runs where journey_id = ?"
            conn.execute(f"delete from journey_steps where run_id in ({runs})", [saved.id])
            for table in ("journey_runs", "journey_versions", "journey_segments"):
                conn.execute(f"delete from {table} where journey_id = ?", [saved.id])
            conn.execute("delete from journeys where id = ?", [saved.id])

    def _check_state(self, conn: Any, saved: SavedJourney, allowed: tuple[str, ...]) -> None:
        row = conn.execute("select state from journeys where id = ?", [saved.id]).fetchone()
        if row is None:
            raise JourneyError("not_found", f"no journey named {saved.name!r}")
        if row[0] not in allowed:
            raise JourneyError(
                "bad_state",
                f"journey {saved.name!r} is {row[0]}; this needs it " + " or ".join(allowed),
            )

    def _set_state(
        self, saved: SavedJourney, allowed: tuple[str, ...], state: str, live_ms: int | None = None
    ) -> None:
        with self.defs.transaction() as conn:
            self._check_state(conn, saved, allowed)
            conn.execute(
                "update journeys set state = ?, updated_ms = ?, live_ms = coalesce(live_ms, ?) "
                "where id = ?",
                [state, self.clock(), live_ms, saved.id],
            )

    # ------------------------------------------------------------ running
    def enter(self, name: str, contact_id: str) -> dict[str, Any]:
        """Enter ``contact_id`` now (what ``enter_journey`` does)."""
        saved = self.get(name)
        now = self.clock()
        report = AdvanceReport(now)
        ((run, why),) = self.runtime.enter_many(
            [(saved, contact_id, now, f"api:{now}:{contact_id}")], now, report
        )
        return {
            "journey": name,
            "contact_id": contact_id,
            "entered": run is not None,
            "why_not": why or None,
            "run": None if run is None else run.to_dict(),
        }

    def advance(self, now_ms: int | None = None) -> AdvanceReport:
        return self.runtime.advance(now_ms)

    def dry_run(
        self, name: str, since_ms: int, until_ms: int, contact: str | None = None
    ) -> DryRunReport:
        from audience.runtime.journeys.dryrun import dry_run

        saved = self.get(name)
        return dry_run(self, saved, since_ms, until_ms, contact)


def step_counts(defs: JourneyDefinitions, c: Compiled, journey_id: int) -> list[dict[str, Any]]:
    reached = dict(
        defs.read(
            "select s.step, count(distinct s.run_id) from journey_steps s join journey_runs r "
            "on r.id = s.run_id where r.journey_id = ? and s.kind != 'entered' group by s.step",
            [journey_id],
        )
    )
    per_state: dict[tuple[str, str], int] = {
        (step, state): n
        for step, state, n in defs.read(
            "select step, state, count(*) from journey_runs where journey_id = ? "
            "group by step, state",
            [journey_id],
        )
    }
    out = []
    for sid, step in c.steps.items():
        out.append(
            {
                "step": sid,
                "label": step_label(step),
                "kind": c.kind(sid),
                "entered": int(reached.get(sid, 0)),
                "waiting": per_state.get((sid, WAITING), 0),
                "done": sum(n for (s, st), n in per_state.items() if s == sid and st != WAITING),
            }
        )
    return out
