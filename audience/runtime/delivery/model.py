"""What a delivery is: the request part A records, and the row the log keeps."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from audience.runtime.delivery.dnd import Policy

# Statuses.  A delivery is "counted" by the caps while it is on its way or gone.
RESERVED = "reserved"
DEFERRED = "deferred"  # reserved, but its due time was moved to the end of quiet hours
SUPPRESSED = "suppressed"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
STATUSES = (RESERVED, DEFERRED, SUPPRESSED, SENDING, SENT, FAILED)
COUNTED = (RESERVED, DEFERRED, SENDING, SENT)
PENDING = (RESERVED, DEFERRED)
COUNTED_SQL = "('reserved', 'deferred', 'sending', 'sent')"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


# one encoder for all (json.dumps with options builds one per call)
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def dumps(payload: Any) -> str:
    """A payload's JSON (compact; values JSON lacks, such as datetimes, as text)."""
    return _ENCODE(payload)


def normalize_email(email: str | None) -> str | None:
    """docs/language/dnd.md: trimmed, lower-case; an empty address is no address."""
    if email is None:
        return None
    norm = email.strip().lower()
    return norm or None


@dataclass(frozen=True)
class DeliveryRequest:
    key: str  # idempotency key: a second request with it returns the first delivery
    node: str
    contact_id: str
    email: str | None
    channel: str  # "email" | "webhook" | ...
    kind: str  # "send_email" | "webhook"
    payload: dict[str, Any]
    due_ms: int
    policy: Policy | None = None
    test: bool = False
    source: str = ""
    now_ms: int | None = None  # when the caps are checked (default: the wall clock)
    # why it cannot be sent (e.g. its template does not render): recorded "failed"
    error: str | None = None


@dataclass(frozen=True)
class Delivery:
    id: int  # negative for the deliveries a dry run only imagines
    key: str
    node: str
    contact_id: str
    email: str | None
    channel: str
    kind: str
    payload: dict[str, Any]
    status: str
    policy: str | None  # the policy it was checked against
    cap: str | None  # the cap that suppressed it, e.g. "max 1 per day"
    requested_ms: int  # the due time asked for
    due_ms: int  # when it may leave (and the time it counts at)
    test: bool = False
    source: str = ""
    created_ms: int = 0
    attempts: int = 0
    sent_ms: int | None = None
    last_error: str | None = None
    message_id: str | None = None
    resends: int = 0  # resends after a crash that may have delivered it already
    email_norm: str | None = field(default=None, repr=False)
    next_attempt_ms: int = 0  # after a failed attempt: not retried before this

    @property
    def counted(self) -> bool:
        return not self.test and self.status in COUNTED


COLUMNS = (
    "id, key, node, contact_id, email, channel, kind, payload, status, policy, cap, "
    "requested_ms, due_ms, test, source, created_ms, attempts, sent_ms, last_error, "
    "message_id, resends, email_norm, next_attempt_ms"
)


def from_row(row: tuple[Any, ...]) -> Delivery:
    """A row selected with ``COLUMNS`` (``payload`` already resolved to its JSON text)."""
    fields = list(row)
    fields[_PAYLOAD] = json.loads(fields[_PAYLOAD]) if fields[_PAYLOAD] else {}
    fields[_TEST] = bool(fields[_TEST])
    return Delivery(*fields)


# the positions in ``COLUMNS`` that are converted
_PAYLOAD, _TEST = COLUMNS.split(", ").index("payload"), COLUMNS.split(", ").index("test")
