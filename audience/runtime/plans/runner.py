"""One run of a plan occurrence (SPEC 6.2), resumable after a crash.

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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from audience.dsl.ast import MapValue, Ref, Segment
from audience.dsl.ast_sending import DeliveryDef, Plan
from audience.dsl.errors import DslError
from audience.runtime.delivery import DeliveryLog, Policy
from audience.runtime.delivery.model import dumps
from audience.runtime.plans.clock import Clock
from audience.runtime.plans.definitions import DONE, FAILED, PlanDefinitions, PlanRun
from audience.runtime.plans.service import parse_delivery, parse_plan
from audience.runtime.snapshot import Snapshot, dictionary_key
from audience.runtime.triggers.actions import literal
from audience.runtime.triggers.batch import column_value
from audience.runtime.triggers.templates import CompiledTemplate, TemplateError, compiled

if TYPE_CHECKING:
    from audience.runtime.store import Store

DEFAULT_BATCH = 250_000
# test-only: smaller chunks, and a halt after N chunks (to kill a run mid-way)
BATCH_ENV = "AUDIENCE_PLANS_BATCH"
HALT_ENV = "AUDIENCE_PLANS_TEST_HALT_AFTER"
FIELD_PREFIX = "f."


class LeaseLost(Exception):
    """Another scheduler took the run over: this one stops touching it."""


class RunFailed(Exception):
    """The run cannot go on (a deleted delivery, a template that does not render)."""


@dataclass
class Runner:
    """What runs need: the definitions, the log, the node's stores, the clock."""

    root: Path | None
    defs: PlanDefinitions
    log: DeliveryLog
    store_for: Callable[[str], Store]
    clock: Clock
    holder: str
    lease_ms: int = 60_000
    batch_size: int | None = None
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
        delivery = parse_delivery(saved.text, saved.name)
        store = self.store_for(run.node)
        snapshot = store.snapshot()
        try:
            segment = store.segment_compiler.compile_segment(
                Segment(name=plan.name, cond=_who(plan), timezone=plan.when.timezone),
                text="",
                filename=f"<plan {plan.name!r}>",
            )
        except DslError as exc:
            raise RunFailed(f"the plan's audience cannot be evaluated: {exc}") from None
        audience = segment.compiled.evaluate(snapshot, run.occurrence_ms)
        table, without = frozen_table(snapshot, audience.indexes(), delivery)
        bs = self.batch_size or int(os.environ.get(BATCH_ENV) or DEFAULT_BATCH)
        self._write_frozen(run, table)
        counts = {"audience": len(audience), "without_email": without}
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
        delivery = parse_delivery(text, plan.send)
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

    def _policy(self, store: Store, plan: Plan) -> Policy | None:
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
        return parse_plan(text, run.plan)

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


# ---------------------------------------------------------------------- audience


def profile_values(snapshot: Snapshot, name: str, idx: np.ndarray) -> pa.Array:
    """Profile property ``name`` of the dense contacts ``idx`` (null: missing)."""
    col = snapshot.profile.get(name)
    n = len(idx)
    if col is None:
        return pa.nulls(n)
    d = snapshot.dictionaries.get(dictionary_key("profile", name))
    if col.kind == "code" and d is not None:
        values = d.values if isinstance(d.values, list) else list(d.values)
        codes = np.asarray(col.values)[idx].astype(np.int64)
        mask = None if col.valid is None else ~np.asarray(col.valid)[idx]
        return pa.array(values, pa.string()).take(pa.array(codes, mask=mask))
    return pa.array([column_value(col, int(i), d) for i in idx.tolist()])


def frozen_table(
    snapshot: Snapshot, idx: np.ndarray, delivery: DeliveryDef
) -> tuple[pa.Table, int]:
    """The audience with an email (contact, email, profile fields), and how
    many contacts had none."""
    idx = np.asarray(idx, dtype=np.int64)
    emails = pc.utf8_trim_whitespace(profile_values(snapshot, "email", idx).cast(pa.string()))
    has = pc.fill_null(pc.not_equal(emails, ""), False)
    ids = snapshot.contact_ids
    columns: dict[str, pa.Array] = {
        "contact_id": pa.array([ids[i] for i in idx.tolist()], pa.string()),
        "email": emails,
    }
    for key, value in _field_items(delivery):
        if isinstance(value, Ref) and value.scope == "profile":
            columns[FIELD_PREFIX + key] = profile_values(snapshot, value.name, idx)
    table = pa.table(columns).filter(has)
    return table, len(idx) - table.num_rows


