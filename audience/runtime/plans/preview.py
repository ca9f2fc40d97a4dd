"""A plan's preview (who it would reach at an instant, writing nothing) and a
delivery's test send (to its test list, marked test: never capped, deferred
or counted by a DND policy)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audience.dsl.ast import Segment
from audience.runtime.delivery import DeliveryLog, DeliveryRequest
from audience.runtime.delivery.members import ADMITTED
from audience.runtime.plans.clock import Clock, wall_clock
from audience.runtime.plans.definitions import PlanDefinitions
from audience.runtime.plans.frozen import freeze_audience, profile_values, strings
from audience.runtime.plans.recurrence import next_occurrence
from audience.runtime.plans.render import Renderer, RunFailed
from audience.runtime.plans.runner import _who
from audience.runtime.plans.service import PlanError, parse_delivery, parse_plan
from audience.timecalc import iso_utc

if TYPE_CHECKING:
    from audience.runtime.node import Node
    from audience.snapshot import Snapshot

SAMPLE = 20  # contacts listed per group


def preview(
    store: Node,
    name: str,
    at_ms: int | None = None,
    *,
    clock: Clock = wall_clock,
    defs: PlanDefinitions | None = None,
    log: DeliveryLog | None = None,
    sample: int = SAMPLE,
    cluster: Any = None,
) -> dict[str, Any]:
    """Who plan ``name`` would reach at ``at_ms`` (default: its next
    occurrence, else now): the audience, those without an email, those the
    DND policy holds back (by cap), and those it would send to.  ``cluster``:
    an ``audience.dist.ClusterStore`` over a sharded ``store``, whose workers
    decide the audience (as a run's)."""
    defs = defs or PlanDefinitions.for_store(store.path)
    saved = defs.get_plan(store.node, name)
    if saved is None:
        raise PlanError("not_found", f"no plan named {name!r} in node {store.node!r}")
    plan = parse_plan(saved.text, name)
    now = clock()
    at = at_ms if at_ms is not None else (next_occurrence(plan.when, now) or now)
    sent = defs.get_delivery(store.node, plan.send)
    if sent is None:
        raise PlanError("not_ready", f"delivery {plan.send!r} is not saved")
    delivery = parse_delivery(sent.text, sent.name)
    segment = store.segment_compiler.compile_segment(
        Segment(name=plan.name, cond=_who(plan), timezone=plan.when.timezone),
        text="",
        filename=f"<plan {name!r}>",
    )
    frozen = freeze_audience(store, segment, at, delivery, sample, cluster)
    table, without, no_email = frozen.table, frozen.without, frozen.no_email
    policy = store.triggers.policy(plan.dnd) if plan.dnd else None
    if plan.dnd and policy is None:
        raise PlanError("not_ready", f"DND policy {plan.dnd!r} is not saved")
    own_log = log is None
    the_log = log if log is not None else DeliveryLog.open(store.path)
    try:
        # the run's own check, deciding every contact at once, recording nothing
        got = the_log.reserve_batch(
            store.node,
            table.column("contact_id").combine_chunks(),
            table.column("email").combine_chunks(),
            policy,
            at,
            {},
            f"plan:{name}",
            f"preview:{store.node}:{name}:{at}:{secrets.token_hex(4)}:",
            now_ms=at,
            dry_run=True,
        )
    finally:
        if own_log:
            the_log.close()
    codes = got["codes"]
    ids = table.column("contact_id")
    held = np.flatnonzero(codes >= 0)
    sending = np.flatnonzero(codes == ADMITTED)
    return {
        "plan": name,
        "state": saved.state,
        "at": iso_utc(at, "seconds"),
        "at_ms": at,
        "audience": frozen.members,
        "without_email": without,
        "held": int(got["suppressed"]),
        "held_by_cap": dict(got["by_cap"]),
        "to_send": int(got["reserved"]) + int(got["deferred"]),
        "samples": {
            "without_email": no_email[:sample],
            "held": ids.take(pa.array(held[:sample])).to_pylist(),
            "to_send": ids.take(pa.array(sending[:sample])).to_pylist(),
        },
    }


def test_send(
    store: Node,
    name: str,
    contact_id: str | None = None,
    *,
    clock: Clock = wall_clock,
    defs: PlanDefinitions | None = None,
    log: DeliveryLog | None = None,
) -> list[dict[str, Any]]:
    """Send delivery ``name`` to its test list now, rendered with the fields of
    ``contact_id`` (default: the first contact with a profile)."""
    defs = defs or PlanDefinitions.for_store(store.path)
    saved = defs.get_delivery(store.node, name)
    if saved is None:
        raise PlanError("not_found", f"no delivery named {name!r} in node {store.node!r}")
    delivery = parse_delivery(saved.text, name)
    if not delivery.test_list:
        raise PlanError("no_test_list", f"delivery {name!r} has no test list")
    snapshot, pos = _sample(store, contact_id)
    if contact_id is not None and pos < 0:
        raise PlanError("unknown_contact", f"no contact {contact_id!r} in node {store.node!r}")
    sample = snapshot.contact_ids[pos] if pos >= 0 else ""
    try:
        renderer = Renderer(store, delivery, saved.version, None, None)
    except RunFailed as exc:
        raise PlanError("not_ready", str(exc)) from None
    fields = dict(renderer.constants)
    for k, prop in renderer.ref_props.items():
        fields[k] = profile_values(snapshot, prop, np.array([pos]))[0].as_py() if pos >= 0 else None
    try:
        payload = renderer.render(fields)
    except Exception as exc:
        raise PlanError("not_ready", f"the message does not render: {exc}") from None
    now = clock()
    token = secrets.token_hex(6)
    own_log = log is None
    the_log = log if log is not None else DeliveryLog.open(store.path)
    try:
        reqs = [
            DeliveryRequest(
                key=f"test:{store.node}:{name}:{saved.version}:{token}:{i}",
                node=store.node,
                contact_id=sample,
                email=addr,
                channel="email",
                kind="send_email",
                payload={**payload, "to": addr, "sample_contact": sample},
                due_ms=now,
                test=True,
                source=f"delivery:{name}:test",
                now_ms=now,
            )
            for i, addr in enumerate(delivery.test_list)
        ]
        done = the_log.request_many(reqs)
    finally:
        if own_log:
            the_log.close()
    return [
        {"id": d.id, "to": d.email, "status": d.status, "test": d.test, "contact": sample}
        for d in done
    ]


def _sample(store: Node, contact_id: str | None) -> tuple[Snapshot, int]:
    """The snapshot holding ``contact_id`` (default: the first contact with a
    profile, else the first contact) and its position there (-1: none).  On
    a sharded node, the shard that holds it."""
    snaps = store.snapshots()
    if contact_id is not None:
        wanted = pa.array([contact_id], pa.string())
        for snap in snaps:
            found = pc.index_in(wanted, value_set=strings(snap.contact_ids))[0].as_py()
            if found is not None:
                return snap, int(found)
        return snaps[0], -1
    for snap in snaps:
        with_profile = np.flatnonzero(np.asarray(snap.has_profile))
        if len(with_profile):
            return snap, int(with_profile[0])
    return next(((snap, 0) for snap in snaps if snap.n_contacts), (snaps[0], -1))
