"""A fired trigger's actions (docs/language/triggers.md), run in order for one event.

- ``send_email``: the campaign names a saved template, rendered with the
  ``fields:``; ``to: profile.email`` is the contact's address, a constant
  address is a test send.  One delivery request, keyed so a replay finds it.
- ``webhook``: a delivery of kind webhook with the rendered ``body``.
- ``add_tag`` / ``set``: profile upserts, gathered for the whole batch and
  written by one ``store.ingest_profiles`` (durable like any ingest).
- ``enter_journey("Name")``: the contact enters the journey at the event's
  time, once the batch's firings are decided (audience.runtime.journeys:
  its entry rules apply; the firing key is the entry's cause, so a replay
  enters nobody twice).

Each action reports an outcome dict: ``status`` is the delivery's status, or
``done`` / ``skipped`` / ``failed`` with a ``reason``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from audience.dsl.ast import (
    Action,
    BoolLit,
    DateLit,
    DateTimeLit,
    MapValue,
    NumberLit,
    Ref,
    StringLit,
    Value,
)
from audience.runtime.delivery import Delivery, DeliveryRequest, Policy
from audience.runtime.triggers.batch import EventBatch, profile_value
from audience.runtime.triggers.matcher import CompiledTrigger
from audience.runtime.triggers.templates import CompiledTemplate, TemplateError

TAGS = "tags"


class Requester(Protocol):
    """The delivery log, or a dry run's view of it."""

    def request(self, req: DeliveryRequest) -> Delivery: ...

    def grouped(self) -> AbstractContextManager[None]: ...


