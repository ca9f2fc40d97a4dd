"""The scheduler: runs every ready plan's occurrences, each exactly once.

A tick (``Scheduler.tick``) reads the clock once, then:

1. For each ready plan, the occurrences due since it was last scanned get
   their run rows, in one transaction with the plan's new scan mark (rows
   are unique per (node, plan, occurrence): two schedulers insert one).  An
   occurrence more than the plan's lateness late is recorded ``missed``;
   several due within the lateness run once, as the latest of them (the
   others are recorded ``merged``).
2. Each ``running`` row whose lease it can take (a free one, or one whose
   holder died and let it expire) is run or resumed (runner.py).
3. The journeys of every node with a live one advance: their runs due by
   now wake, segment entries are checked (audience.runtime.journeys).
4. Custom audience syncs that are due are queued, and queued sync jobs run
   (audience.integrations.meta.sync.worker), when the store has integrations;
   in the long-running loop, in a thread of their own (one pass at a time),
   whose report lines join the next tick's.
5. The integrations' reminders now due become webhook deliveries, once each
   (audience.integrations.meta.reminders), when the store has integrations.
   A failing step 4 or 5 (an unreadable integrations file, say) is logged
   and never stops the plans' runs: the next tick tries it again.

``run_scheduler`` ticks until stopped, at most a second apart (sooner when
a run is due sooner), so a due run starts within a second.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audience.dsl.ast_sending import Plan
from audience.dsl.errors import DslError
from audience.runtime.delivery import DeliveryLog
from audience.runtime.plans.clock import Clock, wall_clock
from audience.runtime.plans.definitions import (
    MERGED,
    MISSED,
    READY,
    RUNNING,
    PlanDefinitions,
    PlanRun,
    get_plan,
)
from audience.runtime.plans.recurrence import next_occurrence, occurrences
from audience.runtime.plans.runner import LeaseLost, Runner
from audience.runtime.plans.service import lateness_ms, parse_plan
from audience.timecalc import iso_utc

if TYPE_CHECKING:
    from audience.integrations.meta.reminders import Raised
    from audience.runtime.journeys.definitions import JourneyDefinitions
    from audience.runtime.journeys.engine import AdvanceReport, JourneyRuntime
    from audience.runtime.node import Node

POLL_S = 1.0
log = logging.getLogger("audience.plans")


@dataclass
class TickReport:
    now_ms: int
    created: list[tuple[str, str, int, str]] = field(default_factory=list)  # node, plan, t, state
    ran: list[PlanRun] = field(default_factory=list)
    lost: int = 0  # runs another scheduler took over mid-way
    journeys: dict[str, AdvanceReport] = field(default_factory=dict)  # per node
    sync_jobs: list[str] = field(default_factory=list)  # one line per sync job run
    reminders: list[Raised] = field(default_factory=list)  # integration reminders raised

    def lines(self) -> list[str]:
        out = []
        for node, plan, t, state in self.created:
            if state != RUNNING:
                out.append(f"{node}/{plan} {_iso(t)}: {state}")
        for r in self.ran:
            c = r.counts
            out.append(
                f"{r.node}/{r.plan} {_iso(r.occurrence_ms)}: {r.state}, audience "
                f"{c.get('audience', 0)}, without email {c.get('without_email', 0)}, "
                f"reserved {c.get('reserved', 0)}, deferred {c.get('deferred', 0)}, "
                f"suppressed {c.get('suppressed', 0)}" + (f" ({r.note})" if r.note else "")
            )
        for node, j in self.journeys.items():
            if j.woken or j.entered or j.failed:
                out += [f"{node} journeys {line}" for line in j.lines()]
        for raised in self.reminders:
            if raised.new:
                out.append(f"reminder {raised.reminder.key}: webhook delivery {raised.delivery_id}")
        return out + self.sync_jobs


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Scheduler:
    """Over the store at ``root`` (every node).  ``clock``: now in epoch ms."""

    def __init__(
        self,
        root: Path | str,
        *,
        clock: Clock = wall_clock,
        lease_s: float = 60.0,
        batch_size: int | None = None,
        after_chunk: Callable[[PlanRun, int], None] | None = None,
        log: DeliveryLog | None = None,
        background_syncs: bool = False,
        cluster: Any = None,
        cluster_workers: int | None = None,
    ) -> None:
        self.root = Path(root)
        # sharded nodes' plans evaluated on a Dask cluster (audience.dist):
        # "local", a scheduler address or a Client; connected on first use
        self.cluster = cluster
        self._client: Any = None
        self._local: Any = None
        self._clusters: dict[str, Any] = {}
        if cluster is not None:  # reached now: a wrong address fails here, not in a run
            from audience.dist import LocalOptions, connect

            self._client, self._local = connect(cluster, LocalOptions(workers=cluster_workers))
        self.clock = clock
        # the long-running loop uploads in a thread: a big sync never delays a plan
        self.background_syncs = background_syncs
        self._sync_thread: threading.Thread | None = None
        self._sync_lines: list[str] = []
        self._sync_lock = threading.Lock()
        self.defs = PlanDefinitions.for_store(self.root)
        self._own_log = log is None
        self.log = log if log is not None else DeliveryLog.open(self.root)
        self.holder = new_holder()
        self._stores: dict[str, Node] = {}
        self._plans: dict[tuple[str, str, int], Plan | None] = {}
        self._journeys: dict[str, JourneyRuntime] = {}
        self._journey_defs: JourneyDefinitions | None = None
        self.runner = Runner(
            self.root,
            self.defs,
            self.log,
            self.store_for,
            clock,
            self.holder,
            lease_ms=int(lease_s * 1000),
            batch_size=batch_size,
            after_chunk=after_chunk,
            cluster_for=self.cluster_for if cluster is not None else None,
        )

    def close(self) -> None:
        self.defs.close()
        if self._own_log:
            self.log.close()
        if self._client is not None and self._client is not self.cluster:
            self._client.close()  # ours, not the caller's
        if self._local is not None:
            self._local.close()
        self._client = self._local = None

    def cluster_for(self, node: str) -> Any:
        """The ``ClusterStore`` of a sharded node (None for a plain one)."""
        from audience.runtime.node import ShardedNode

        store = self.store_for(node)
        if self.cluster is None or not isinstance(store, ShardedNode):
            return None
        if node not in self._clusters:
            from audience.dist import ClusterStore

            self._clusters[node] = ClusterStore(store, self._client)
        return self._clusters[node]

    def store_for(self, node: str) -> Node:
        from audience.runtime.node import open_node

        if node not in self._stores:
            self._stores[node] = open_node(self.root, node)
        return self._stores[node]

    def _plan(self, node: str, name: str, version: int, text: str) -> Plan | None:
        """The saved plan's AST; None (and an error logged once) when its text
        no longer parses: the other plans still run."""
        key = (node, name, version)
        if key not in self._plans:
            try:
                self._plans[key] = parse_plan(text, name)
            except (DslError, ValueError) as exc:
                log.error("plan %r of node %r cannot run: %s", name, node, exc)
                self._plans[key] = None
        return self._plans[key]

    # ------------------------------------------------------------------ a tick
    def tick(self) -> TickReport:
        report = TickReport(self.clock())
        self.schedule(report)
        for run in self.defs.runs_in_state(RUNNING):
            if not self.defs.take_lease(run.id, self.holder, self.clock(), self.runner.lease_ms):
                continue  # another scheduler holds it
            try:
                report.ran.append(self.runner.run(self.defs.get_run(run.id) or run))
            except LeaseLost:
                report.lost += 1
        self.journeys(report)
        self.syncs(report)
        self.reminders(report)
        return report

    def syncs(self, report: TickReport) -> None:
        """Step 4: the custom audience syncs' due runs and queued jobs."""
        from audience.integrations.meta.sync.worker import has_syncs, run_jobs

        if not has_syncs(self.root):
            return
        if not self.background_syncs:
            try:
                report.sync_jobs += run_jobs(self.root, self.clock, self.holder)
            except Exception:  # e.g. an unreadable integrations file: the plans still run
                log.exception("the custom audience syncs could not run")
            return
        with self._sync_lock:
            report.sync_jobs += self._sync_lines
            self._sync_lines = []
        if self._sync_thread is None or not self._sync_thread.is_alive():
            self._sync_thread = threading.Thread(
                target=self._sync_pass, name="audience-syncs", daemon=True
            )
            self._sync_thread.start()

    def _sync_pass(self) -> None:
        from audience.integrations.meta.sync.worker import run_jobs

        try:
            lines = run_jobs(self.root, self.clock, self.holder)
        except Exception:  # the next pass retries; a held job's lease lets another take it
            log.exception("the custom audience syncs could not run")
            return
        with self._sync_lock:
            self._sync_lines += lines

    def reminders(self, report: TickReport) -> None:
        """Step 5: the Meta integrations' due reminders become webhook deliveries."""
        from audience.integrations.meta.reminders import raise_for_store

        try:
            report.reminders = raise_for_store(self.root, self.log, lambda: report.now_ms)
        except Exception:  # e.g. an unreadable integrations file: the plans still run
            log.exception("the integration reminders could not be raised")

    def journeys(self, report: TickReport) -> None:
        """Step 3: every node's live journeys advance to now."""
        from audience.runtime.journeys.engine import JourneyRuntime

        for node in self._journey_nodes():
            if node not in self._journeys:
                self._journeys[node] = JourneyRuntime(self.store_for(node), self.clock, self.log)
            report.journeys[node] = self._journeys[node].advance(report.now_ms)

    def _journey_nodes(self) -> list[str]:
        from audience.runtime.journeys.definitions import LIVE, JourneyDefinitions

        if self._journey_defs is None:
            self._journey_defs = JourneyDefinitions(self.log)
        return sorted({j.node for j in self._journey_defs.journeys() if j.state == LIVE})

    def schedule(self, report: TickReport) -> None:
        """Step 1: the run rows of the occurrences due by ``report.now_ms``."""
        now = report.now_ms
        for saved in self.defs.list_plans():
            if saved.state != READY:
                continue
            plan = self._plan(saved.node, saved.name, saved.version, saved.text)
            if plan is None:
                continue
            after = saved.scanned_ms if saved.scanned_ms is not None else saved.ready_ms or now
            due = occurrences(plan.when, after, now)
            if not due:
                continue
            late = lateness_ms(plan)
            fresh = [t for t in due if now - t <= late]
            with self.defs.transaction() as conn:
                cur = get_plan(conn, saved.node, saved.name)
                if cur is None or (cur.state, cur.version, cur.scanned_ms) != (
                    READY,
                    saved.version,
                    saved.scanned_ms,
                ):
                    continue  # changed meanwhile: the next tick sees the new one
                for t in due:
                    if fresh and t == fresh[-1]:
                        state, note = RUNNING, None
                    elif t in fresh:
                        state, note = MERGED, f"run once with the occurrence of {_iso(fresh[-1])}"
                    else:
                        state, note = MISSED, f"no scheduler ran it within {span_text(late)}"
                    cursor = conn.execute(
                        "insert or ignore into plan_runs (node, plan, occurrence_ms, version, "
                        "state, created_ms, note) values (?, ?, ?, ?, ?, ?, ?)",
                        [saved.node, saved.name, t, saved.version, state, now, note],
                    )
                    if cursor.rowcount:
                        report.created.append((saved.node, saved.name, t, state))
                conn.execute(
                    "update plans set scanned_ms = ? where node = ? and name = ?",
                    [max(now, after), saved.node, saved.name],
                )

    def next_due_ms(self) -> int | None:
        """The earliest next occurrence of a ready plan (for the sleep between ticks)."""
        best: int | None = None
        for saved in self.defs.list_plans():
            if saved.state != READY:
                continue
            plan = self._plan(saved.node, saved.name, saved.version, saved.text)
            if plan is None:
                continue
            t = next_occurrence(plan.when, saved.scanned_ms or saved.ready_ms or 0)
            if t is not None and (best is None or t < best):
                best = t
        return best


