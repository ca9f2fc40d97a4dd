"""The suppression list: addresses that get no marketing send (an
unsubscribe, a hard bounce, a complaint, or added by hand), in the delivery
log's file, so that the check runs inside the same write transaction that records a delivery.

Addresses are compared normalized (trimmed, lower-case).  A marketing send to
one is recorded ``suppressed`` with the list's reason, e.g. ``unsubscribed``
or ``hard_bounce`` (the row's ``cap`` column, where a DND cap's text goes
otherwise); test sends are never
suppressed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audience.runtime.db import immediate
from audience.runtime.delivery.model import normalize_email, wall_ms
from audience.runtime.delivery.schema import FILE, connect

# the reasons an address is on the list, and a suppressed delivery's "cap"
UNSUBSCRIBED = "unsubscribed"
MANUAL = "manual"
HARD_BOUNCE = "hard_bounce"
COMPLAINT = "complaint"


@dataclass(frozen=True)
class Suppression:
    email: str
    email_norm: str
    reason: str
    source: str | None
    delivery_id: int | None
    created_ms: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SuppressionError(ValueError):
    """An address that cannot be added (empty, or not an address)."""


# ---------------------------------------------------------------------- in a transaction


def reason_in(conn: sqlite3.Connection, email_norm: str | None) -> str | None:
    """Why the address is on the list; None when it is not."""
    if email_norm is None:
        return None
    row = conn.execute(
        "select reason from suppressions where email_norm = ?", [email_norm]
    ).fetchone()
    return None if row is None else str(row[0])


def suppressed_in(conn: sqlite3.Connection, email_norm: str | None) -> bool:
    return reason_in(conn, email_norm) is not None


def reasons_in(conn: sqlite3.Connection, norms: pa.Array) -> tuple[np.ndarray, list[str]]:
    """(code per address: -1 when not listed, else an index into the reasons; the reasons)."""
    rows = conn.execute("select email_norm, reason from suppressions").fetchall()
    codes = np.full(len(norms), -1, dtype=np.int64)
    if not rows or len(norms) == 0:
        return codes, []
    reasons = sorted({r for _, r in rows})
    listed = pa.array([e for e, _ in rows], type=pa.string())
    at = pc.index_in(norms, value_set=listed).to_numpy(zero_copy_only=False)
    found = ~np.isnan(at.astype(np.float64))
    row_reason = np.array([reasons.index(r) for _, r in rows], dtype=np.int64)
    codes[found] = row_reason[at[found].astype(np.int64)]
    return codes, reasons


def mask_in(conn: sqlite3.Connection, norms: pa.Array) -> np.ndarray:
    """True where a normalized address is on the list (nulls are not)."""
    return reasons_in(conn, norms)[0] >= 0


def add_in(
    conn: sqlite3.Connection,
    email: str,
    reason: str,
    *,
    source: str | None = None,
    delivery_id: int | None = None,
    now_ms: int | None = None,
) -> bool:
    """Add ``email``; False when it was on the list already (which is kept as it was)."""
    norm = normalize_email(email)
    if norm is None or "@" not in norm or any(c.isspace() for c in norm):
        raise SuppressionError(f"{email!r} is not an email address")
    cur = conn.execute(
        "insert or ignore into suppressions (email_norm, email, reason, source, delivery_id, "
        "created_ms) values (?, ?, ?, ?, ?, ?)",
        [norm, email.strip(), reason, source, delivery_id, wall_ms() if now_ms is None else now_ms],
    )
    return cur.rowcount > 0


# ---------------------------------------------------------------------- by store


@contextmanager
def _transaction(store_path: Path | str) -> Iterator[sqlite3.Connection]:
    # the log's file and transaction, without the log (which imports this module)
    conn = connect(Path(store_path) / FILE)
    try:
        with immediate(conn) as c:
            yield c
    finally:
        conn.close()


def is_suppressed(store_path: Path | str, email: str | None) -> bool:
    with _transaction(store_path) as conn:
        return suppressed_in(conn, normalize_email(email))


def suppressed_mask(store_path: Path | str, emails: Any) -> np.ndarray:
    """Per address of ``emails`` (a sequence, numpy or Arrow array; None for no
    address): is it on the list?"""
    arr = pa.array(emails, type=pa.string()) if not isinstance(emails, pa.Array) else emails
    norms = pc.utf8_lower(pc.utf8_trim_whitespace(arr.cast(pa.string())))
    with _transaction(store_path) as conn:
        return mask_in(conn, norms)


def add(
    store_path: Path | str,
    email: str,
    reason: str = MANUAL,
    *,
    source: str | None = None,
    now_ms: int | None = None,
) -> bool:
    with _transaction(store_path) as conn:
        return add_in(conn, email, reason, source=source, now_ms=now_ms)


def remove(store_path: Path | str, email: str) -> bool:
    """Take ``email`` off the list; False when it was not on it."""
    with _transaction(store_path) as conn:
        cur = conn.execute(
            "delete from suppressions where email_norm = ?", [normalize_email(email)]
        )
        return cur.rowcount > 0


def entries(store_path: Path | str) -> list[Suppression]:
    """The list, oldest first."""
    with _transaction(store_path) as conn:
        rows = conn.execute(
            "select email, email_norm, reason, source, delivery_id, created_ms "
            "from suppressions order by created_ms, email_norm"
        ).fetchall()
    return [Suppression(*r) for r in rows]
