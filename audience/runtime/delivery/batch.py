"""Check and reserve one delivery per contact of a whole audience at once (plans).

A row per delivery costs SQLite several microseconds (the row and four
indexes), too slow for a million recipients, so a batch is recorded as ONE
``batches`` row holding its members (contact, email, verdict) as an Arrow
IPC blob.  The members count for the caps from that moment (see
``batch_times`` and ``_existing``); rows of the deliveries table that come
from a batch (``batch_id`` set) are not counted again.  The worker turns the
members into ordinary rows in chunks (``materialize``) to send them and
record their statuses.

The check itself: one range scan reads every counted delivery that can
matter (the policy's horizon around the batch's time), Arrow hash joins map
them to recipients, and the numba kernel decides every recipient; all inside
one ``BEGIN IMMEDIATE`` transaction, so the decision holds against concurrent
senders exactly as for ``DeliveryLog.request``.

Every delivery of a batch is due at the same instant ``t``, so recipients that
share a normalized email under a ``global`` policy (a group) see each other:
every window that holds ``t`` holds all the group's earlier admissions.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit, types

from audience.engine.kernels.config import I64, NJIT, B, ro, rw
from audience.runtime.delivery import model as m
from audience.runtime.delivery.dnd import Policy
from audience.runtime.delivery.members import (
    ADMITTED,
    SKIPPED,
    _batches_in,
    _counting,
    members_blob,
)
from audience.runtime.tracking import suppression

if TYPE_CHECKING:
    from audience.runtime.delivery.log import DeliveryLog

# a payload for all, one per contact (a function, or JSON texts: a list or an Arrow array)
PayloadFor: TypeAlias = (
    Callable[[str, str | None], dict[str, Any]] | dict[str, Any] | list[str] | Any
)
_I64_MIN = np.iinfo(np.int64).min


@njit(
    [
        types.void(
            ro(I64),
            ro(I64),
            types.Array(I64, 2, "C", readonly=True),
            ro(I64),
            ro(I64),
            I64,
            ro(I64),
            ro(B),
            rw(I64),
            rw(I64),
        )
    ],
    **NJIT,
)
def _decide(offsets, times, lo_times, lo_t, caps_max, t, group, skip, admitted, out):
    """``out[i]``: ADMITTED, SKIPPED, or the index of the first cap recipient i
    would break.  ``times[offsets[i]:offsets[i+1]]`` are i's counted delivery
    times, sorted; ``lo_times[c, j]`` is the window start of cap c for the
    window ending at ``times[j]`` (needed only where ``times[j] >= t``)."""
    n_caps = caps_max.shape[0]
    for i in range(group.shape[0]):
        if skip[i]:
            out[i] = -2
            continue
        a = offsets[i]
        b = offsets[i + 1]
        mine = times[a:b]
        k = admitted[group[i]]  # this batch's earlier deliveries counted for i, all at t
        broken = -1
        first_later = a + np.searchsorted(mine, t, side="left")
        at_or_before_t = np.searchsorted(mine, t, side="right")
        for c in range(n_caps):
            held = at_or_before_t - np.searchsorted(mine, lo_t[c], side="right")
            if held + k + 1 > caps_max[c]:
                broken = c
                break
            # the windows ending at a later delivery u hold t while they start before it
            for j in range(first_later, b):
                lo = lo_times[c, j]
                if lo >= t:
                    break
                held = np.searchsorted(mine, times[j], side="right") - np.searchsorted(
                    mine, lo, side="right"
                )
                if held + k + 1 > caps_max[c]:
                    broken = c
                    break
            if broken >= 0:
                break
        if broken < 0:
            admitted[group[i]] += 1
        out[i] = broken


@njit([types.void(ro(I64), ro(I64), ro(I64), rw(I64))], **NJIT)
def _group_times(owner, when, offsets, out):
    """``out[offsets[i]:offsets[i+1]]``: the times of recipient i, sorted (a
    counting sort by owner, then an insertion sort of each short run)."""
    fill = offsets[:-1].copy()
    for p in range(owner.shape[0]):
        o = owner[p]
        out[fill[o]] = when[p]
        fill[o] += 1
    for i in range(offsets.shape[0] - 1):
        for j in range(offsets[i] + 1, offsets[i + 1]):
            v = out[j]
            k = j - 1
            while k >= offsets[i] and out[k] > v:
                out[k + 1] = out[k]
                k -= 1
            out[k + 1] = v


# ---------------------------------------------------------------------- reserve


def reserve_batch(
    log: DeliveryLog,
    node: str,
    contact_ids: Sequence[str] | pa.Array,
    emails: Sequence[str | None] | pa.Array,
    policy: Policy | None,
    due_ms: int,
    payload_for: PayloadFor,
    source: str,
    key_prefix: str,
    *,
    channel: str = "email",
    kind: str = "send_email",
    test: bool = False,
    now_ms: int | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """One delivery per contact (key ``key_prefix + contact_id``), due at
    ``max(due_ms, now)`` moved past quiet hours.  ``payload_for``: one payload
    for all (stored once), a function of (contact_id, email), or each
    contact's payload already as JSON text (a list or an Arrow array).
    ``contact_ids`` and ``emails`` may be Arrow string arrays.

    Returns counts: requested, reserved, deferred, suppressed, existing
    (repeated contacts and keys already recorded), by_cap, due_ms, batch_id.
    The same ``key_prefix`` again records nothing and returns the first counts.
    ``dry_run``: decide, record nothing, and add each contact's verdict
    (``codes``: ADMITTED, SKIPPED or the index of the cap it would break)."""
    n = len(contact_ids)
    if len(emails) != n:
        raise ValueError("reserve_batch: contact_ids and emails differ in length")
    now = now_ms if now_ms is not None else m.wall_ms()
    t = max(due_ms, now)
    applies = policy is not None and not test and policy.applies_to(channel)
    ok_status = m.RESERVED
    if applies and policy is not None:
        deferred = policy.defer(t)
        if deferred != t:
            ok_status, t = m.DEFERRED, deferred
    cids = pa.array(contact_ids, type=pa.string())
    stripped = pc.utf8_trim_whitespace(pa.array(emails, type=pa.string()))
    stripped = pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)
    norms = pc.utf8_lower(stripped)
    payloads: pa.Array | None = None
    if isinstance(payload_for, list | pa.Array):  # each contact's payload JSON, made by the
        # caller (an Arrow dictionary array stores a text shared by many contacts once)
        payloads = payload_for if isinstance(payload_for, pa.Array) else pa.array(payload_for)
    elif not isinstance(payload_for, dict):
        payloads = pa.array(
            [
                m.dumps(payload_for(c, e))
                for c, e in zip(contact_ids, stripped.to_pylist(), strict=True)
            ],
            type=pa.string(),
        )
    cap_texts = [c.text for c in policy.caps] if policy is not None else []

    with log.transaction() as conn:
        done = conn.execute(
            "select counts from batches where key_prefix = ?", [key_prefix]
        ).fetchone()
        if done is not None:
            return dict(json.loads(done[0]), existing=n)
        skip = _skip(conn, key_prefix, cids)
        # addresses on the suppression list: no marketing email (tests are sent)
        reason, reasons = (
            suppression.reasons_in(conn, norms)
            if kind == "send_email" and not test
            else (np.full(n, -1, dtype=np.int64), [])
        )
        listed = (reason >= 0) & ~skip
        codes = np.where(skip, SKIPPED, ADMITTED).astype(np.int64)
        if applies and policy is not None and policy.caps:
            codes = _check(conn, log.uid, node, cids, norms, policy, t, skip | listed)
        if listed.any():  # recorded suppressed with the list's reason as their "cap"
            first = len(cap_texts)
            cap_texts = [*cap_texts, *reasons]
            codes[listed] = first + reason[listed]
        admitted = int(np.count_nonzero(codes == ADMITTED))
        hist = np.bincount(codes[codes >= 0], minlength=len(cap_texts))
        counts: dict[str, Any] = {
            "requested": n,
            "reserved": admitted if ok_status == m.RESERVED else 0,
            "deferred": admitted if ok_status == m.DEFERRED else 0,
            "suppressed": int(np.count_nonzero(codes >= 0)),
            "existing": int(np.count_nonzero(codes == SKIPPED)),
            "by_cap": {cap_texts[c]: int(hist[c]) for c in range(len(cap_texts)) if hist[c]},
            "due_ms": t,
        }
        if dry_run:  # decided as it would be, nothing recorded (a plan's preview)
            return {**counts, "codes": codes}
        members = pa.table(
            {
                "contact_id": cids,
                "email": stripped,
                "email_norm": norms,
                "code": pa.array(codes.astype(np.int8)),
                "payload": payloads if payloads is not None else pa.nulls(n, pa.string()),
            }
        )
        payload_ref = None
        if isinstance(payload_for, dict):
            cur = conn.execute("insert into payloads (body) values (?)", [m.dumps(payload_for)])
            payload_ref = cur.lastrowid
        cur = conn.execute(
            "insert into batches (key_prefix, node, channel, kind, payload_ref, policy, caps, "
            "source, requested_ms, due_ms, status, test, created_ms, total, counts, members) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                key_prefix,
                node,
                channel,
                kind,
                payload_ref,
                policy.name if policy is not None else None,
                json.dumps(cap_texts),
                source,
                due_ms,
                t,
                ok_status,
                int(test),
                m.wall_ms(),
                n,
                "{}",
                members_blob(members),
            ],
        )
        counts["batch_id"] = int(cur.lastrowid or 0)
        conn.execute(
            "update batches set counts = ? where id = ?", [json.dumps(counts), counts["batch_id"]]
        )
    return counts


def _skip(conn: sqlite3.Connection, key_prefix: str, cids: pa.Array) -> np.ndarray:
    """True for a repeated contact (the first decides) and for keys already recorded."""
    n = len(cids)
    skip = np.zeros(n, dtype=np.bool_)
    distinct = pc.unique(cids)
    if len(distinct) != n:
        skip[:] = True
        first = np.unique(np.asarray(pc.index_in(cids, distinct)), return_index=True)[1]
        skip[first] = False
    # one range scan of the unique key index rather than a lookup per key
    found = [
        r[0][len(key_prefix) :]
        for r in conn.execute(
            "select key from deliveries where key >= ? and key < ?",
            [key_prefix, key_prefix + "\U0010ffff"],
        )
    ]
    if found:
        skip |= np.asarray(pc.is_in(cids, pa.array(found, type=pa.string())))
    return skip


def _existing(
    conn: sqlite3.Connection, uid: str, node: str, pol: Policy, lo: int, hi: int
) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """(contact in this node or null, normalized email, due) of every counted
    delivery in ``(lo, hi)``: single rows and batch members."""
    chan = ""
    params: list[Any] = [lo, hi]
    if pol.channels:
        chan = f" and channel in ({', '.join('?' * len(pol.channels))})"
        params += list(pol.channels)
    rows = conn.execute(
        "select case when node = ? then contact_id end, email_norm, due_ms "
        "from deliveries indexed by deliveries_single "
        f"where batch_id is null and test = 0 and status in {m.COUNTED_SQL} "
        f"and due_ms > ? and due_ms < ?{chan}",
        [node, *params],
    ).fetchall()
    contact_parts = [pa.array([r[0] for r in rows], type=pa.string())]
    email_parts = [pa.array([r[1] for r in rows], type=pa.string())]
    time_parts = [np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))]
    for batch_id, b_node, due in _batches_in(conn, pol, lo, hi):
        members = _counting(conn, uid, batch_id)
        col = members.column("contact_id").combine_chunks()
        contact_parts.append(col if b_node == node else pa.nulls(len(col), pa.string()))
        email_parts.append(members.column("email_norm").combine_chunks())
        time_parts.append(np.full(members.num_rows, due, dtype=np.int64))
    return (
        pa.concat_arrays(contact_parts),
        pa.concat_arrays(email_parts),
        np.concatenate(time_parts),
    )


def _codes(ours: pa.Array, theirs: pa.Array) -> tuple[np.ndarray, np.ndarray, int]:
    """Equal strings get equal codes (one hash pass over both); null gets -1."""
    enc = pc.dictionary_encode(pa.concat_arrays([ours, theirs]))
    codes = np.asarray(pc.fill_null(enc.indices, -1), dtype=np.int64)
    return codes[: len(ours)], codes[len(ours) :], len(enc.dictionary)


def _check(
    conn: sqlite3.Connection,
    uid: str,
    node: str,
    cids: pa.Array,
    norms: pa.Array,
    policy: Policy,
    t: int,
    skip: np.ndarray,
) -> np.ndarray:
    """The kernel's verdict per recipient (see ``_decide``)."""
    n = len(cids)
    lo, hi = policy.horizon(t)
    ex_contact, ex_email, ex_time = _existing(conn, uid, node, policy, lo, hi)
    rows = np.arange(len(ex_time), dtype=np.int64)
    # pairs (existing delivery, recipient it counts for)
    rc, ec, k = _codes(cids, ex_contact)
    first = np.full(k + 1, -1, dtype=np.int64)  # code -> its first recipient; [-1] stays -1
    first[rc[::-1]] = np.arange(n, dtype=np.int64)[::-1]
    by_contact = first[ec]
    pair_row = [rows[by_contact >= 0]]
    pair_owner = [by_contact[by_contact >= 0]]
    group = np.arange(n, dtype=np.int64)
    if policy.is_global:
        rec_u, ex_u, k = _codes(norms, ex_email)
        has = rec_u >= 0
        # recipients by email: CSR over the email codes (sizes 0 for others' emails)
        order = np.argsort(np.where(has, rec_u, k), kind="stable")[: int(has.sum())]
        sizes = np.bincount(rec_u[has], minlength=k)
        starts = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        group[has] = order[starts[rec_u[has]]]  # the first recipient with that email
        hit = rows[ex_u >= 0]
        per = sizes[ex_u[hit]]
        flat = np.repeat(starts[ex_u[hit]], per) + (
            np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
        )
        e_row = np.repeat(hit, per)
        e_owner = order[flat]
        # a delivery that matches a recipient by contact and by email counts once
        fresh = e_owner != by_contact[e_row]
        pair_row.append(e_row[fresh])
        pair_owner.append(e_owner[fresh])
    owner = np.concatenate(pair_owner)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=offsets[1:])
    times = np.empty(len(owner), dtype=np.int64)
    _group_times(owner, ex_time[np.concatenate(pair_row)], offsets, times)
    caps = policy.caps
    lo_times = np.full((len(caps), len(times)), _I64_MIN, dtype=np.int64)
    later = times >= t
    for c, cap in enumerate(caps):
        if cap.fixed_ms is not None:
            lo_times[c] = times - cap.fixed_ms
        else:  # calendar months: one zone-aware computation per distinct later time
            starts_of = {int(u): policy.window_lo(cap, int(u)) for u in np.unique(times[later])}
            lo_times[c, later] = [starts_of[int(u)] for u in times[later]]
    lo_t = np.array([policy.window_lo(c, t) for c in caps], dtype=np.int64)
    caps_max = np.array([c.max for c in caps], dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    admitted = np.zeros(n, dtype=np.int64)
    _decide(offsets, times, lo_times, lo_t, caps_max, t, group, skip, admitted, out)
    return out
