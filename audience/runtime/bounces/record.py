"""What a report records (docs/bounces.md): its delivery is found, its
``email_bounced`` / ``email_complained`` events go to the tracking outbox
(ingested into the contact's node as the tracking hits are), a hard bounce
or a complaint puts the address on the suppression list, all in one
transaction; a message that cannot be used is recorded in
``inbound_rejected`` with the reason.

Finding the delivery, first found wins: the VERP address the message was
sent to (the SMTP envelope, else the report's To / Delivered-To); the VERP
address in the returned message's Return-Path; its ``X-Audience-Token``
header.  All three are signed: the last two serve the feedback reports that
redact the recipient.  The unsigned ``X-Audience-Delivery`` and Message-ID
are not trusted: every recipient sees them, and could name another
contact's delivery with them to have that address suppressed.

A report is committed without an fsync, as the tracking hits are: it
survives a crash of the process, not a power cut of the machine (the few
reports lost then are bounces the next send shows again).

A report's events have ids derived from the report's bytes: the same report
received twice (a retrying MTA, an mbox imported again) records once.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from audience.runtime.bounces import classify as cl
from audience.runtime.bounces import verp
from audience.runtime.bounces.reports import NotAReport, Report, parse
from audience.runtime.delivery.log import DeliveryLog
from audience.runtime.delivery.model import Delivery, normalize_email, wall_ms
from audience.runtime.tracking.hits import event_of
from audience.runtime.tracking.outbox import to_outbox
from audience.runtime.tracking.suppression import COMPLAINT, HARD_BOUNCE, SuppressionError, add_in
from audience.runtime.tracking.tokens import Signer

MAX_BYTES = 10 * 1024 * 1024  # a report is a few kilobytes; a bigger message is refused
# rejection reasons
UNKNOWN_DELIVERY = "unknown_delivery"
NOT_A_BOUNCE = "not_a_bounce"  # Action: delayed, delivered, relayed, expanded
NOT_A_COMPLAINT = "not_a_complaint"  # a feedback report of another type (not-spam, ...)
TOO_LARGE = "too_large"
COMPLAINT_TYPES = ("abuse", "fraud", "virus")


@dataclass(frozen=True)
class Envelope:
    """Where a message came from: the SMTP envelope, or a file."""

    origin: str  # "smtp", or the file (with the message's number in an mbox)
    mail_from: str | None = None
    rcpt_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    kind: str  # "bounce", "complaint" or "rejected"
    delivery_id: int | None = None
    reason: str | None = None  # rejected: why
    detail: str = ""
    events: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """What ``audience inbound import --format json`` shows of it."""
        return {k: getattr(self, k) for k in ("kind", "delivery_id", "reason", "detail")}


class Inbound:
    """Records reports into one store's delivery log (thread-safe as the log is)."""

    def __init__(self, log: DeliveryLog, signer: Signer, clock: Callable[[], int] = wall_ms):
        self.log = log
        self.signer = signer
        self.clock = clock

    def receive(self, raw: bytes, env: Envelope) -> Outcome:
        if len(raw) > MAX_BYTES:
            return self.reject(env, raw, TOO_LARGE, f"{len(raw)} bytes, over {MAX_BYTES}")
        try:
            report = parse(raw)
        except NotAReport as exc:
            return self.reject(env, raw, exc.reason, exc.detail)
        d = self._delivery(report, env)
        if d is None:
            return self.reject(
                env, raw, UNKNOWN_DELIVERY, "no VERP address or X-Audience-Token names a delivery"
            )
        tag = hashlib.sha256(raw).hexdigest()[:16]
        now = self.clock()
        if report.kind == "delivery-status":
            return self._bounce(report, d, tag, now, env, raw)
        return self._complaint(report, d, tag, now, env, raw)

    # ------------------------------------------------------------------ kinds
    def _bounce(
        self, r: Report, d: Delivery, tag: str, now: int, env: Envelope, raw: bytes
    ) -> Outcome:
        failed = [s for s in r.recipients if s.action == "failed"]
        if not failed:
            actions = ", ".join(sorted({s.action or "(none)" for s in r.recipients}))
            return self.reject(env, raw, NOT_A_BOUNCE, f"Action: {actions}", d.id)
        mine = [s for s in failed if _same(d, s.final_recipient) or _same(d, s.original_recipient)]
        status = (mine or failed)[0]  # one RCPT per delivery: one recipient is ours
        bounce = cl.classify(None, status.diagnostic, _code(status.status, status.diagnostic))
        event = bounce_event(
            d,
            bounce,
            now,
            f"email_bounced:{self.log.uid}:{d.id}:{tag}",
            via="report",
            action="failed",
            remote_mta=status.remote_mta,
            reporting_mta=r.reporting_mta,
        )
        with self.log.transaction(synced=False) as conn:
            record_bounce(conn, d, bounce, event, now)
        return Outcome("bounce", d.id, events=(event,))

    def _complaint(
        self, r: Report, d: Delivery, tag: str, now: int, env: Envelope, raw: bytes
    ) -> Outcome:
        ftype = r.feedback_type or ""
        if ftype not in COMPLAINT_TYPES:
            return self.reject(env, raw, NOT_A_COMPLAINT, f"Feedback-Type: {ftype}", d.id)
        props = {
            "feedback_type": ftype,
            "user_agent": r.user_agent,
            "reporting_mta": r.reporting_mta,
            "via": "report",
        }
        event = event_of(
            d, "email_complained", now, props, f"email_complained:{self.log.uid}:{d.id}:{tag}"
        )
        with self.log.transaction(synced=False) as conn:
            to_outbox(conn, d.node, event)
            _suppress(conn, d, COMPLAINT, now)
        return Outcome("complaint", d.id, events=(event,))

    # ------------------------------------------------------------------ finding
    def _delivery(self, r: Report, env: Envelope) -> Delivery | None:
        for did in verp.deliveries_in(self.signer, [*env.rcpt_to, *r.to]):
            d = self.log.get(did)
            if d is not None:
                return d
        return None if r.original is None else self._by_original(r.original)

    def _by_original(self, original: Message) -> Delivery | None:
        paths = [str(v) for v in original.get_all("Return-Path") or []]
        for did in verp.deliveries_in(self.signer, paths):
            d = self.log.get(did)
            if d is not None:
                return d
        for token in original.get_all(verp.TOKEN_HEADER) or []:
            found = self.signer.read("b", " ".join(str(token).split()))
            d = None if found is None else self.log.get(found[0])
            if d is not None:
                return d
        return None

    # ------------------------------------------------------------------ rejected
    def reject(
        self,
        env: Envelope,
        raw: bytes,
        reason: str,
        detail: str,
        delivery_id: int | None = None,
        size: int | None = None,
    ) -> Outcome:
        """Record ``raw`` as rejected (``size``: its size when ``raw`` was not kept)."""
        head = raw[:65536].decode("utf-8", "replace")
        subject = _header(head, "Subject")
        message_id = _header(head, "Message-ID")
        n = len(raw) if size is None else size
        with self.log.transaction(synced=False) as conn:
            record_rejected(conn, self.clock(), env, reason, detail, n, subject, message_id)
        return Outcome("rejected", delivery_id, reason, detail)


