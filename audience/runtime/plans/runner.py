"""One run of a plan occurrence (docs/language/plans.md), resumable after a crash.

1. Freeze.  The plan's segment is evaluated as of the occurrence's due
   instant; contacts without an email are counted and left out; the rest
   (contact, email, the delivery's profile fields) are written to
   STORE/plans/runs/RUN.arrow before the run row says ``frozen``.  A resumed
   run reads that file, so the audience is the one of the run's start.
2. Record, chunk by chunk (``batch_size`` contacts): the delivery log's
   ``reserve_batch`` checks the DND policy and records the chunk's
   deliveries in one transaction under the key prefix
   ``plan:NODE:PLAN:OCCURRENCE:CHUNK:`` (a key per contact); the same prefix
   again records nothing.  Then the run's cursor moves past the chunk, with
   its lease renewed.  A crash between the two replays the chunk, which the
   log answers from what it recorded: no contact twice, none lost.
3. Done: the state and counts are written, the file removed.

Every step first checks the lease (``holder``); one lost to another
scheduler (this one stalled past it) stops the run here: the other resumes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.ipc as ipc

from audience.dsl.ast import Segment
from audience.dsl.ast_sending import DeliveryDef, Plan
from audience.dsl.errors import DslError
from audience.runtime.delivery import DeliveryLog, Policy
from audience.runtime.plans.clock import Clock
from audience.runtime.plans.definitions import DONE, FAILED, PlanDefinitions, PlanRun
from audience.runtime.plans.frozen import freeze_audience
from audience.runtime.plans.render import Renderer, RunFailed
from audience.runtime.plans.service import parse_delivery, parse_plan

if TYPE_CHECKING:
    from audience.runtime.node import Node

DEFAULT_BATCH = 1_000_000  # contacts per chunk: a chunk is checked against the ones before it
# test-only: smaller chunks, and a halt after N chunks (to kill a run mid-way)
BATCH_ENV = "AUDIENCE_PLANS_BATCH"
HALT_ENV = "AUDIENCE_PLANS_TEST_HALT_AFTER"


class LeaseLost(Exception):
    """Another scheduler took the run over: this one stops touching it."""


@dataclass
class Runner:
    """What runs need: the definitions, the log, the node's stores, the clock."""

    root: Path | None
    defs: PlanDefinitions
    log: DeliveryLog
    store_for: Callable[[str], Node]
    clock: Clock
    holder: str
    lease_ms: int = 60_000
    batch_size: int | None = None
    # a sharded node's Dask cluster (an audience.dist.ClusterStore), or None
    cluster_for: Callable[[str], Any] | None = None
    # test hook: called after a chunk is recorded, before the cursor moves
    after_chunk: Callable[[PlanRun, int], None] | None = None
    _frozen_mem: dict[int, pa.Table] = field(default_factory=dict)

    def run(self, run: PlanRun) -> PlanRun:
        """Run (or resume) ``run``, whose lease this runner holds; returns its row."""
        try:
            if not run.frozen:
                self._freeze(run)
            self._record(self._reload(run))
        except RunFailed as exc:
            self._update(run, state=FAILED, note=str(exc), finished_ms=self.clock())
            self._drop_frozen(run)
        return self._reload(run)

    # ------------------------------------------------------------------ freeze
    def _freeze(self, run: PlanRun) -> None:
        plan = self._plan(run)
        saved = self.defs.get_delivery(run.node, plan.send)
        if saved is None:
            raise RunFailed(f"delivery {plan.send!r} is not saved")
        delivery = _delivery(saved.text, saved.name)
        store = self.store_for(run.node)
        try:
            segment = store.segment_compiler.compile_segment(
                Segment(name=plan.name, cond=_who(plan), timezone=plan.when.timezone),
                text="",
                filename=f"<plan {plan.name!r}>",
            )
        except DslError as exc:
            raise RunFailed(f"the plan's audience cannot be evaluated: {exc}") from None
        cluster = None if self.cluster_for is None else self.cluster_for(run.node)
        frozen = freeze_audience(store, segment, run.occurrence_ms, delivery, cluster=cluster)
        table = frozen.table
        bs = self.batch_size or int(os.environ.get(BATCH_ENV) or DEFAULT_BATCH)
        self._write_frozen(run, table)
        counts = {"audience": frozen.members, "without_email": frozen.without}
        self._update(
            run,
            frozen=1,
            total=table.num_rows,
            batch_size=max(1, bs),
            delivery_version=saved.version,
            counts=counts,
        )

    # ------------------------------------------------------------------ record
    def _record(self, run: PlanRun) -> None:
        plan = self._plan(run)
        assert run.delivery_version is not None and run.batch_size is not None
        text = self.defs.delivery_version(run.node, plan.send, run.delivery_version)
        if text is None:
            raise RunFailed(f"delivery {plan.send!r} version {run.delivery_version} is gone")
        delivery = _delivery(text, plan.send)
        store = self.store_for(run.node)
        policy = self._policy(store, plan)
        render = Renderer(store, delivery, run.delivery_version, plan, run.occurrence_ms)
        table = self._read_frozen(run)
        counts = dict(run.counts)
        halt = int(os.environ.get(HALT_ENV) or 0)
        chunks = math.ceil(table.num_rows / run.batch_size)
        for i in range(run.cursor, chunks):
            self._renew(run)
            part = table.slice(i * run.batch_size, run.batch_size)
            cids, emails, payloads, failed = render.chunk(part)
            got = self.log.reserve_batch(
                run.node,
                cids,
                emails,
                policy,
                run.occurrence_ms,
                payloads,
                f"plan:{plan.name}",
                f"plan:{run.node}:{plan.name}:{run.occurrence_ms}:{i}:",
                now_ms=self.clock(),
            )
            if self.after_chunk is not None:
                self.after_chunk(run, i)
            if halt and i + 1 >= halt:
                _halt(self.root, run)
            _add_counts(counts, got, failed)
            self._update(run, cursor=i + 1, counts=counts)
        self._update(run, state=DONE, finished_ms=self.clock(), counts=counts)
        self._drop_frozen(run)

    def _policy(self, store: Node, plan: Plan) -> Policy | None:
        if plan.dnd is None:
            return None
        pol = store.triggers.policy(plan.dnd)
        if pol is None:
            raise RunFailed(f"DND policy {plan.dnd!r} is not saved: nothing is sent without it")
        return pol

    # ------------------------------------------------------------------ rows
    def _plan(self, run: PlanRun) -> Plan:
        text = self.defs.plan_version(run.node, run.plan, run.version)
        if text is None:
            raise RunFailed(f"plan version {run.version} is gone")
        try:
            return parse_plan(text, run.plan)
        except (DslError, ValueError) as exc:
            raise RunFailed(f"the plan's text no longer reads: {exc}") from None

    def _reload(self, run: PlanRun) -> PlanRun:
        found = self.defs.get_run(run.id)
        assert found is not None
        return found

    def _renew(self, run: PlanRun) -> None:
        if not self.defs.take_lease(run.id, self.holder, self.clock(), self.lease_ms):
            raise LeaseLost(f"run {run.id}: lease lost")

    def _update(self, run: PlanRun, **values: Any) -> None:
        if "counts" in values or "state" in values:
            values["lease_until"] = self.clock() + self.lease_ms
        if not self.defs.update_run(run.id, self.holder, **values):
            raise LeaseLost(f"run {run.id}: lease lost")

    # ------------------------------------------------------------------ files
    def _path(self, run: PlanRun) -> Path | None:
        return None if self.root is None else self.root / "plans" / "runs" / f"{run.id}.arrow"

    def _write_frozen(self, run: PlanRun, table: pa.Table) -> None:
        path = self._path(run)
        if path is None:
            self._frozen_mem[run.id] = table
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{self.holder.replace(':', '_')}.tmp")
        with pa.OSFile(str(tmp), "wb") as f, ipc.new_file(f, table.schema) as w:
            w.write_table(table)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _read_frozen(self, run: PlanRun) -> pa.Table:
        path = self._path(run)
        if path is None:
            return self._frozen_mem[run.id]
        with pa.memory_map(str(path)) as src:
            return ipc.open_file(src).read_all()

    def _drop_frozen(self, run: PlanRun) -> None:
        path = self._path(run)
        if path is None:
            self._frozen_mem.pop(run.id, None)
        elif path.exists():
            path.unlink()


def _delivery(text: str, name: str) -> DeliveryDef:
    try:
        return parse_delivery(text, name)
    except (DslError, ValueError) as exc:
        raise RunFailed(f"delivery {name!r} no longer reads: {exc}") from None


def _who(plan: Plan) -> Any:
    from audience.dsl.ast import InSegment

    return InSegment(plan.who) if isinstance(plan.who, str) else plan.who


def _halt(root: Path | None, run: PlanRun) -> None:
    """Test-only: say where the run stopped, then wait to be killed."""
    import time

    if root is not None:
        (root / "plans" / f"halted-{run.id}").write_text("halted\n")
    while True:
        time.sleep(3600)


def _add_counts(counts: dict[str, Any], got: dict[str, Any], failed: int) -> None:
    for k in ("reserved", "deferred", "suppressed"):
        counts[k] = counts.get(k, 0) + int(got.get(k, 0))
    by_cap = counts.setdefault("by_cap", {})
    for cap, n in (got.get("by_cap") or {}).items():
        by_cap[cap] = by_cap.get(cap, 0) + int(n)
    if failed:
        counts["render_failed"] = counts.get("render_failed", 0) + failed
