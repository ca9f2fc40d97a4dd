"""Deliveries and plans of one store node: adding, making ready or draft,
deleting, with the edit rules of docs/language/plans.md, in ONE place (the CLI and the HTTP API
both call this).

- A draft never runs and can be edited at any time.
- A ready one-shot plan can be edited until it is due, never after (nor made
  draft again: that would let it be edited and run a second time).
- A ready repeated plan can be edited between runs (not while a run of it is
  in progress); an edit applies from the next occurrence, since a run reads
  the plan version it was created with.
- Making a plan ready (and editing a ready one) checks it: its one-shot time
  is not past, and its segment, delivery, template and policy exist.

A refused change raises ``PlanError`` (a stable ``code``, a message that says
why) and changes nothing: each check runs in the write transaction of the
change it allows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audience.dsl.ast import DndPolicy, Program
from audience.dsl.ast_sending import DeliveryDef, Plan
from audience.dsl.errors import DslError
from audience.dsl.parser import parse
from audience.runtime.plans.clock import Clock, wall_clock
from audience.runtime.plans.definitions import (
    DRAFT,
    READY,
    RUNNING,
    PlanDefinitions,
    SavedDelivery,
    SavedPlan,
    get_plan,
)
from audience.runtime.plans.recurrence import next_occurrence, occurrences
from audience.runtime.saved import saved_segments
from audience.runtime.triggers.known import check_against, known_names, with_plans
from audience.timecalc import iso_utc

if TYPE_CHECKING:
    from audience.runtime.node import Node


class PlanError(Exception):
    """A refused request.  Codes (stable):

    - ``not_found``        no plan (delivery) of that name in the node
    - ``plan_due``         a ready one-shot plan that is due or past: no more edits
    - ``plan_running``     a run of the plan is in progress
    - ``not_ready``        the plan cannot be made ready (``problems`` says why)
    - ``delivery_in_use``  a plan sends the delivery
    - ``no_definition``    the text holds no delivery or plan
    - ``no_test_list``     a test send of a delivery without a test list
    - ``unknown_contact``  a test send's sample contact does not exist
    """

    def __init__(self, code: str, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problems = problems or []

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "problems": self.problems}


@dataclass
class AddResult:
    deliveries: list[SavedDelivery] = field(default_factory=list)
    plans: list[SavedPlan] = field(default_factory=list)


def parse_program(text: str, filename: str) -> Program:
    return parse(text, filename=filename)


def parse_plan(text: str, name: str) -> Plan:
    return _one(text, name, Plan)


def parse_delivery(text: str, name: str) -> DeliveryDef:
    return _one(text, name, DeliveryDef)


def _one(text: str, name: str, kind: type[Any]) -> Any:
    program = parse(text, filename=f"<{name}>")
    found = [d for d in program.definitions if isinstance(d, kind)]
    if len(found) != 1:
        raise ValueError(f"a saved text holds one definition; found {len(found)}")
    return found[0]


def source_of(text: str, d: Any) -> str:
    """The text of one definition (the lines its span covers)."""
    if d.span.line == 0:
        from audience.dsl.formatter import format_text

        return str(format_text(d))
    lines = text.splitlines()
    return "\n".join(lines[d.span.line - 1 : d.span.end_line]).strip() + "\n"


def is_once(plan: Plan) -> bool:
    return plan.when.kind == "once"


def lateness_ms(plan: Plan) -> int:
    """``late up to D`` (default 1 hour); a month counts 31 days."""
    from audience.dsl.ast import UNIT_SECONDS

    if plan.lateness is None:
        return 3_600_000
    unit = UNIT_SECONDS.get(plan.lateness.unit, 31 * 86_400)
    return plan.lateness.n * unit * 1000


def once_due_ms(plan: Plan) -> int | None:
    """A one-shot plan's due instant (None for a repeated plan)."""
    if not is_once(plan):
        return None
    found = occurrences(plan.when, -(2**62), 2**62)
    return found[0] if found else None


