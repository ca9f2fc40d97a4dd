"""Reminders of the Meta integrations whose tokens end soon or have ended, and
the webhook deliveries that carry them.

A reminder is due for an integration ``N`` days before its token ends (for
each ``N`` of the store's reminder days, 7 and 1 unless set) and when it turns
inactive; when several thresholds have passed at once (nothing looked for a
while) only the most urgent is raised.  Raising one records a ``webhook``
delivery in the delivery log, the kind trigger actions make, which the
delivery worker sends; its key names the integration, the threshold, the
expiry and the token, so it is raised once however often the scheduler or
``audience integrations check`` look, and a new token (re-authorize) or a new
expiry re-arms every threshold.

The reminders are the store's, not a node's: their deliveries have the node
``""`` and the contact ``integration:NAME``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audience.integrations.meta.graph import GraphConfig
from audience.integrations.meta.tokens import (
    DAY_MS,
    INACTIVE,
    INTEGRATIONS_FILE,
    Integration,
    IntegrationError,
    Integrations,
    check_url,
)
from audience.runtime.delivery.log import DeliveryLog
from audience.runtime.delivery.model import DeliveryRequest
from audience.runtime.plans.clock import Clock
from audience.timecalc import iso_utc

DEFAULT_DAYS = (7, 1)
MAX_DAYS = 365
REMINDER_NODE = ""  # the store's, not a node's
KEY_PREFIX = "integration-reminder"

_SCHEMA = (
    "create table if not exists reminder_settings (id integer primary key check (id = 1), "
    "url text, days text not null)"
)


@dataclass(frozen=True)
class ReminderSettings:
    url: str | None  # the store's reminder webhook; None: reminders are only listed
    days: tuple[int, ...]  # thresholds, days before a token ends, largest first


@dataclass(frozen=True)
class DueReminder:
    integration: Integration
    threshold: str  # "7d", "1d", ... or "inactive"
    status: str
    days_left: int | None
    message: str
    url: str | None  # where it is posted (the integration's own, else the store's)

    @property
    def key(self) -> str:
        i = self.integration
        return f"{KEY_PREFIX}:{i.name}:{self.threshold}:{i.ends_ms or 'never'}:{i.token_id}"


@dataclass(frozen=True)
class Raised:
    reminder: DueReminder
    delivery_id: int
    status: str  # the delivery's
    new: bool  # False: raised by an earlier look


def load_settings(ints: Integrations) -> ReminderSettings:
    with ints.transaction() as db:
        db.execute(_SCHEMA)
        row = db.execute("select url, days from reminder_settings where id = 1").fetchone()
    if row is None:
        return ReminderSettings(None, DEFAULT_DAYS)
    return ReminderSettings(row[0], tuple(json.loads(row[1])))


def save_settings(
    ints: Integrations, url: str | None, days: tuple[int, ...] | None = None
) -> ReminderSettings:
    """Set the store's reminder webhook (None clears it) and, when given, the days."""
    clean = check_url(url)
    kept = load_settings(ints).days if days is None else check_days(days)
    with ints.transaction() as db:
        db.execute(_SCHEMA)
        db.execute(
            "insert into reminder_settings (id, url, days) values (1, ?, ?) "
            "on conflict (id) do update set url = excluded.url, days = excluded.days",
            (clean, json.dumps(list(kept))),
        )
    return ReminderSettings(clean, kept)


def check_days(days: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    if not days or any(
        not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= MAX_DAYS for d in days
    ):
        raise IntegrationError(
            "bad_days", f"reminder days must be one or more whole numbers from 1 to {MAX_DAYS}"
        )
    return tuple(sorted(set(days), reverse=True))


def threshold(i: Integration, now_ms: int, days: tuple[int, ...]) -> str | None:
    """The most urgent threshold ``i`` has passed at ``now_ms``, or None."""
    if i.status(now_ms) == INACTIVE:
        return INACTIVE
    ends = i.ends_ms
    if ends is None:
        return None
    passed = [d for d in days if ends - now_ms <= d * DAY_MS]
    return f"{min(passed)}d" if passed else None


def due(ints: Integrations, settings: ReminderSettings | None = None) -> list[DueReminder]:
    """The reminders due now, soonest end first (the inactive ones first of all)."""
    settings = settings or load_settings(ints)
    now = ints.clock()
    window = max(settings.days) * DAY_MS
    by_name = {i.name: i for i in ints.all()}
    out = []
    for r in ints.reminders(within_ms=window):
        i = by_name[r.name]
        t = threshold(i, now, settings.days)
        if t is not None:
            url = i.reminder_url or settings.url
            out.append(DueReminder(i, t, r.status, r.days_left, r.message, url))
    return out


def body(r: DueReminder, now_ms: int) -> dict[str, Any]:
    """What the webhook posts (and what the CLI and the API list)."""
    i = r.integration
    return {
        "type": "integration_reminder",
        "platform": "meta",
        "integration": i.name,
        "account_id": i.account_id,
        "status": r.status,
        "reminder": r.threshold,
        "ends": None if i.ends_ms is None else iso_utc(i.ends_ms, "seconds"),
        "days_left": r.days_left,
        "message": r.message,
        "at": iso_utc(now_ms, "seconds"),
    }


def raise_due(ints: Integrations, log: DeliveryLog, only: str | None = None) -> list[Raised]:
    """Record a webhook delivery for each due reminder with a URL (``only``: for that
    integration); one already raised is returned as it was, not raised again."""
    now = ints.clock()
    out = []
    for r in due(ints):
        if r.url is None or (only is not None and r.integration.name != only):
            continue
        before = log.get_by_key(r.key)
        d = before or log.request(
            DeliveryRequest(
                key=r.key,
                node=REMINDER_NODE,
                contact_id=f"integration:{r.integration.name}",
                email=None,
                channel="webhook",
                kind="webhook",
                payload={"url": r.url, "body": body(r, now)},
                due_ms=now,
                source=f"integration:{r.integration.name}",
                now_ms=now,
            )
        )
        out.append(Raised(r, d.id, d.status, before is None))
    return out


def raise_for_store(root: Path | str, log: DeliveryLog, clock: Clock) -> list[Raised]:
    """``raise_due`` for the scheduler: nothing when the store has no integrations.
    No Graph call is made (the stored facts and the clock say what is due)."""
    if not (Path(root) / INTEGRATIONS_FILE).is_file():
        return []
    return raise_due(Integrations(root, GraphConfig(), clock), log)
