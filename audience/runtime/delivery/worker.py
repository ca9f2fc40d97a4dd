"""The worker: sends the due deliveries (email by SMTP, webhooks by HTTP).

Never lose, never send twice in the common case, and say exactly when:

1. Claim.  In one ``BEGIN IMMEDIATE`` transaction the worker takes the next
   due row and makes it ``sending`` with ``lease_until = now + lease``.  The
   write lock serialises claims, so two workers never hold the same row; a
   ``sending`` row is taken again only once its lease ran out (its worker
   died).  The lease is longer than any attempt can take (at least three
   times the SMTP/HTTP timeout), so a live worker never loses its row.
2. Envelope.  SMTP MAIL and RCPT are sent; the server has no message yet.
3. ``phase = 'data'`` is committed, then the message (DATA) or the webhook
   POST goes out.
4. ``sent`` is committed.

A crash before step 3 leaves ``phase`` short of 'data': the server never got
the message, and the resend after the lease is exactly-once.  A crash after
step 3 and before step 4 is the one window no client can close: the server
may have accepted the message (it has once it answered DATA, even if that
answer never reached us) and SMTP has no way to ask.  The worker then sends
again (at-least-once: a delivery is never lost) with the SAME Message-ID,
derived from the delivery id, and counts it in ``resends``; MTAs and mail
clients collapse copies with one Message-ID, and a webhook receiver gets the
same ``Idempotency-Key``.  At most one delivery per crashed worker is in that
window.  A failed attempt goes back to the queue with exponential backoff;
after ``max_attempts``, or on a permanent error (5xx), it is ``failed``.

One RCPT per SMTP transaction, so that a refusal (at RCPT, or DATA's answer)
belongs to one recipient.  A refusal is classified (bounces/classify.py):
a soft bounce is retried even as a 5xx (5.2.2 mailbox full), and the
refusal that fails a delivery for good records ``email_bounced``
(bounces/sending.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from audience.runtime.bounces.classify import classify
from audience.runtime.bounces.sending import BounceRecorder
from audience.runtime.delivery.log import DeliveryLog
from audience.runtime.delivery.model import Delivery, wall_ms
from audience.runtime.delivery.smtp import (
    SendError,
    SmtpConfig,
    SmtpConfigError,
    SmtpSender,
    build_message,
    not_configured_message,
)
from audience.runtime.delivery.webhook import post_json
from audience.runtime.node import Node, open_node
from audience.runtime.tracking.outbox import drain as ingest_outbox
from audience.runtime.tracking.sending import Tracker

MAX_BACKOFF_S = 6 * 3600


@dataclass
class WorkerStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    resent: int = 0  # attempts at deliveries a crashed worker may have sent already
    materialized: int = 0  # batch members turned into rows
    last_error: str | None = None  # of the last attempt that failed
    last_error_kind: str | None = None  # that delivery's kind ("send_email", "webhook")
    next_retry_ms: int | None = None  # the earliest retry this run scheduled

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed


class SmtpNotConfigured(SmtpConfigError):
    """Emails are due and no SMTP server is configured: the worker stops rather
    than guess one.  ``stats``: what it did before (webhooks it sent)."""

    def __init__(self, message: str, due: int, stats: WorkerStats | None = None) -> None:
        super().__init__(message)
        self.due = due  # the emails due now (0: unknown, found while sending)
        self.stats = stats or WorkerStats()


class Worker:
    def __init__(
        self,
        log: DeliveryLog,
        smtp: SmtpConfig,
        *,
        lease_s: float = 300.0,
        max_attempts: int = 5,
        backoff_s: float = 60.0,
        webhook_timeout: float = 10.0,
        webhook_retries: int = 2,
        tracking: Tracker | None = None,
        bounces: BounceRecorder | None = None,
    ) -> None:
        self.log = log
        self.smtp = smtp
        self.tracking = tracking  # None: messages leave as rendered
        self.bounces = bounces  # None: refusals are not recorded as bounces
        self.sender = SmtpSender(smtp)
        # an attempt must end before its lease does, or a second worker could take it
        self.lease_ms = int(
            max(lease_s, 3 * smtp.timeout, 3 * webhook_timeout * (webhook_retries + 1)) * 1000
        )
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.webhook_timeout = webhook_timeout
        self.webhook_retries = webhook_retries
        self.stats = WorkerStats()

    def drain(self, stop: threading.Event | None = None) -> int:
        """Send every delivery due now; returns how many were handled."""
        handled = 0
        while stop is None or not stop.is_set():
            # a chunk of batch members becomes rows per round, so a big plan
            # starts sending at once instead of after all its rows are made
            moved = self.log.materialize()
            self.stats.materialized += moved
            d = self.log.claim(wall_ms(), self.lease_ms)
            if d is None:
                if moved:
                    continue
                break
            self.process(d)
            handled += 1
        return handled

    def process(self, d: Delivery) -> None:
        if d.kind == "send_email" and not self.smtp.configured:
            # back to the queue, due as before: no server was tried
            self.log.mark_retry(d.id, "not sent: no SMTP server is configured", wall_ms())
            root = None if self.log.path is None else self.log.path.parent
            raise SmtpNotConfigured(not_configured_message(root), 0, self.stats)
        if d.resends:
            self.stats.resent += 1
        try:
            self._send(d)
        except SendError as exc:
            self.stats.last_error, self.stats.last_error_kind = str(exc), d.kind
            bounce = None if exc.reply is None else classify(*exc.reply)
            permanent = exc.permanent if bounce is None else not bounce.transient
            if permanent or d.attempts >= self.max_attempts:
                if bounce is not None and self.bounces is not None:
                    self.bounces.refused(d, bounce, wall_ms())
                self.log.mark_failed(d.id, str(exc))
                self.stats.failed += 1
            else:
                delay = min(self.backoff_s * 2 ** (d.attempts - 1), MAX_BACKOFF_S)
                retry_ms = wall_ms() + int(delay * 1000)
                self.log.mark_retry(d.id, str(exc), retry_ms)
                self.stats.retried += 1
                if self.stats.next_retry_ms is None or retry_ms < self.stats.next_retry_ms:
                    self.stats.next_retry_ms = retry_ms
            return
        now = wall_ms()
        if self.tracking is not None:
            self.tracking.sent(d, now)
        self.log.mark_sent(d.id, now)
        self.stats.sent += 1

    def _send(self, d: Delivery) -> None:
        def before_data() -> None:
            self.log.set_phase(d.id, "data")

        if d.kind == "send_email":
            verp = None if self.bounces is None else self.bounces.envelope_from(d)
            envelope_from = verp or d.payload.get("sender")
            headers: dict[str, str] = {}
            if self.tracking is not None:
                payload, headers = self.tracking.prepare(d)
                d = replace(d, payload=payload)
            if self.bounces is not None:
                headers = {**headers, **self.bounces.headers(d)}
            self.sender.send(
                build_message(d, self.smtp, headers), before_data, str(envelope_from or "") or None
            )
        elif d.kind == "webhook":
            url = d.payload.get("url")
            if not isinstance(url, str):
                raise SendError("webhook without a url", permanent=True)
            headers = {str(k): str(v) for k, v in (d.payload.get("headers") or {}).items()}
            headers["Idempotency-Key"] = d.message_id or str(d.id)
            before_data()
            post_json(
                url,
                d.payload.get("body", {}),
                headers=headers,
                timeout=self.webhook_timeout,
                retries=self.webhook_retries,
            )
        else:
            raise SendError(f"no sender for deliveries of kind {d.kind!r}", permanent=True)

    def close(self) -> None:
        self.sender.close()


def run_worker(
    store_root: Path | str | None,
    *,
    once: bool = False,
    poll_s: float = 1.0,
    stop: threading.Event | None = None,
    log: DeliveryLog | None = None,
    smtp: SmtpConfig | None = None,
    lease_s: float = 300.0,
    max_attempts: int = 5,
    backoff_s: float = 60.0,
    webhook_timeout: float = 10.0,
    webhook_retries: int = 2,
) -> WorkerStats:
    """Send due deliveries of STORE (or of ``log``): ``once`` sends what is due
    now and returns; otherwise polls every ``poll_s`` seconds until ``stop`` is set.
    SMTP settings: ``smtp``, else STORE/smtp.toml and AUDIENCE_SMTP_*; with none
    and emails due, raises ``SmtpNotConfigured`` (before sending anything when
    they are due at the start).  Links are tracked when the store has a
    ``tracking.base_url`` (docs/tracking.md)."""
    cfg = smtp or SmtpConfig.load(store_root)
    own = log is None
    the_log = DeliveryLog.open(store_root) if log is None else log
    if not cfg.configured:
        due = due_emails(the_log, wall_ms())
        if due:
            if own:
                the_log.close()
            raise SmtpNotConfigured(not_configured_message(store_root), due)
    root = store_root if store_root is not None else the_log.path and the_log.path.parent
    worker = Worker(
        the_log,
        cfg,
        lease_s=lease_s,
        max_attempts=max_attempts,
        backoff_s=backoff_s,
        webhook_timeout=webhook_timeout,
        webhook_retries=webhook_retries,
        tracking=Tracker.for_store(the_log, root),
        bounces=BounceRecorder.for_store(the_log, root),
    )
    stores: dict[str, Node] = {}

    def store_for(node: str) -> Node:
        assert root is not None
        if node not in stores:
            stores[node] = open_node(root, node)
        return stores[node]

    try:
        while True:
            handled = worker.drain(stop)
            if root is not None:
                # email_sent, bounces, and hits no server took yet
                ingest_outbox(the_log, store_for)
            if once or (stop is not None and stop.is_set()):
                break
            if not handled:
                worker.sender.close()  # idle: do not hold the SMTP connection
                if stop is not None:
                    stop.wait(poll_s)
                else:
                    time.sleep(poll_s)
    finally:
        worker.close()
        if own:
            the_log.close()
    return worker.stats


def due_emails(log: DeliveryLog, now_ms: int) -> int:
    """How many email deliveries are waiting to be sent now."""
    with log.transaction() as conn:
        row = conn.execute(
            "select count(*) from deliveries where kind = 'send_email' and status in "
            "('reserved', 'deferred') and due_ms <= ? and next_attempt_ms <= ?",
            [now_ms, now_ms],
        ).fetchone()
    return int(row[0])
