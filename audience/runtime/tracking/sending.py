"""Tracking at send time: the worker asks the ``Tracker`` for a delivery's
message as it leaves: links rewritten, the open pixel, the RFC 8058 one-click
unsubscribe headers; the links as they were are recorded first, so a click
can be redirected only to what was sent.

Only marketing sends are tracked: test sends, and every send of a store with
no ``tracking.base_url``, leave as they were rendered."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from audience.runtime.delivery.model import Delivery
from audience.runtime.tracking.config import TrackingConfig, secret
from audience.runtime.tracking.hits import event_of
from audience.runtime.tracking.links import Link, rewrite
from audience.runtime.tracking.outbox import to_outbox
from audience.runtime.tracking.tokens import Signer

if TYPE_CHECKING:
    from audience.runtime.delivery.log import DeliveryLog


class Tracker:
    def __init__(self, log: DeliveryLog, base_url: str, key: bytes) -> None:
        self.log = log
        self.base_url = base_url
        self.signer = Signer(key)

    @classmethod
    def for_store(cls, log: DeliveryLog, store_root: Path | str | None) -> Tracker | None:
        """The store's tracker; None when no base URL is configured."""
        cfg = TrackingConfig.load(store_root)
        if cfg.base_url is None:
            return None
        return cls(log, cfg.base_url, secret(store_root))

    def prepare(self, d: Delivery) -> tuple[dict[str, Any], dict[str, str]]:
        """(payload with its html and text rewritten, extra headers) for ``d``;
        a test send's payload as it was, and no headers."""
        if d.test or d.kind != "send_email":
            return d.payload, {}
        p = d.payload
        html, text = p.get("html"), p.get("text")
        r = rewrite(
            None if html is None else str(html),
            None if text is None else str(text),
            self.base_url,
            d.id,
            self.signer,
        )
        record_links(self.log, d.id, r.links)
        payload = dict(p)
        if r.html is not None:
            payload["html"] = r.html
        if r.text is not None:
            payload["text"] = r.text
        headers = {
            "List-Unsubscribe": f"<{self.base_url}/t/u/{self.signer.sign('u', d.id)}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        return payload, headers

    def sent(self, d: Delivery, now_ms: int) -> None:
        """Queue ``email_sent`` for ``d`` (its id is the delivery's: a resend
        after a crash queues the same event, which the store keeps once)."""
        if d.test or d.kind != "send_email":
            return
        event = event_of(d, "email_sent", now_ms, {}, f"email_sent:{self.log.uid}:{d.id}")
        with self.log.transaction() as conn:
            to_outbox(conn, d.node, event)


def record_links(log: DeliveryLog, delivery_id: int, links: tuple[Link, ...]) -> None:
    """The delivery's links (a resend rewrites the same ones: replaced)."""
    with log.transaction() as conn:
        conn.execute("delete from delivery_links where delivery_id = ?", [delivery_id])
        conn.executemany(
            "insert into delivery_links (delivery_id, idx, url, text, hidden) "
            "values (?, ?, ?, ?, ?)",
            [(delivery_id, k.index, k.url, k.text, int(k.hidden)) for k in links],
        )
