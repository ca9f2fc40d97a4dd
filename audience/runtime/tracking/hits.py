"""What a hit on a tracking URL does (docs/tracking.md), apart from HTTP: the
token is checked, the delivery and the link are read from the log, the bot
rules are applied, and the hit is recorded with its event in the outbox, in
one transaction; the outbox's events are ingested into the contact's node
right after (outbox.py), so triggers and journeys see them as any event.

A token that does not verify, or names a delivery or a link the log does not
hold, is ``None``: the caller answers 404 and records nothing.

Clicks and opens are committed without an fsync (they survive a crash of the
process, not a power loss of the machine: a few hits against several
milliseconds per click); an unsubscribe is synced before the page says so.

Bot flag (``bot`` = true; journeys' ``clicked`` and ``opened`` ignore such hits):
- a HEAD request (link scanners probe; people's browsers send GET);
- a hit less than ``tracking.bot_seconds`` (default 10) after the message was sent;
- a click on another link of the same message less than a second before this
  one (scanners follow every link at once);
- a click on a hidden link (an ``<a>`` styled ``display:none``).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audience.runtime.delivery.log import DeliveryLog
from audience.runtime.delivery.model import Delivery, wall_ms
from audience.runtime.tracking.config import TrackingConfig, secret
from audience.runtime.tracking.links import Link
from audience.runtime.tracking.outbox import to_outbox
from audience.runtime.tracking.suppression import UNSUBSCRIBED, add_in
from audience.runtime.tracking.tokens import Signer

SAME_BURST_MS = 1000  # two links of one message clicked this close: a scanner
MAX_USER_AGENT = 512


@dataclass(frozen=True)
class Hit:
    delivery: Delivery
    event: dict[str, Any] | None  # what the outbox holds for the node (None: nothing)
    link: Link | None = None  # the click's link (its url is where to redirect)


class Tracking:
    """The hits of one store; thread-safe (the log is)."""

    def __init__(
        self,
        store_root: Path | str | None,
        log: DeliveryLog,
        clock: Callable[[], int] = wall_ms,
        config: TrackingConfig | None = None,
    ) -> None:
        self.log = log
        self.clock = clock
        self.config = config or TrackingConfig.load(store_root)
        self.signer = Signer(secret(store_root))
        self.bot_ms = int(self.config.bot_seconds * 1000)

    # ------------------------------------------------------------------ kinds
    def click(self, token: str, user_agent: str | None, head: bool = False) -> Hit | None:
        found = self.signer.read("c", token)
        if found is None:
            return None
        delivery_id, idx = found
        now = self.clock()
        with self.log.transaction(synced=False) as conn:
            d = self.log.get(delivery_id)  # the log's lock is re-entrant
            link = None if d is None else _link(conn, delivery_id, idx)
            if d is None or link is None:
                return None
            bot = head or link.hidden or self._early(d, now) or _burst(conn, d.id, link.index, now)
            props = {
                "link": link.url,
                "link_index": link.index,
                "link_text": link.text or None,
                "user_agent": _ua(user_agent),
                "bot": bot,
            }
            event = event_of(d, "email_clicked", now, props)
            _record(conn, d, "click", link.index, now, bot, event)
        return Hit(d, event, link)

    def open(self, token: str, user_agent: str | None, head: bool = False) -> Hit | None:
        d = self._delivery("o", token)
        if d is None:
            return None
        now = self.clock()
        bot = head or self._early(d, now)
        event = event_of(d, "email_opened", now, {"user_agent": _ua(user_agent), "bot": bot})
        with self.log.transaction(synced=False) as conn:
            _record(conn, d, "open", None, now, bot, event)
        return Hit(d, event)

    def unsubscribe_page(self, token: str) -> Delivery | None:
        """The delivery an unsubscribe link names (GET: a page, nothing recorded)."""
        return self._delivery("u", token)

    def unsubscribe(self, token: str, user_agent: str | None) -> Hit | None:
        """Put the address on the suppression list; the ``unsubscribed`` event
        only the first time (a second POST finds it listed and records nothing)."""
        d = self._delivery("u", token)
        if d is None:
            return None
        address = d.email or str(d.payload.get("to") or "")
        now = self.clock()
        event = event_of(d, "unsubscribed", now, {"user_agent": _ua(user_agent)})
        with self.log.transaction() as conn:
            new = add_in(conn, address, UNSUBSCRIBED, source=d.source, delivery_id=d.id, now_ms=now)
            if new:
                _record(conn, d, "unsubscribe", None, now, False, event)
        return Hit(d, event if new else None)

    # ------------------------------------------------------------------ helpers
    def _delivery(self, kind: str, token: str) -> Delivery | None:
        found = self.signer.read(kind, token)
        return None if found is None else self.log.get(found[0])

    def _early(self, d: Delivery, now: int) -> bool:
        sent = d.sent_ms if d.sent_ms is not None else d.due_ms
        return now - sent < self.bot_ms


def _link(conn: sqlite3.Connection, delivery_id: int, idx: int | None) -> Link | None:
    row = conn.execute(
        "select url, text, hidden from delivery_links where delivery_id = ? and idx = ?",
        [delivery_id, idx],
    ).fetchone()
    return None if row is None or idx is None else Link(idx, row[0], row[1], bool(row[2]))


def _burst(conn: sqlite3.Connection, delivery_id: int, idx: int, now: int) -> bool:
    row = conn.execute(
        "select 1 from tracking_hits where delivery_id = ? and kind = 'click' and ts_ms > ? "
        "and ts_ms <= ? and link_idx != ? limit 1",
        [delivery_id, now - SAME_BURST_MS, now, idx],
    ).fetchone()
    return row is not None


def _record(
    conn: sqlite3.Connection,
    d: Delivery,
    kind: str,
    idx: int | None,
    now: int,
    bot: bool,
    event: dict[str, Any],
) -> None:
    conn.execute(
        "insert into tracking_hits (delivery_id, kind, link_idx, ts_ms, bot) "
        "values (?, ?, ?, ?, ?)",
        [d.id, kind, idx, now, int(bot)],
    )
    to_outbox(conn, d.node, event)


def _ua(user_agent: str | None) -> str | None:
    return None if not user_agent else user_agent[:MAX_USER_AGENT]


def event_of(
    d: Delivery, etype: str, now: int, props: dict[str, Any], event_id: str | None = None
) -> dict[str, Any]:
    """The event ``etype`` of delivery ``d`` at ``now``; by default with a fresh
    id (a replayed click is a new click)."""
    p = d.payload
    origin, _, name = d.source.partition(":")
    return {
        "id": event_id or f"{etype}:{uuid.uuid4().hex}",
        "contact_id": d.contact_id,
        "type": etype,
        "ts": now,
        "context": "DIGITAL_CAMPAIGN",
        "delivery_id": d.id,
        "delivery_key": d.key,
        "source": d.source,
        "delivery": _text(p.get("delivery") or p.get("campaign")),
        "plan": _text(p.get("plan")) or (name if origin == "plan" else None),
        "journey": _text(p.get("journey")) or (name if origin == "journey" else None),
        "step": _text(p.get("step")),
        "mail_group": _text(p.get("mail_group")),
        **props,
    }


def _text(v: Any) -> str | None:
    return None if v is None else str(v)
