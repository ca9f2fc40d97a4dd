"""Deliveries: the log and outbox, DND enforcement, and the senders (docs/language/dnd.md).

Recording (triggers, plans, journeys)::

    from audience.runtime.delivery import DeliveryLog, DeliveryRequest, Delivery, Policy

    log = DeliveryLog.open(store_root)        # STORE/deliveries.sqlite; None: in memory
    policy = Policy.from_ast(dnd_policy_ast)  # caps, channels, global, quiet hours
    d = log.request(DeliveryRequest(
        key=f"{trigger}:{event_key}:{action_index}",  # idempotency: same key -> same Delivery
        node="main", contact_id="c42", email="Angela@Example.com ",
        channel="email", kind="send_email",
        payload={"to": ..., "subject": ..., "html": ..., "text": ...},  # webhook: {"url", "body"}
        due_ms=event_ms + delay_ms, policy=policy, test=False,
        source="trigger:Thank newsletter subscribers",
        now_ms=None,                           # when the caps are checked (default: now)
        error=None))                           # a reason it cannot be sent: recorded "failed"
    log.request_many([req, ...]) -> list[Delivery]   # in one transaction
    with log.grouped():                       # the requests inside share one transaction
        log.request(req1); log.request(req2)
    d.status   # "reserved" | "deferred" | "suppressed" (then "sending", "sent", "failed")
    d.policy, d.cap, d.due_ms                 # e.g. "max 1 per day" when suppressed

    with log.dry_run() as dry:                # decides against the log + its own, writes nothing
        dry.request(req); dry.list()
    log.list(contact=None, status=None, since_ms=None, limit=None) -> list[Delivery]
    log.reserve_batch(node, contact_ids, emails, policy, due_ms, payload_for, source,
                      key_prefix, channel="email", kind="send_email", test=False,
                      now_ms=None) -> counts   # a plan's whole audience at once

Rules (docs/language/dnd.md): a delivery may leave at ``max(due_ms, now_ms)``, moved to the
end of the policy's quiet hours when it falls in them (status "deferred");
the caps are checked at that time: at most N deliveries to the contact in any
rolling window of K UNIT holding it, counting every non-test delivery that is
reserved, deferred, sending or sent, on the policy's channels (all when it
names none), whatever recorded it; ``global`` also counts deliveries to the
same normalized email (trimmed, lower-case) in every node of the store.  A
delivery that would break a cap is recorded "suppressed" with the policy name
and the cap's text.  Test sends are neither capped, deferred nor counted.
Check and record happen in one ``BEGIN IMMEDIATE`` transaction, so processes
sending at the same moment never together exceed a cap.

A batch (``reserve_batch``) is recorded as one row holding its members; they
count for the caps at once, and become ordinary rows (``list`` shows rows)
when the worker or ``log.materialize_all()`` gets to them (members.py).

Sending: ``run_worker(store_root, once=False)`` (worker.py) sends the due
deliveries by SMTP (smtp.py, STORE/smtp.toml or AUDIENCE_SMTP_*) and webhooks
(webhook.py), with leases, retries and a Message-ID derived from the delivery.
"""

from __future__ import annotations

from audience.runtime.delivery.dnd import CapRule, Policy
from audience.runtime.delivery.log import DeliveryLog, DryRun
from audience.runtime.delivery.model import (
    COUNTED,
    STATUSES,
    Delivery,
    DeliveryRequest,
    normalize_email,
)

__all__ = [
    "COUNTED",
    "STATUSES",
    "CapRule",
    "Delivery",
    "DeliveryLog",
    "DeliveryRequest",
    "DryRun",
    "Policy",
    "normalize_email",
]
