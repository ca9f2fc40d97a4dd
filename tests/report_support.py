"""Stores of email events for the report's tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from audience.runtime.store import Store
from audience.schema import Schema

SCHEMA = Schema(profile={"email": "string"}, events={})


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def store_of(events: Iterable[Mapping[str, Any]], emails: Mapping[str, Any]) -> Store:
    """An in-memory store of these events (``ts`` in epoch ms) and profiles."""
    store = Store.from_arrow(None, None, SCHEMA)
    profiles = [{"contact_id": c, "email": e} for c, e in emails.items()]
    if profiles:
        report = store.ingest_profiles(profiles)
        assert not report.rejected, store.rejected()
    rows = []
    for i, e in enumerate(events):
        row = {k: v for k, v in e.items() if v is not None}
        row["id"] = f"e{i}"
        row["ts"] = dt.datetime.fromtimestamp(e["ts"] / 1000, dt.UTC).isoformat()
        rows.append(row)
    if rows:
        report = store.ingest_events(rows)
        assert not report.rejected, store.rejected()
    return store


# the demo's history, smaller: libero.it filters from week 13 of 27
NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
AS_OF = "2026-11-01T12:00:00Z"


def mail_store(path: Any, n_contacts: int = 4_000) -> Any:
    """A store on disk with the demo's six months of email events."""
    from audience.demo.deliverability import History, build

    build(path, History(now=NOW, n_contacts=n_contacts, small=20))
    return path