def _field_items(delivery: DeliveryDef) -> tuple[tuple[str, Any], ...]:
    return delivery.fields.items if isinstance(delivery.fields, MapValue) else ()


class Renderer:
    """A delivery's messages: rendered once per distinct combination of field
    values (contacts sharing a first name share a payload's JSON)."""

    def __init__(
        self,
        store: Store,
        delivery: DeliveryDef,
        version: int,
        plan: Plan | None = None,
        occurrence_ms: int | None = None,
    ) -> None:
        saved = store.triggers.defs.get_template(delivery.template)
        if saved is None:
            raise RunFailed(f"template {delivery.template!r} is not saved")
        try:
            self.template: CompiledTemplate = compiled(
                saved.name,
                saved.version,
                delivery.subject if delivery.subject is not None else saved.subject,
                saved.html,
                saved.text,
            )
        except TemplateError as exc:
            raise RunFailed(str(exc)) from None
        items = _field_items(delivery)
        missing = sorted(self.template.fields - {k for k, _ in items})
        if missing:
            raise RunFailed(
                f"template {saved.name!r} uses {', '.join(missing)}, which delivery "
                f"{delivery.name!r} does not give in fields"
            )
        self.constants = {k: literal(v) for k, v in items if not isinstance(v, Ref)}
        self.refs = [k for k, v in items if isinstance(v, Ref)]
        self.ref_props = {k: v.name for k, v in items if isinstance(v, Ref)}
        self.envelope = envelope(delivery, version, saved.version)
        if plan is not None:
            self.envelope["plan"] = plan.name
            self.envelope["occurrence_ms"] = occurrence_ms
        self._cache: dict[tuple[Any, ...], str | None] = {}

    def render(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Raises TemplateError."""
        shown = {k: ("" if v is None else v) for k, v in fields.items()}
        return {**self.envelope, **self.template.render(shown).to_dict(), "fields": shown}

    def chunk(self, part: pa.Table) -> tuple[list[str], list[str | None], Any, int]:
        """(contacts, emails, payloads, render failures) of a frozen chunk; a
        contact whose message does not render is left out (counted)."""
        cids = part.column("contact_id").to_pylist()
        emails = part.column("email").to_pylist()
        if not self.refs:
            try:
                return cids, emails, self.render(dict(self.constants)), 0
            except TemplateError as exc:
                raise RunFailed(str(exc)) from None
        cols = [part.column(FIELD_PREFIX + k).to_pylist() for k in self.refs]
        payloads: list[str] = []
        keep: list[int] = []
        for i, values in enumerate(zip(*cols, strict=True)):
            key = tuple(tuple(v) if isinstance(v, list) else v for v in values)
            if key in self._cache:
                text = self._cache[key]
            else:
                fields = {**self.constants, **dict(zip(self.refs, values, strict=True))}
                try:
                    text = dumps(self.render(fields))
                except TemplateError:
                    text = None
                if len(self._cache) >= 100_000:
                    self._cache.clear()
                self._cache[key] = text
            if text is not None:
                payloads.append(text)
                keep.append(i)
        failed = len(cids) - len(keep)
        if failed:
            cids = [cids[i] for i in keep]
            emails = [emails[i] for i in keep]
        return cids, emails, payloads, failed


def envelope(delivery: DeliveryDef, version: int, template_version: int) -> dict[str, Any]:
    """The payload fields every message of a delivery shares."""
    out: dict[str, Any] = {
        "campaign": delivery.name,
        "delivery": delivery.name,
        "delivery_version": version,
        "template": delivery.template,
        "template_version": template_version,
    }
    for key, value in (
        ("mail_group", delivery.mail_group),
        ("from", delivery.from_addr),
        ("sender", delivery.sender),
        ("reply_to", delivery.reply_to),
    ):
        if value is not None:
            out[key] = value
    return out
