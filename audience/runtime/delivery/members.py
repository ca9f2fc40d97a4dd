"""Batch members: how a batch stores its audience, counts it, and turns it into rows.

A batch (batch.py) is one ``batches`` row whose members (contact, email,
normalized email, verdict code, payload) are an Arrow IPC blob, immutable
once written.  Its admitted members count for the caps from the moment it is
recorded, at the batch's due time, except those whose row has failed since;
deliveries rows made from a batch (``batch_id`` set) are never counted again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from audience.runtime.delivery import model as m
from audience.runtime.delivery.dnd import Policy

if TYPE_CHECKING:
    from audience.runtime.delivery.log import DeliveryLog

SKIPPED = -2  # a repeated contact, or its key is already in the log
ADMITTED = -1


def members_blob(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    opts = ipc.IpcWriteOptions(compression="zstd")
    with ipc.new_file(sink, table.schema, options=opts) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


class Members:
    """A batch's members (immutable once written, so cached per process), with a
    lookup of the admitted ones by contact and by email, built on first use."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._by_contact: dict[str, int] | None = None
        self._by_email: dict[str, list[int]] | None = None

    def _build(self) -> None:
        admitted = np.flatnonzero(np.asarray(self.table.column("code")) == ADMITTED).tolist()
        contacts = self.table.column("contact_id").to_pylist()
        emails = self.table.column("email_norm").to_pylist()
        by_contact: dict[str, int] = {}
        by_email: dict[str, list[int]] = {}
        for i in admitted:
            by_contact[contacts[i]] = i
            if emails[i] is not None:
                by_email.setdefault(emails[i], []).append(i)
        self._by_contact, self._by_email = by_contact, by_email

    def admitted_for(self, contact_id: str | None, email_norm: str | None) -> set[int]:
        """Admitted members to this contact (None: any) or this normalized email."""
        if self._by_contact is None or self._by_email is None:
            self._build()
        assert self._by_contact is not None and self._by_email is not None
        found = set(self._by_email.get(email_norm, ())) if email_norm is not None else set()
        if contact_id is not None and contact_id in self._by_contact:
            found.add(self._by_contact[contact_id])
        return found


_cache: OrderedDict[tuple[str, int], Members] = OrderedDict()
_cache_lock = threading.Lock()


def load_members(conn: sqlite3.Connection, uid: str, batch_id: int) -> Members:
    with _cache_lock:
        hit = _cache.get((uid, batch_id))
        if hit is not None:
            _cache.move_to_end((uid, batch_id))
            return hit
    blob = conn.execute("select members from batches where id = ?", [batch_id]).fetchone()[0]
    members = Members(ipc.open_file(pa.py_buffer(blob)).read_all())
    with _cache_lock:
        _cache[(uid, batch_id)] = members
        while len(_cache) > 8:
            _cache.popitem(last=False)
    return members


def failed_members(conn: sqlite3.Connection, batch_id: int) -> list[int]:
    """Members whose row failed: they no longer count (a small partial index)."""
    return [
        r[0]
        for r in conn.execute(
            "select member_idx from deliveries where batch_id = ? and status = 'failed'",
            [batch_id],
        )
    ]


def _batches_in(
    conn: sqlite3.Connection, pol: Policy, lo: int, hi: int
) -> list[tuple[int, str, int]]:
    """(id, node, due_ms) of the batches whose members count in ``(lo, hi)``."""
    chan = ""
    params: list[Any] = [lo, hi]
    if pol.channels:
        chan = f" and channel in ({', '.join('?' * len(pol.channels))})"
        params += list(pol.channels)
    return conn.execute(
        f"select id, node, due_ms from batches where due_ms > ? and due_ms < ? and test = 0{chan}",
        params,
    ).fetchall()


def _counting(conn: sqlite3.Connection, uid: str, batch_id: int) -> pa.Table:
    """The members that count: admitted, and not failed since."""
    table = load_members(conn, uid, batch_id).table
    keep = np.asarray(table.column("code")) == ADMITTED
    failed = failed_members(conn, batch_id)
    if failed:
        keep[np.asarray(failed, dtype=np.int64)] = False
    return table.filter(pa.array(keep))


def batch_times(
    conn: sqlite3.Connection,
    uid: str,
    node: str,
    contact_id: str,
    email_norm: str | None,
    pol: Policy,
    lo: int,
    hi: int,
) -> list[int]:
    """For ``DeliveryLog.request``: the times of the batch members counted for one contact."""
    times: list[int] = []
    for batch_id, b_node, due in _batches_in(conn, pol, lo, hi):
        found = load_members(conn, uid, batch_id).admitted_for(
            contact_id if b_node == node else None, email_norm if pol.is_global else None
        )
        if found:
            found.difference_update(failed_members(conn, batch_id))
            times += [due] * len(found)
    return times


def materialize(log: DeliveryLog, chunk: int = 2000) -> int:
    """Turn up to ``chunk`` batch members into deliveries rows (oldest batch
    first); returns how many members it consumed (0: nothing left)."""
    with log.transaction() as conn:
        row = conn.execute(
            "select id, key_prefix, node, channel, kind, payload_ref, policy, caps, source, "
            "requested_ms, due_ms, status, test, created_ms, total, materialized from batches "
            "where materialized < total order by id limit 1"
        ).fetchone()
        if row is None:
            return 0
        (bid, prefix, node, channel, kind, ref, pol, caps, source, req, due, status, test,
         created, total, start) = row  # fmt: skip
        cap_texts = json.loads(caps)
        end = min(total, start + chunk)
        part = load_members(conn, log.uid, bid).table.slice(start, end - start).to_pydict()
        values = []
        for k in range(end - start):
            code = part["code"][k]
            if code == SKIPPED:
                continue
            contact = part["contact_id"][k]
            values.append(
                (
                    prefix + contact,
                    node,
                    contact,
                    part["email"][k],
                    part["email_norm"][k],
                    channel,
                    kind,
                    part["payload"][k],
                    ref,
                    status if code == ADMITTED else m.SUPPRESSED,
                    pol,
                    None if code == ADMITTED else cap_texts[code],
                    req,
                    due,
                    test,
                    source,
                    created,
                    bid,
                    start + k,
                )
            )
        # "or ignore": a key a single request took meanwhile stays that request's
        conn.executemany(
            "insert or ignore into deliveries (key, node, contact_id, email, email_norm, "
            "channel, kind, payload, payload_ref, status, policy, cap, requested_ms, due_ms, "
            "test, source, created_ms, batch_id, member_idx) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )
        conn.execute("update batches set materialized = ? where id = ?", [end, bid])
    return end - start
