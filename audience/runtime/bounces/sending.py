"""Bounces at sending time: the envelope sender a delivery leaves with (its
VERP return path, when the store has a ``tracking.return_path_domain``), and
what a refusal by the receiving server records once the delivery has failed
for good: its ``email_bounced`` event (``via`` = ``smtp``) and, for a hard
bounce, the suppression of the address.  A refusal that is retried records
nothing yet: a soft bounce that later goes through is no bounce."""

from __future__ import annotations

from pathlib import Path

from audience.runtime.bounces import verp
from audience.runtime.bounces.classify import Bounce
from audience.runtime.bounces.record import bounce_event, record_bounce
from audience.runtime.delivery.log import DeliveryLog
from audience.runtime.delivery.model import Delivery
from audience.runtime.tracking.config import TrackingConfig, secret
from audience.runtime.tracking.tokens import Signer


class BounceRecorder:
    def __init__(self, log: DeliveryLog, signer: Signer, domain: str | None) -> None:
        self.log = log
        self.signer = signer
        self.domain = domain

    @classmethod
    def for_store(cls, log: DeliveryLog, store_root: Path | str | None) -> BounceRecorder:
        cfg = TrackingConfig.load(store_root)
        return cls(log, Signer(secret(store_root)), cfg.return_path_domain)

    def envelope_from(self, d: Delivery) -> str | None:
        """The VERP return path of a marketing email; None: the usual sender."""
        if self.domain is None or not _marketing(d):
            return None
        return verp.return_path(self.signer, self.domain, d.id)

    def headers(self, d: Delivery) -> dict[str, str]:
        """The signed header that names a marketing email's delivery in a
        feedback report that hides the recipient and the return path."""
        return {verp.TOKEN_HEADER: self.signer.sign("b", d.id)} if _marketing(d) else {}

    def refused(self, d: Delivery, bounce: Bounce, now_ms: int) -> None:
        """Record the final refusal of ``d`` (test sends record nothing)."""
        if not _marketing(d):
            return
        event = bounce_event(
            d,
            bounce,
            now_ms,
            f"email_bounced:{self.log.uid}:{d.id}:smtp",
            via="smtp",
            action="failed",
            remote_mta=None,
            reporting_mta=None,
        )
        with self.log.transaction() as conn:
            record_bounce(conn, d, bounce, event, now_ms)


def _marketing(d: Delivery) -> bool:
    return not d.test and d.kind == "send_email" and d.id > 0