def run_scheduler(
    root: Path | str,
    *,
    clock: Clock = wall_clock,
    once: bool = False,
    poll_s: float = POLL_S,
    stop: threading.Event | None = None,
    lease_s: float = 60.0,
    on_tick: Callable[[TickReport], Any] | None = None,
    cluster: Any = None,
    cluster_workers: int | None = None,
) -> None:
    """Tick until ``stop`` is set (``once``: one tick).  Sleeps at most
    ``poll_s`` between ticks, and less when an occurrence is due sooner.
    ``cluster``: sharded nodes' plans evaluated there (``Scheduler``)."""
    stop = stop or threading.Event()
    sched = Scheduler(
        root,
        clock=clock,
        lease_s=lease_s,
        background_syncs=not once,
        cluster=cluster,
        cluster_workers=cluster_workers,
    )
    try:
        while not stop.is_set():
            try:
                report = sched.tick()
            except Exception:  # e.g. a file it could not read: the next tick retries
                if once:
                    raise
                log.exception("a scheduler tick failed")
                stop.wait(poll_s)
                continue
            if on_tick is not None:
                on_tick(report)
            if once:
                break
            wait = poll_s
            nxt = sched.next_due_ms()
            if nxt is not None:
                wait = min(wait, max(0.0, (nxt - clock()) / 1000))
            stop.wait(wait)
    finally:
        sched.close()


def _iso(ms: int) -> str:
    return iso_utc(ms, "seconds")


def span_text(ms: int) -> str:
    """``3600000`` as ``1 hour``: the largest unit that divides it."""
    for unit, size in (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000)):
        if ms >= size and ms % size == 0:
            n = ms // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{ms / 1000:g} seconds"
