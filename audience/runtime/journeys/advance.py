"""Moving runs through their journey version's steps (docs/journeys-runtime.md).

``Mover.proceed`` walks one run from where it is, inside the caller's write
transaction of STORE/deliveries.sqlite, as far as the time ``now`` allows:

- an action runs at the time the run reached it (its delivery due then) and
  is logged with its delivery key; the delivery log answers a key it already
  holds with the first delivery, so a replay sends nothing twice;
- ``wait D`` ends at reach + D (calendar arithmetic in the journey's zone);
- ``check`` takes ``yes`` at the time of the first qualifying event in
  [reach, reach + D] (clicks and opens from ``journey_signals`` by delivery
  key, a condition evaluated for the contact as of its events' times), and
  ``no`` at reach + D once ``now`` is past it: by the events' own times,
  whatever order the events and the clock arrive in;
- ``end``, or a block that runs out of steps, finishes the run.

Everything it writes (deliveries, step-log rows, the run's position) is in
that one transaction: a crash keeps all of a step or none of it.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from audience.dsl.ast import Action, MapValue, Ref, Value
from audience.dsl.ast_journeys import ActionStep, CheckStep, Clicked, EndStep, Opened, WaitStep
from audience.runtime.delivery import Delivery, DeliveryLog, DeliveryRequest, Policy
from audience.runtime.delivery.log import decide
from audience.runtime.delivery.model import dumps, normalize_email
from audience.runtime.journeys.context import Context
from audience.runtime.journeys.definitions import (
    BY_COND,
    BY_SIGNAL,
    BY_TIME,
    DONE,
    WAITING,
    Run,
    key_of,
    rows_in,
)
from audience.runtime.journeys.steps import Compiled, next_id
from audience.runtime.triggers.actions import TAGS, literal
from audience.runtime.triggers.batch import iso_ms, profile_value
from audience.timecalc import plus

if TYPE_CHECKING:
    from audience.runtime.node import Node
    from audience.snapshot import Snapshot

FAILED = "failed"  # a run whose step raised: logged, and left out of later batches
# test-only: halt (to be killed) after this many sends, between a delivery and its step-log row
HALT_ENV = "AUDIENCE_JOURNEYS_TEST_HALT_AFTER"
_sent_total = 0


class Mover:
    def __init__(self, store: Node, log: DeliveryLog) -> None:
        self.store = store
        self.log = log
        self._policies: dict[str, Policy | None] = {}
        self.replay = False  # a dry run: the caps are checked at each delivery's due time
        # what the current batch writes at its end: deliveries, step-log rows, positions
        self._sends: list[Delivery] = []
        self._steps: list[tuple[Any, ...]] = []
        self._updates: list[tuple[Any, ...]] = []
        self._sent = 0

    # ------------------------------------------------------------------ walking
    def proceed(
        self,
        conn: sqlite3.Connection,
        ctx: Context,
        c: Compiled,
        run: Run,
        now: int,
        *,
        fresh: bool = False,
        timed: bool = True,
    ) -> Run:
        """Move ``run`` as far as ``now`` allows; ``fresh``: it just reached its
        step (nothing logged for it yet).  ``timed`` False (an ingest moving
        it): events decide checks, but time does not pass, neither a wait's
        end nor a deadline: the scheduler's next advance takes those, so a
        click that arrives before that advance still counts.  Returns the run
        as written."""
        step_id, since = run.step, run.since_ms
        started = not fresh  # the current step's start is logged already
        while True:
            step = c.steps.get(step_id)
            if step is None or isinstance(step, EndStep):
                why = "end" if step is not None else "the path ran out of steps"
                self.log_step(conn, run.id, step_id, "end", since, {"why": why})
                return self._write(conn, run, DONE, step_id, since, None, None, None, since)
            if isinstance(step, ActionStep):
                outcome, key = self._action(conn, ctx, c, run, step_id, step, since, now)
                self.log_step(conn, run.id, step_id, "action", since, outcome, key)
            elif isinstance(step, WaitStep):
                until = plus(since, step.duration, c.tz)
                if not started:
                    self.log_step(conn, run.id, step_id, "wait", since, {"until": iso_ms(until)})
                if until > now or not timed:
                    return self._write(conn, run, WAITING, step_id, since, BY_TIME, until, None)
                self.log_step(conn, run.id, step_id, "waited", until, {})
                since = until
            else:
                assert isinstance(step, CheckStep)
                deadline = plus(since, step.within, c.tz)
                watch = self._watch(c, run, step)
                if not started:
                    about = {"deadline": iso_ms(deadline)}
                    if watch is not None:
                        about["delivery_key"] = watch
                    self.log_step(conn, run.id, step_id, "check", since, about)
                hit, why = self._decide(conn, ctx, c, run, step_id, step, watch, since, deadline)
                if hit is not None:
                    self.log_step(conn, run.id, step_id, "yes", hit, {"why": why})
                    step_id, since, started = f"{step_id}.yes.0", hit, False
                    continue
                if deadline > now or not timed:
                    waits = BY_SIGNAL if watch is not None else BY_COND
                    if isinstance(step.cond, Clicked | Opened) and watch is None:
                        waits = BY_TIME  # its action sent nothing to click: only the deadline
                    return self._write(conn, run, WAITING, step_id, since, waits, deadline, watch)
                self.log_step(conn, run.id, step_id, "no", deadline, {"why": _no_why(step)})
                step_id, since, started = f"{step_id}.no.0", deadline, False
                continue
            step_id, started = next_id(step_id), False

    def _write(
        self,
        conn: sqlite3.Connection,
        run: Run,
        state: str,
        step: str,
        since: int,
        waits: str | None,
        wake: int | None,
        watch: str | None,
        finished: int | None = None,
    ) -> Run:
        new = Run(
            run.id, run.journey_id, run.version, run.contact_id, run.entry, run.cause,
            state, step, since, waits, wake, watch, run.entered_ms, finished,
        )  # fmt: skip
        if new != run:
            self._updates.append((state, step, since, waits, wake, watch, finished, run.id))
        return new

    def log_step(
        self,
        conn: sqlite3.Connection,
        run_id: int,
        step: str,
        kind: str,
        at: int,
        outcome: dict[str, Any],
        key: str | None = None,
    ) -> None:
        """Append a step-log row (written by ``flush``, in the same transaction)."""
        self._steps.append((run_id, step, run_id, step, kind, at, dumps(outcome), key))

    def flush(self, conn: sqlite3.Connection) -> None:
        """Write the step-log rows and run positions gathered since the last
        flush (many rows per statement: most of a batch's cost otherwise).
        The deliveries go first: a process dying after them and before the
        step-log rows loses the whole transaction, deliveries included."""
        if self._sends:
            self.log.record_decided(conn, self._sends)
        _maybe_halt(self.store, self._sent)
        if self._steps:
            conn.executemany(
                "insert into journey_steps (run_id, step, seq, kind, at_ms, outcome, "
                "delivery_key) values (?, ?, (select coalesce(max(seq) + 1, 0) from "
                "journey_steps where run_id = ? and step = ?), ?, ?, ?, ?)",
                self._steps,
            )
        if self._updates:
            conn.executemany(
                "update journey_runs set state = ?, step = ?, since_ms = ?, waits = ?, "
                "wake_ms = ?, watch = ?, finished_ms = ? where id = ?",
                self._updates,
            )
        self.discard()

    def discard(self) -> None:
        self._sent = 0
        self._sends.clear()
        self._steps.clear()
        self._updates.clear()

    # ------------------------------------------------------------------ checks
    def prefetch_signals(
        self, conn: sqlite3.Connection, ctx: Context, runs: list[tuple[Compiled, Run]]
    ) -> None:
        """Read at once the clicks and opens every check of these runs' versions
        could watch (one query for a batch, not one a run)."""
        if self.replay:
            return
        keys = set()
        for c, run in runs:
            for step in c.steps.values():
                if isinstance(step, CheckStep) and (watch := self._watch(c, run, step)):
                    keys.add(watch)
        found: dict[str, list[tuple[str, int, str | None, str | None]]] = {k: [] for k in keys}
        sql = "select key, kind, ts_ms, link, link_text from journey_signals where key in ({})"
        for key, kind, ts, url, text in rows_in(conn, sql, sorted(keys)):
            found[key].append((kind, int(ts), url, text))
        ctx.signals = found

    def _watch(self, c: Compiled, run: Run, step: CheckStep) -> str | None:
        """The delivery key whose clicks/opens decide the check (None: a condition,
        or an action that is not a send)."""
        cond = step.cond
        if not isinstance(cond, Clicked | Opened):
            return None
        sid = c.labels.get(cond.action)
        target = c.steps.get(sid) if sid is not None else None
        if not isinstance(target, ActionStep) or target.send is None:
            return None
        return key_of(c.journey_id, c.version, sid or "", run.contact_id, run.entry)

    def _decide(
        self,
        conn: sqlite3.Connection,
        ctx: Context,
        c: Compiled,
        run: Run,
        step_id: str,
        step: CheckStep,
        watch: str | None,
        since: int,
        deadline: int,
    ) -> tuple[int | None, str]:
        """The time the check's condition first held in [since, deadline], and why."""
        cond = step.cond
        if isinstance(cond, Clicked | Opened):
            if watch is None:
                return None, ""
            kind = "clicked" if isinstance(cond, Clicked) else "opened"
            link = cond.link if isinstance(cond, Clicked) else None
            known = ctx.signals.get(watch) if ctx.signals is not None else None
            if known is not None:  # read with the batch's others
                hits = [
                    (ts, url)
                    for k, ts, url, text in known
                    if k == kind and ts <= deadline and (link is None or link in (url, text))
                ]
                if not hits:
                    return None, ""
                ts, url = min(hits)
                what = f"link {url!r} of" if kind == "clicked" and url else "the message of"
                return max(ts, since), f"{kind} {what} {cond.action!r} at {iso_ms(ts)}"
            # a click before the run reached the check counts too, from the arrival
            sql = (
                "select ts_ms, link from journey_signals where key = ? and kind = ? and ts_ms <= ?"
            )
            params: list[Any] = [watch, kind, deadline]
            if self.replay:
                # a dry run of another version (or entry) replays the clicks of the
                # contact's real message of that step, whatever version sent it
                jid, _, sid, cid, _ = _key_parts(watch)
                sql = sql.replace("key = ?", "key like ? escape '\\'")
                params[0] = _like(f"journey:{jid}:v") + "%" + _like(f":{sid}:{cid}:") + "%"
            if isinstance(cond, Clicked) and cond.link is not None:
                sql += " and (link = ? or link_text = ?)"
                params += [cond.link, cond.link]
            row = conn.execute(sql + " order by ts_ms limit 1", params).fetchone()
            if row is None:
                return None, ""
            what = f"link {row[1]!r} of" if kind == "clicked" and row[1] else "the message of"
            return max(int(row[0]), since), f"{kind} {what} {cond.action!r} at {iso_ms(row[0])}"
        # a condition: about what the contact does after reaching the check, at
        # the arrival and at the times of the contact's events up to the deadline
        idx = ctx.index(run.contact_id)
        if idx < 0:  # a contact the store does not know (entered by name): nothing to read
            return None, ""
        sub = _since(ctx.snapshot, idx, since)
        compiled = self._condition(c, step_id, cond)
        times = {since}
        for part in sub.partitions:
            times.update(int(t) for t in part.ts[part.ts <= deadline].tolist())
        for t in sorted(times):
            if bool(compiled.evaluate(sub, t).mask[0]):
                return t, f"the condition held at {iso_ms(t)}"
        return None, ""

    def _condition(self, c: Compiled, step_id: str, cond: Any) -> Any:
        from audience.runtime.evaluate import compile_cached
        from audience.runtime.saved import saved_segments

        if step_id not in c.cache:
            resolver = saved_segments(self.store).get
            c.cache[step_id] = compile_cached(
                cond, self.store.schema, timezone=c.tz, segment_resolver=resolver
            )
        return c.cache[step_id]

    # ------------------------------------------------------------------ actions
    def policy(self, c: Compiled) -> tuple[Policy | None, str | None]:
        name = c.journey.dnd
        if name is None:
            return None, None
        if name not in self._policies:
            self._policies[name] = self.store.triggers.policy(name)
        pol = self._policies[name]
        if pol is None:
            return None, f"unknown DND policy {name!r}: nothing is sent without it"
        return pol, None

    def _action(
        self,
        conn: sqlite3.Connection,
        ctx: Context,
        c: Compiled,
        run: Run,
        step_id: str,
        step: ActionStep,
        at: int,
        now: int,
    ) -> tuple[dict[str, Any], str | None]:
        # a key the log holds (a step re-executed after a crash, an ingest
        # replayed) is answered with its first delivery: nothing sent twice
        key = key_of(c.journey_id, c.version, step_id, run.contact_id, run.entry)
        if step.send is not None:
            msg = ctx.message(step.send, run.contact_id)
            if msg.email is None and msg.error is None:
                return {"status": "skipped", "reason": "the contact has no email"}, None
            policy, err = self.policy(c)
            payload = {
                **msg.payload,
                "delivery": step.send,
                "journey": c.name,
                "journey_version": c.version,
                "step": step.label,
            }
            req = DeliveryRequest(
                key=key,
                node=self.store.node,
                contact_id=run.contact_id,
                email=msg.email,
                channel="email",
                kind="send_email",
                payload=payload,
                due_ms=at,
                policy=policy,
                source=f"journey:{c.name}",
                now_ms=at if self.replay else now,
                error=msg.error or err,
            )
            self._sent += 1
            if policy is None and not self.replay:
                # no caps to count: decided here, written with the batch's others
                listed = self._listed(conn, ctx, normalize_email(msg.email))
                d = decide(req, now, _no_times, listed)
                self._sends.append(d)
                return _outcome(d), key
            return _outcome(self.log._request(conn, req)), key
        assert step.call is not None
        return self._call(conn, ctx, c, run, step.call, key, at, now)

    @staticmethod
    def _listed(conn: sqlite3.Connection, ctx: Context, norm: str | None) -> str | None:
        """Why the address is on the suppression list (None: it is not): read
        once for every address the batch rendered a message to (one query, not
        one a send)."""
        if norm is None:
            return None
        if norm not in ctx.unsub_checked:
            norms = {
                n
                for by in ctx.messages.values()
                for m in by.values()
                if (n := normalize_email(m.email)) is not None
            }
            todo = sorted((norms | {norm}) - ctx.unsub_checked)
            sql = "select email_norm, reason from suppressions where email_norm in ({})"
            ctx.unsub.update((r[0], r[1]) for r in rows_in(conn, sql, todo))
            ctx.unsub_checked.update(todo)
        return ctx.unsub.get(norm)

    def _call(
        self,
        conn: sqlite3.Connection,
        ctx: Context,
        c: Compiled,
        run: Run,
        action: Action,
        key: str,
        at: int,
        now: int,
    ) -> tuple[dict[str, Any], str | None]:
        cid = run.contact_id
        kw = {a.key: a.value for a in action.args if a.key is not None}
        if action.name == "webhook":
            policy, err = self.policy(c)
            email = self._profile(ctx, cid, "email")
            req = DeliveryRequest(
                key=key,
                node=self.store.node,
                contact_id=cid,
                email=email if isinstance(email, str) else None,
                channel="webhook",
                kind="webhook",
                payload={
                    "url": self._value(ctx, cid, kw["url"]),
                    "body": self._value(ctx, cid, kw["body"]) if "body" in kw else {},
                    "journey": c.name,
                    "journey_version": c.version,
                },
                due_ms=at,
                policy=policy,
                source=f"journey:{c.name}",
                now_ms=at if self.replay else now,
                error=err,
            )
            return _outcome(self.log._request(conn, req)), key
        if action.name == "add_tag":
            if self.store.schema.profile.get(TAGS) != "list<string>":
                return {"status": "failed", "reason": "the profile has no list 'tags'"}, None
            tag = self._value(ctx, cid, action.args[0].value)
            current = self._profile(ctx, cid, TAGS) or []
            if tag not in current:
                ctx.updates.add_to_list(cid, TAGS, tag, current)
            return {"status": "done", "action": "add_tag", "tag": tag}, None
        if action.name == "set":
            for prop, value in kw.items():
                ctx.updates.set(cid, prop, self._value(ctx, cid, value))
            return {"status": "done", "action": "set"}, None
        return {"status": "failed", "reason": f"unknown action {action.name!r}"}, None

    def _profile(self, ctx: Context, cid: str, name: str) -> Any:
        found, pending = ctx.updates.get(cid, name)
        if found:
            return pending
        idx = ctx.index(cid)
        return None if idx < 0 else profile_value(ctx.snapshot, idx, name)

    def _value(self, ctx: Context, cid: str, value: Value) -> Any:
        if isinstance(value, MapValue):
            return {k: self._value(ctx, cid, v) for k, v in value.items}
        if isinstance(value, Ref):
            return self._profile(ctx, cid, value.name) if value.scope == "profile" else None
        return literal(value)


def _outcome(d: Delivery) -> dict[str, Any]:
    out: dict[str, Any] = {"status": d.status}
    if d.id:  # 0: written with its batch (the step log names it by key)
        out["delivery"] = d.id
    if d.cap:  # a DND cap, or the suppression list's reason
        out["reason"] = f"{d.policy}: {d.cap}" if d.policy else d.cap
    elif d.last_error:
        out["reason"] = d.last_error
    return out


def _no_why(step: CheckStep) -> str:
    cond = step.cond
    if isinstance(cond, Clicked):
        return f"no click on {cond.action!r} by the deadline"
    if isinstance(cond, Opened):
        return f"{cond.action!r} was not opened by the deadline"
    return "the condition did not hold by the deadline"


def _key_parts(key: str) -> list[str]:
    """(journey id, version, step, contact, entry) of a journey delivery key (a
    contact id may hold colons: the step has none, the entry is the last part)."""
    _, jid, version, step, rest = key.split(":", 4)
    cid, _, entry = rest.rpartition(":")
    return [jid, version, step, cid, entry]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _maybe_halt(store: Node, sent: int) -> None:
    """Test-only: once this process recorded the set number of sends, say so,
    then wait to be killed (between deliveries and their step-log rows)."""
    global _sent_total
    halt = int(os.environ.get(HALT_ENV) or 0)
    if not halt:
        return
    _sent_total += sent
    if _sent_total >= halt and store.path is not None:
        (store.path / "journeys-halted").write_text("halted\n")
        while True:
            time.sleep(3600)


def _no_times(*_: Any) -> list[int]:
    return []


def _since(snapshot: Snapshot, idx: int, since: int) -> Snapshot:
    """One contact's snapshot (as contact 0) holding its events from ``since``
    on, and always in the universe (``not did x`` holds without events)."""
    from audience.engine.subset import subset_snapshot
    from audience.runtime.triggers.batch import take_rows

    sub = subset_snapshot(snapshot, np.array([idx], dtype=np.int64))
    parts = []
    for part in sub.partitions:
        keep = np.flatnonzero(part.ts >= since)
        if len(keep):
            parts.append(take_rows(part, keep))
    return dataclasses.replace(sub, partitions=tuple(parts), has_profile=np.ones(1, dtype=bool))