class PlanService:
    """The deliveries and plans of ``store``'s node; ``clock`` gives now (ms)."""

    def __init__(
        self, store: Node, clock: Clock = wall_clock, defs: PlanDefinitions | None = None
    ) -> None:
        self.store = store
        self.node = store.node
        self.clock = clock
        self.defs = defs if defs is not None else PlanDefinitions.for_store(store.path)

    # ------------------------------------------------------------ reading
    def list_plans(self) -> list[SavedPlan]:
        return self.defs.list_plans(self.node)

    def get_plan(self, name: str) -> SavedPlan:
        found = self.defs.get_plan(self.node, name)
        if found is None:
            raise PlanError("not_found", f"no plan named {name!r} in node {self.node!r}")
        return found

    def list_deliveries(self) -> list[SavedDelivery]:
        return self.defs.list_deliveries(self.node)

    def get_delivery(self, name: str) -> SavedDelivery:
        found = self.defs.get_delivery(self.node, name)
        if found is None:
            raise PlanError("not_found", f"no delivery named {name!r} in node {self.node!r}")
        return found

    def describe(self, saved: SavedPlan) -> dict[str, Any]:
        """A plan as JSON: its saved fields, its next occurrence, its last run."""
        try:
            plan: Plan | None = parse_plan(saved.text, saved.name)
        except (DslError, ValueError):
            plan = None  # a text the language no longer reads: shown, never run
        now = self.clock()
        nxt = None
        if plan is not None and saved.state == READY:
            nxt = next_occurrence(plan.when, max(now, saved.scanned_ms or now))
        runs = self.defs.list_runs(self.node, saved.name, limit=1)
        return {
            "name": saved.name,
            "node": saved.node,
            "state": saved.state,
            "version": saved.version,
            "text": saved.text,
            "schedule": None if plan is None else plan.when.kind,
            "next_occurrence": _iso(nxt),
            "last_run": runs[0].to_dict() if runs else None,
            "created": saved.created,
            "updated": saved.updated,
        }

    # ------------------------------------------------------------ adding
    def check(self, text: str, filename: str = "<input>") -> Program:
        """Parse and check ``text`` against the node (raises DslError)."""
        known = with_plans(known_names(self.store), self.defs, self.node)
        return check_against(self.store, parse_program(text, filename), text, filename, known)

    def add(self, text: str, filename: str = "<input>", *, plans: bool = True) -> AddResult:
        """Save every delivery of ``text`` (and, with ``plans``, every plan: a new
        one as a draft, an existing one keeping its state when the edit rules
        allow it), and the DND policies written beside them.  All or nothing."""
        program = self.check(text, filename)
        deliveries = [d for d in program.definitions if isinstance(d, DeliveryDef)]
        found = [d for d in program.definitions if isinstance(d, Plan)] if plans else []
        if not deliveries and not found:
            what = "delivery or plan" if plans else "delivery"
            raise PlanError("no_definition", f"{filename}: the text holds no {what} definition")
        beside = {d.name for d in program.definitions if isinstance(d, DeliveryDef | DndPolicy)}
        now = self.clock()
        with self.defs.transaction() as conn:
            for d in deliveries:
                self.defs.save_delivery(conn, self.node, d.name, source_of(text, d))
            for p in found:
                old = get_plan(conn, self.node, p.name)
                state = DRAFT if old is None else old.state
                if old is not None and old.state == READY:
                    self._may_edit(conn, old, now)
                    self._ready_problems_raise(p, now, beside)
                self.defs.save_plan(conn, self.node, p.name, source_of(text, p), state)
        # the DND policies written beside are saved too (as `triggers add` does);
        # after the plans, so a refused plan leaves them unsaved as well
        defined = program.definitions
        policies = [(d.name, source_of(text, d)) for d in defined if isinstance(d, DndPolicy)]
        if policies:
            self.store.triggers.defs.save_all(policies, [])
        result = AddResult()
        for d in deliveries:
            result.deliveries.append(self.get_delivery(d.name))
        for p in found:
            result.plans.append(self.get_plan(p.name))
        return result

    # ------------------------------------------------------------ states
    def make_ready(self, name: str) -> SavedPlan:
        now = self.clock()
        with self.defs.transaction() as conn:
            saved = self._plan(conn, name)
            if saved.state != READY:
                self._ready_problems_raise(parse_plan(saved.text, name), now, set())
                conn.execute(
                    "update plans set state = ?, ready_ms = ?, scanned_ms = ? "
                    "where node = ? and name = ?",
                    [READY, now, now, self.node, name],
                )
        return self.get_plan(name)

    def make_draft(self, name: str) -> SavedPlan:
        now = self.clock()
        with self.defs.transaction() as conn:
            saved = self._plan(conn, name)
            if saved.state != DRAFT:
                self._may_edit(conn, saved, now)
                conn.execute(
                    "update plans set state = ? where node = ? and name = ?",
                    [DRAFT, self.node, name],
                )
        return self.get_plan(name)

    def delete_plan(self, name: str) -> None:
        """A plan's runs stay (its history), and a running one refuses."""
        with self.defs.transaction() as conn:
            self._plan(conn, name)
            self._not_running(conn, name)
            conn.execute("delete from plans where node = ? and name = ?", [self.node, name])

    def delete_delivery(self, name: str) -> None:
        with self.defs.transaction() as conn:
            if (
                conn.execute(
                    "select 1 from delivery_defs where node = ? and name = ?", [self.node, name]
                ).fetchone()
                is None
            ):
                raise PlanError("not_found", f"no delivery named {name!r} in node {self.node!r}")
            users = [
                n
                for n, text in conn.execute(
                    "select name, text from plans where node = ?", [self.node]
                ).fetchall()
                if _sends(text, n) in (name, None)  # unreadable: may send it
            ]
            if users:
                raise PlanError(
                    "delivery_in_use",
                    f"delivery {name!r} is sent by plan(s) {', '.join(map(repr, users))}; "
                    "change or delete them first",
                )
            conn.execute("delete from delivery_defs where node = ? and name = ?", [self.node, name])

    # ------------------------------------------------------------ rules
    def _plan(self, conn: sqlite3.Connection, name: str) -> SavedPlan:
        saved = get_plan(conn, self.node, name)
        if saved is None:
            raise PlanError("not_found", f"no plan named {name!r} in node {self.node!r}")
        return saved

    def _not_running(self, conn: sqlite3.Connection, name: str) -> None:
        row = conn.execute(
            "select occurrence_ms from plan_runs where node = ? and plan = ? and state = ? "
            "order by occurrence_ms limit 1",
            [self.node, name, RUNNING],
        ).fetchone()
        if row is not None:
            raise PlanError(
                "plan_running",
                f"plan {name!r} is running its occurrence of {_iso(row[0])}; "
                "try again when the run has finished",
            )

    def _may_edit(self, conn: sqlite3.Connection, saved: SavedPlan, now: int) -> None:
        """The rules for changing a ready plan (an edit, or making it draft)."""
        self._not_running(conn, saved.name)
        plan = parse_plan(saved.text, saved.name)
        due = once_due_ms(plan)
        if due is not None and due <= now:
            raise PlanError(
                "plan_due",
                f"plan {saved.name!r} is a one-shot plan that was due at {_iso(due)}: "
                "it can no longer be changed",
            )

    def ready_problems(self, plan: Plan, now: int, beside: set[str]) -> list[str]:
        """Why ``plan`` cannot be made ready (empty: it can); ``beside`` names
        the deliveries and DND policies saved in the same request."""
        from audience.dsl.check.sending import check_plan_ready

        problems = [d.message for d in check_plan_ready(plan, now)]
        if isinstance(plan.who, str) and plan.who not in saved_segments(self.store):
            problems.append(f"segment {plan.who!r} is not saved")
        elif not isinstance(plan.who, str):
            from audience.dsl.ast import Segment

            try:
                self.store.segment_compiler.compile_segment(
                    Segment(name=plan.name, cond=plan.who, timezone=plan.when.timezone),
                    text="",
                    filename=f"<plan {plan.name!r}>",
                )
            except DslError as exc:
                problems += [d.message for d in exc.diagnostics]
        policy = plan.dnd
        if (
            policy is not None
            and policy not in beside
            and not self.store.triggers.defs.get_policy(policy)
        ):
            problems.append(f"DND policy {plan.dnd!r} is not saved")
        saved = self.defs.get_delivery(self.node, plan.send)
        if saved is None and plan.send not in beside:
            problems.append(f"delivery {plan.send!r} is not saved")
        elif saved is not None:
            d = parse_delivery(saved.text, saved.name)
            if self.store.triggers.defs.get_template(d.template) is None:
                problems.append(f"template {d.template!r} (of delivery {d.name!r}) is not saved")
        return problems

    def _ready_problems_raise(self, plan: Plan, now: int, beside: set[str]) -> None:
        problems = self.ready_problems(plan, now, beside)
        if problems:
            raise PlanError(
                "not_ready",
                f"plan {plan.name!r} cannot be ready: " + "; ".join(problems),
                problems,
            )


def _sends(text: str, name: str) -> str | None:
    """The delivery a saved plan sends (None: its text no longer reads)."""
    try:
        return parse_plan(text, name).send
    except (DslError, ValueError):
        return None


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_utc(ms, "seconds")


__all__ = [
    "AddResult",
    "PlanError",
    "PlanService",
    "is_once",
    "lateness_ms",
    "parse_delivery",
    "parse_plan",
]