def record_rejected(
    conn: sqlite3.Connection,
    now: int,
    env: Envelope,
    reason: str,
    detail: str,
    size: int,
    subject: str | None = None,
    message_id: str | None = None,
) -> None:
    conn.execute(
        "insert into inbound_rejected (received_ms, origin, reason, detail, mail_from, rcpt_to, "
        "size, subject, message_id) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            now,
            env.origin,
            reason,
            detail[:1000],
            env.mail_from,
            ", ".join(env.rcpt_to) or None,
            size,
            subject,
            message_id,
        ],
    )


def bounce_event(
    d: Delivery, bounce: cl.Bounce, now: int, event_id: str, **props: Any
) -> dict[str, Any]:
    return event_of(
        d,
        "email_bounced",
        now,
        {
            "bounce_class": bounce.bounce_class,
            "status_code": bounce.status_code,
            "diagnostic": bounce.diagnostic[:1000] or None,
            **props,
        },
        event_id,
    )


def record_bounce(
    conn: sqlite3.Connection, d: Delivery, bounce: cl.Bounce, event: dict[str, Any], now: int
) -> None:
    """The bounce's event, and the suppression a hard bounce makes (in ``conn``'s transaction)."""
    to_outbox(conn, d.node, event)
    if bounce.suppresses:
        _suppress(conn, d, HARD_BOUNCE, now)


def _suppress(conn: sqlite3.Connection, d: Delivery, reason: str, now: int) -> None:
    address = d.email or str(d.payload.get("to") or "")
    # a delivery without a usable address: nothing to suppress
    with contextlib.suppress(SuppressionError):
        add_in(conn, address, reason, source=d.source, delivery_id=d.id, now_ms=now)


def _same(d: Delivery, address: str | None) -> bool:
    return address is not None and normalize_email(address) == d.email_norm


def _code(status: str | None, diagnostic: str) -> str | None:
    """The Status field's code, unless it is a generic X.0.0 and the diagnostic
    names a precise one ("Status: 5.0.0" / "550 5.1.1 user unknown")."""
    precise = cl.enhanced_code(diagnostic)
    if status is None or cl.enhanced_code(status) is None:
        return precise
    if status.endswith(".0.0") and precise is not None:
        return precise
    return cl.enhanced_code(status)


def _header(head: str, name: str) -> str | None:
    m = re.search(rf"^{name}:[ \t]*(.*(?:\r?\n[ \t].*)*)", head, re.I | re.M)
    return None if m is None else " ".join(m.group(1).split())[:500] or None


def rejected(log: DeliveryLog, limit: int | None = None) -> list[dict[str, Any]]:
    """The rejected messages, newest first."""
    rows = log.read(
        "select id, received_ms, origin, reason, detail, mail_from, rcpt_to, size, subject, "
        "message_id from inbound_rejected order by id desc" + ("" if limit is None else " limit ?"),
        [] if limit is None else [limit],
    )
    keys = ("id", "received_ms", "origin", "reason", "detail", "mail_from", "rcpt_to", "size")
    return [dict(zip((*keys, "subject", "message_id"), r, strict=True)) for r in rows]


def signer_for(store_root: Any) -> Signer:
    from audience.runtime.tracking.config import secret

    return Signer(secret(store_root))