class ProfileUpdates:
    """The profile changes of a batch, by contact, applied together at its end.
    Values ``add_to_list`` adds are written as additions to the stored list
    (``merge_lists``), read under the store's ingest lock, so a tag added
    meanwhile by another writer is kept; a ``set`` of the property replaces."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.added: dict[str, dict[str, list[Any]]] = {}  # contact -> prop -> values

    def set(self, contact_id: str, prop: str, value: Any) -> None:
        self.rows.setdefault(contact_id, {})[prop] = value
        self.added.get(contact_id, {}).pop(prop, None)

    def add_to_list(self, contact_id: str, prop: str, value: Any, current: list[Any]) -> None:
        row = self.rows.setdefault(contact_id, {})
        merged = prop not in row or prop in self.added.get(contact_id, {})
        row[prop] = [*current, value]  # what later actions of the batch read
        if merged:
            self.added.setdefault(contact_id, {}).setdefault(prop, []).append(value)

    def get(self, contact_id: str, prop: str) -> tuple[bool, Any]:
        row = self.rows.get(contact_id)
        if row is None or prop not in row:
            return False, None
        return True, row[prop]

    def records(self) -> list[dict[str, Any]]:
        """The replacing updates."""
        out = []
        for c, fields in self.rows.items():
            merged = self.added.get(c, {})
            kept = {k: v for k, v in fields.items() if k not in merged}
            if kept:
                out.append({"contact_id": c, **kept})
        return out

    def additions(self) -> list[dict[str, Any]]:
        """The list additions (to ingest with ``merge_lists``)."""
        return [{"contact_id": c, **props} for c, props in self.added.items() if props]


@dataclass
class ActionRun:
    """What the actions of one batch need; ``now_ms`` None: the wall clock."""

    node: str
    batch: EventBatch
    log: Requester
    template: Callable[[str], CompiledTemplate | None]
    policy: Callable[[str], Policy | None]
    now_ms: Callable[[int], int | None]  # event ts -> the time caps are checked at
    updates: ProfileUpdates = field(default_factory=ProfileUpdates)
    deliveries: list[Delivery] = field(default_factory=list)
    # (journey, contact, time, cause): entered after the batch, outside its
    # delivery-log transaction
    journey_entries: list[tuple[str, str, int, str]] = field(default_factory=list)


def literal(value: Value) -> Any:
    if isinstance(value, StringLit | NumberLit | BoolLit):
        return value.value
    if isinstance(value, DateLit):
        return value.value
    if isinstance(value, DateTimeLit):
        return value.value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"not a literal: {type(value).__name__}")


def resolve(run: ActionRun, value: Value, row: int) -> Any:
    """A value of an action argument: a literal, ``profile.x``, ``event.x`` or a map."""
    if isinstance(value, MapValue):
        return {k: resolve(run, v, row) for k, v in value.items}
    if isinstance(value, Ref):
        if value.scope == "event":
            return run.batch.value(value.name, row)
        cid = run.batch.contact_id(row)
        found, pending = run.updates.get(cid, value.name)
        if found:
            return pending
        return profile_value(run.batch.snapshot, run.batch.contact(row), value.name)
    return literal(value)


def _kw(action: Action) -> dict[str, Value]:
    return {a.key: a.value for a in action.args if a.key is not None}


def run_actions(
    run: ActionRun, t: CompiledTrigger, row: int, event_key: str, due_ms: int
) -> list[dict[str, Any]]:
    out = []
    for i, action in enumerate(t.trigger.actions):
        # the node is part of the key: event ids are the sender's and repeat across
        # nodes, while the delivery log (and so key uniqueness) spans the store
        key = f"{run.node}:{t.name}:{t.version}:{event_key}:{i}"
        fn = _ACTIONS.get(action.name)
        if fn is None:
            out.append(_failed(action, f"unknown action '{action.name}'"))
            continue
        try:
            out.append(fn(run, t, action, row, key, due_ms))
        except _Failed as exc:
            out.append(_failed(action, str(exc)))
    return out


class _Failed(Exception):
    pass


def _failed(action: Action, reason: str) -> dict[str, Any]:
    return {"action": action.name, "status": "failed", "reason": reason}


def _policy(run: ActionRun, t: CompiledTrigger) -> Policy | None:
    from audience.dsl.ast import UseDnd

    name = next((o.policy for o in t.trigger.options if isinstance(o, UseDnd)), None)
    if name is None:
        return None
    pol = run.policy(name)
    if pol is None:
        raise _Failed(f"unknown DND policy {name!r}: nothing is sent without it")
    return pol


def _deliver(run: ActionRun, req: DeliveryRequest, action: Action) -> dict[str, Any]:
    d = run.log.request(req)
    run.deliveries.append(d)
    out: dict[str, Any] = {"action": action.name, "status": d.status, "delivery": d.id}
    if d.cap:
        out["reason"] = f"{d.policy}: {d.cap}"
    elif d.last_error:
        out["reason"] = d.last_error
    return out


def _send_email(
    run: ActionRun, t: CompiledTrigger, action: Action, row: int, key: str, due_ms: int
) -> dict[str, Any]:
    args = _kw(action)
    campaign = resolve(run, args["campaign"], row)
    to_value = args["to"]
    test = isinstance(to_value, StringLit)
    to = resolve(run, to_value, row)
    if not isinstance(to, str) or not to.strip():
        return {"action": action.name, "status": "skipped", "reason": "the contact has no address"}
    fields = resolve(run, args["fields"], row) if "fields" in args else {}
    # a missing value renders empty: "Hi {{ first_name }}" works without a first name
    fields = {k: ("" if v is None else v) for k, v in fields.items()}
    # a template that cannot be rendered (missing, or missing a field) still makes
    # a delivery, recorded "failed" with the reason: nothing is lost silently
    payload: dict[str, Any] = {"campaign": campaign, "to": to}
    error = None
    try:
        tpl = run.template(str(campaign))
        if tpl is None:
            error = f"no template named {campaign!r}"
        else:
            payload["template_version"] = tpl.version
            payload.update(tpl.render(fields).to_dict())
    except TemplateError as exc:
        error = str(exc)
    payload["fields"] = fields
    req = DeliveryRequest(
        key=key,
        node=run.node,
        contact_id=run.batch.contact_id(row),
        email=to,
        channel="email",
        kind="send_email",
        payload=payload,
        due_ms=due_ms,
        policy=_policy(run, t),
        test=test,
        source=f"trigger:{t.name}",
        now_ms=run.now_ms(run.batch.ts(row)),
        error=error,
    )
    return _deliver(run, req, action)


def _webhook(
    run: ActionRun, t: CompiledTrigger, action: Action, row: int, key: str, due_ms: int
) -> dict[str, Any]:
    args = _kw(action)
    body = resolve(run, args["body"], row) if "body" in args else {}
    email = profile_value(run.batch.snapshot, run.batch.contact(row), "email")
    req = DeliveryRequest(
        key=key,
        node=run.node,
        contact_id=run.batch.contact_id(row),
        email=email if isinstance(email, str) else None,
        channel="webhook",
        kind="webhook",
        payload={"url": resolve(run, args["url"], row), "body": body},
        due_ms=due_ms,
        policy=_policy(run, t),
        source=f"trigger:{t.name}",
        now_ms=run.now_ms(run.batch.ts(row)),
    )
    return _deliver(run, req, action)


def _add_tag(
    run: ActionRun, t: CompiledTrigger, action: Action, row: int, key: str, due_ms: int
) -> dict[str, Any]:
    if run.batch.snapshot.schema.profile.get(TAGS) != "list<string>":
        raise _Failed("the profile has no list<string> property 'tags'")
    tag = resolve(run, action.args[0].value, row)
    current = resolve(run, Ref("profile", (TAGS,)), row) or []
    if tag in current:
        return {"action": action.name, "status": "done", "reason": "already tagged"}
    run.updates.add_to_list(run.batch.contact_id(row), TAGS, tag, current)
    return {"action": action.name, "status": "done"}


def _set(
    run: ActionRun, t: CompiledTrigger, action: Action, row: int, key: str, due_ms: int
) -> dict[str, Any]:
    cid = run.batch.contact_id(row)
    for prop, value in _kw(action).items():
        run.updates.set(cid, prop, resolve(run, value, row))
    return {"action": action.name, "status": "done"}


def _enter_journey(
    run: ActionRun, t: CompiledTrigger, action: Action, row: int, key: str, due_ms: int
) -> dict[str, Any]:
    name = resolve(run, action.args[0].value, row)
    if not isinstance(name, str):
        raise _Failed("enter_journey needs a journey's name")
    run.journey_entries.append(
        (name, run.batch.contact_id(row), run.batch.ts(row), f"trigger:{key}")
    )
    return {"action": action.name, "status": "done", "journey": name}


_ACTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "send_email": _send_email,
    "webhook": _webhook,
    "add_tag": _add_tag,
    "set": _set,
    "enter_journey": _enter_journey,
}
