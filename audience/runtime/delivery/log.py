"""The delivery log and outbox: one row per delivery, in STORE/deliveries.sqlite,
shared by the nodes of a store (so a ``global`` policy sees them all).

``request`` checks a delivery against its DND policy and records it in one
``BEGIN IMMEDIATE`` transaction: no other process can record a delivery
between the check and the insert, so concurrent senders never together
exceed a cap.  The worker (worker.py) drains the rows due with the claim /
mark methods at the bottom.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from audience.runtime.db import immediate
from audience.runtime.delivery import model as m
from audience.runtime.delivery.dnd import Policy
from audience.runtime.delivery.members import batch_times, materialize
from audience.runtime.delivery.model import Delivery, DeliveryRequest
from audience.runtime.delivery.schema import FILE, connect
from audience.runtime.tracking import suppression

# the payload of a row is its own JSON, or the shared one it refers to
_SELECT = (
    "select d.id, d.key, d.node, d.contact_id, d.email, d.channel, d.kind, "
    "coalesce(d.payload, p.body), d.status, d.policy, d.cap, d.requested_ms, d.due_ms, d.test, "
    "d.source, d.created_ms, d.attempts, d.sent_ms, d.last_error, d.message_id, d.resends, "
    "d.email_norm, d.next_attempt_ms from deliveries d left join payloads p on p.id = d.payload_ref"
)

_INSERT = (
    "insert {} into deliveries (key, node, contact_id, email, email_norm, channel, "
    "kind, payload, status, policy, cap, requested_ms, due_ms, test, source, "
    "created_ms, last_error) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _row(d: Delivery) -> list[Any]:
    return [
        d.key, d.node, d.contact_id, d.email, d.email_norm, d.channel, d.kind,
        m.dumps(d.payload), d.status, d.policy, d.cap, d.requested_ms, d.due_ms,
        int(d.test), d.source, d.created_ms, d.last_error,
    ]  # fmt: skip


TimesFn = Callable[[DeliveryRequest, str | None, Policy, int, int], list[int]]


def decide(
    req: DeliveryRequest, now_ms: int, times: TimesFn, listed: str | None = None
) -> Delivery:
    """The delivery ``req`` becomes (id 0: not recorded yet).

    It may leave at ``max(due, now)`` (a delivery for a past event leaves now),
    moved to the end of the quiet hours it falls in; the caps are checked at
    that time against the deliveries ``times`` returns.  ``listed``: why the
    address is on the suppression list (a marketing email to it is suppressed,
    with that reason), None when it is not."""
    email_norm = m.normalize_email(req.email)
    t = max(req.due_ms, now_ms)
    status, cap_text = m.RESERVED, None
    pol = req.policy
    if req.error is not None:
        status = m.FAILED  # never sent, so neither deferred nor capped, and not counted
    elif listed is not None and not req.test and req.kind == "send_email":
        status, cap_text = m.SUPPRESSED, listed
    elif pol is not None and not req.test and pol.applies_to(req.channel):
        deferred = pol.defer(t)
        if deferred != t:
            status, t = m.DEFERRED, deferred
        if pol.caps:
            lo, hi = pol.horizon(t)
            cap = pol.first_broken(t, sorted(times(req, email_norm, pol, lo, hi)))
            if cap is not None:
                status, cap_text = m.SUPPRESSED, cap.text
    return Delivery(
        id=0,
        key=req.key,
        node=req.node,
        contact_id=req.contact_id,
        email=(req.email or "").strip() or None,
        channel=req.channel,
        kind=req.kind,
        payload=req.payload,
        status=status,
        policy=pol.name if pol is not None else None,
        cap=cap_text,
        requested_ms=req.due_ms,
        due_ms=t,
        test=req.test,
        source=req.source,
        created_ms=m.wall_ms(),
        last_error=req.error,
        email_norm=email_norm,
    )


class DeliveryLog:
    """Open with ``DeliveryLog.open(store_root)``; thread-safe (one connection, locked)."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()
        # inside ``grouped()``: None outside; False until its transaction begins
        self._group: bool | None = None
        self.uid: str = conn.execute("select v from delivery_meta where k = 'uid'").fetchone()[0]

    @classmethod
    def open(cls, store_root: Path | str | None) -> DeliveryLog:
        """STORE/deliveries.sqlite (created on first use); None: a log in memory."""
        path = None if store_root is None else Path(store_root) / FILE
        return cls(connect(path), path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> DeliveryLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self, synced: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction: the write lock is held from the first read on.
        ``synced`` False: its commit is not fsynced (SQLite's synchronous=NORMAL
        in WAL mode): it survives a crash of the process, not of the machine."""
        with self._lock:
            if synced:
                with immediate(self._conn) as conn:
                    yield conn
                return
            before = self._conn.execute("pragma synchronous").fetchone()[0]
            self._conn.execute("pragma synchronous = normal")
            try:
                with immediate(self._conn) as conn:
                    yield conn
            finally:
                self._conn.execute(f"pragma synchronous = {int(before)}")

    # ------------------------------------------------------------------ recording

    def request(self, req: DeliveryRequest) -> Delivery:
        """Check ``req`` against its policy and record it (reserved, deferred or
        suppressed; failed when ``req.error`` says why it cannot be sent); the
        same key again returns the first delivery, unchanged."""
        with self._lock:
            if self._group is None:
                with self.transaction() as conn:
                    return self._request(conn, req)
            if not self._group:  # the group's transaction begins with its first request
                self._conn.execute("begin immediate")
                self._group = True
            return self._request(self._conn, req)

    def request_many(self, reqs: Sequence[DeliveryRequest]) -> list[Delivery]:
        """``request`` each of ``reqs`` in order, in one transaction."""
        with self.grouped():
            return [self.request(r) for r in reqs]

    @contextlib.contextmanager
    def grouped(self) -> Iterator[None]:
        """The ``request`` calls made inside (by this thread) share one write
        transaction: one commit, one fsync, instead of one each.  Each is still
        decided against everything recorded before it, the group's own
        included, and the write lock is held from the first one to the end, so
        no cap is exceeded whatever other processes record; if anything
        raises, none of the group is recorded."""
        with self._lock:
            if self._group is not None:  # nested: part of the outer group
                yield
                return
            self._group = False
            try:
                yield
            except BaseException:
                if self._group:
                    self._conn.execute("rollback")
                raise
            else:
                if self._group:
                    self._conn.execute("commit")
            finally:
                self._group = None

    def _request(self, conn: sqlite3.Connection, req: DeliveryRequest) -> Delivery:
        now = req.now_ms if req.now_ms is not None else m.wall_ms()
        found = self._by_key(conn, req.key)
        if found is not None:
            if (found.node, found.contact_id) != (req.node, req.contact_id):
                # a reused key must never hand one contact's delivery to another
                raise ValueError(
                    f"delivery key {req.key!r} already belongs to contact "
                    f"{found.contact_id!r} of node {found.node!r}"
                )
            return found
        d = decide(
            req,
            now,
            lambda r, e, p, lo, hi: self._times(conn, r, e, p, lo, hi),
            suppression.reason_in(conn, m.normalize_email(req.email)),
        )
        cur = conn.execute(_INSERT.format(""), _row(d))
        return replace(d, id=int(cur.lastrowid or 0))

    def record_decided(self, conn: sqlite3.Connection, ds: Sequence[Delivery]) -> None:
        """Inside ``transaction()``: insert deliveries ``decide`` made without
        counting any other (no caps to check), many per statement; a key the
        log already holds keeps its first delivery."""
        conn.executemany(_INSERT.format("or ignore"), [_row(d) for d in ds])

    def _times(
        self,
        conn: sqlite3.Connection,
        req: DeliveryRequest,
        email_norm: str | None,
        pol: Policy,
        lo: int,
        hi: int,
    ) -> list[int]:
        """Due times of the counted deliveries in ``(lo, hi)`` to the same contact
        in the node (and, for a global policy, to the same email in any node)."""
        chan = ""
        chan_params: list[Any] = []
        if pol.channels:
            chan = f" and channel in ({', '.join('?' * len(pol.channels))})"
            chan_params = list(pol.channels)
        base = (
            "select id, due_ms from deliveries where batch_id is null and test = 0 "
            f"and status in {m.COUNTED_SQL} "
            f"and due_ms > ? and due_ms < ?{chan}"
        )
        sql = base + " and node = ? and contact_id = ?"
        params: list[Any] = [lo, hi, *chan_params, req.node, req.contact_id]
        if pol.is_global and email_norm:
            sql += " union " + base + " and email_norm = ?"
            params += [lo, hi, *chan_params, email_norm]
        times = [r[1] for r in conn.execute(sql, params)]
        # batch members count from their batch (their rows, once made, are skipped above)
        return times + batch_times(
            conn, self.uid, req.node, req.contact_id, email_norm, pol, lo, hi
        )

    def dry_run(self) -> DryRun:
        """A view whose ``request`` decides against this log plus what the dry
        run itself reserved, and writes nothing."""
        return DryRun(self)

    def reserve_batch(
        self,
        node: str,
        contact_ids: Sequence[str] | Any,
        emails: Sequence[str | None] | Any,
        policy: Policy | None,
        due_ms: int,
        payload_for: Callable[[str, str | None], dict[str, Any]] | dict[str, Any] | list[str] | Any,
        source: str,
        key_prefix: str,
        **options: Any,
    ) -> dict[str, Any]:
        """Check and record one delivery per contact at once; see batch.reserve_batch."""
        from audience.runtime.delivery.batch import reserve_batch  # numba: import when used

        return reserve_batch(
            self,
            node,
            contact_ids,
            emails,
            policy,
            due_ms,
            payload_for,
            source,
            key_prefix,
            **options,
        )

    # ------------------------------------------------------------------ reading

    def _by_key(self, conn: sqlite3.Connection, key: str) -> Delivery | None:
        row = conn.execute(_SELECT + " where d.key = ?", [key]).fetchone()
        return None if row is None else m.from_row(row)

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query, read without the write lock (a consistent snapshot)."""
        with self._lock:
            return self._conn.execute(sql, list(params)).fetchall()

    def get(self, delivery_id: int) -> Delivery | None:
        with self._lock:
            row = self._conn.execute(_SELECT + " where d.id = ?", [delivery_id]).fetchone()
        return None if row is None else m.from_row(row)

    def get_by_key(self, key: str) -> Delivery | None:
        with self._lock:
            return self._by_key(self._conn, key)

    def list(
        self,
        contact: str | None = None,
        status: str | None = None,
        since_ms: int | None = None,
        limit: int | None = None,
        node: str | None = None,
    ) -> list[Delivery]:
        """Deliveries in the order they were recorded; ``limit`` keeps the latest;
        ``since_ms`` keeps those due at or after it."""
        where: list[str] = []
        params: list[Any] = []
        for cond, value in (
            ("d.contact_id = ?", contact),
            ("d.status = ?", status),
            ("d.due_ms >= ?", since_ms),
            ("d.node = ?", node),
        ):
            if value is not None:
                where.append(cond)
                params.append(value)
        sql = _SELECT + (" where " + " and ".join(where) if where else "") + " order by d.id desc"
        if limit is not None:
            sql += " limit ?"
            params.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [m.from_row(r) for r in reversed(rows)]

    def materialize(self, chunk: int = 2000) -> int:
        """Turn batch members into rows (``list`` shows rows); see batch.materialize."""
        return materialize(self, chunk)

    def materialize_all(self) -> int:
        done = 0
        while moved := self.materialize():
            done += moved
        return done

    def counts(self) -> dict[str, int]:
        """How many deliveries are in each status."""
        with self._lock:
            rows = self._conn.execute("select status, count(*) from deliveries group by status")
            return {s: n for s, n in rows}

    # ------------------------------------------------------------------ the worker's side

    def claim(self, now_ms: int, lease_ms: int) -> Delivery | None:
        """Take the next due delivery: it becomes 'sending' until ``now + lease``.
        A 'sending' row whose lease ran out belongs to a worker that died; it is
        taken again (``resends`` + 1 when that worker may have sent it already)."""
        with self.transaction() as conn:
            # one indexed query per status (an OR of them would sort the whole queue)
            found = [
                conn.execute(
                    "select due_ms, id, status, phase from deliveries where status = ? "
                    "and due_ms <= ? and next_attempt_ms <= ? order by due_ms limit 1",
                    [status, now_ms, now_ms],
                ).fetchone()
                for status in m.PENDING
            ]
            found.append(
                conn.execute(
                    "select due_ms, id, status, phase from deliveries where status = 'sending' "
                    "and lease_until <= ? order by due_ms limit 1",
                    [now_ms],
                ).fetchone()
            )
            candidates = [r for r in found if r is not None]
            if not candidates:
                return None
            _, did, status, phase = min(candidates)
            uncertain = int(status == m.SENDING and phase == "data")
            conn.execute(
                "update deliveries set status = 'sending', lease_until = ?, phase = 'claimed', "
                "attempts = attempts + 1, resends = resends + ?, "
                "message_id = coalesce(message_id, ?) where id = ?",
                [now_ms + lease_ms, uncertain, self.message_id(did), did],
            )
            found = conn.execute(_SELECT + " where d.id = ?", [did]).fetchone()
        return m.from_row(found)

    def message_id(self, delivery_id: int) -> str:
        """The Message-ID (and webhook Idempotency-Key) of a delivery: derived from
        its id and this log's uid, so every attempt of it carries the same one."""
        return f"<audience.{self.uid}.{delivery_id}@audience.invalid>"

    def set_phase(self, delivery_id: int, phase: str) -> None:
        """Record how far the current attempt got, before taking the next step."""
        with self.transaction() as conn:
            conn.execute(
                "update deliveries set phase = ? where id = ? and status = 'sending'",
                [phase, delivery_id],
            )

    def mark_sent(self, delivery_id: int, now_ms: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "update deliveries set status = 'sent', sent_ms = ?, phase = 'done', "
                "lease_until = null, last_error = null where id = ? and status = 'sending'",
                [now_ms, delivery_id],
            )

    def mark_retry(self, delivery_id: int, error: str, next_attempt_ms: int) -> None:
        """Back to the queue, not before ``next_attempt_ms`` (the due time, which the
        caps count at, stays)."""
        with self.transaction() as conn:
            conn.execute(
                "update deliveries set status = 'reserved', next_attempt_ms = ?, last_error = ?, "
                "lease_until = null, phase = null where id = ? and status = 'sending'",
                [next_attempt_ms, error, delivery_id],
            )

    def mark_failed(self, delivery_id: int, error: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "update deliveries set status = 'failed', last_error = ?, lease_until = null "
                "where id = ? and status = 'sending'",
                [error, delivery_id],
            )


class DryRun:
    """``log.dry_run()``: decisions as ``request`` would make them, kept in memory."""

    def __init__(self, log: DeliveryLog) -> None:
        self.log = log
        self.planned: list[Delivery] = []
        self._by_key: dict[str, Delivery] = {}

    def __enter__(self) -> DryRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.planned.clear()
        self._by_key.clear()

    @contextlib.contextmanager
    def grouped(self) -> Iterator[None]:
        """As ``DeliveryLog.grouped`` (a dry run writes nothing, so there is nothing to group)."""
        yield

    def request(self, req: DeliveryRequest) -> Delivery:
        found = self._by_key.get(req.key) or self.log.get_by_key(req.key)
        if found is not None:
            return found
        now = req.now_ms if req.now_ms is not None else m.wall_ms()
        with self.log._lock:
            listed = suppression.reason_in(self.log._conn, m.normalize_email(req.email))
        d = decide(req, now, self._times, listed)
        d = replace(d, id=-(len(self.planned) + 1))
        self.planned.append(d)
        self._by_key[d.key] = d
        return d

    def _times(
        self, req: DeliveryRequest, email_norm: str | None, pol: Policy, lo: int, hi: int
    ) -> list[int]:
        with self.log._lock:
            times = self.log._times(self.log._conn, req, email_norm, pol, lo, hi)
        for d in self.planned:
            same = (d.node == req.node and d.contact_id == req.contact_id) or (
                pol.is_global and email_norm is not None and d.email_norm == email_norm
            )
            if same and d.counted and lo < d.due_ms < hi and pol.applies_to(d.channel):
                times.append(d.due_ms)
        return times

    def list(
        self,
        contact: str | None = None,
        status: str | None = None,
        since_ms: int | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        """What the dry run decided (not the real log)."""
        out = [
            d
            for d in self.planned
            if (contact is None or d.contact_id == contact)
            and (status is None or d.status == status)
            and (since_ms is None or d.due_ms >= since_ms)
        ]
        return out if limit is None else out[-limit:]
