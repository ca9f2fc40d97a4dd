"""A small shop store for the plan tests: contacts in Milan and elsewhere,
some without an email, purchases before (and after) the plans' due times, a
template, a DND policy, a saved segment and a rules file of deliveries and
plans."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

from audience.runtime.node import Node

EXAMPLES = Path(__file__).resolve().parents[1] / "audience" / "examples"
DAY = 86_400_000
HOUR = 3_600_000


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


# 2027-03-11 10:00 in Rome (CET, UTC+1)
ONCE_DUE = ms("2027-03-11T09:00:00Z")
DAILY = "2027-03-01"  # the daily plan's first day; 09:00 UTC
DAILY_DUE = ms("2027-03-01T09:00:00Z")

POLICY = """dnd "Caps" {
  max 1 per day
  max 3 per week
}
"""

RULES = """delivery "Spring event reminder" {
  template "spring-event"
  mail group "Events"
  subject "Our spring collection, {{ first_name }}"
  from "Maison <news@maison.example>"
  reply to "care@maison.example"
  sender "bounces@maison.example"
  fields { first_name: profile.first_name, city: profile.city }
  test list ("qa@maison.example", "marketing@maison.example")
}

plan "Spring reminder" {
  who "Milan buyers"
  when once at 2027-03-11 10:00 timezone "Europe/Rome"
  send "Spring event reminder"
}

plan "Daily picks" {
  who (city = "Milan")
  when every day at 09:00 from 2027-03-01
  dnd "Caps"
  send "Spring event reminder"
}
"""


def contact(i: int) -> str:
    return f"c{i:05d}"


def build(root: Path, n: int = 40, *, rules: bool = True, shards: int | None = None) -> Node:
    """Contacts c00000..: even ones live in Milan; every fifth has no email;
    every contact bought on 2027-03-05 except every seventh, who bought only
    after the one-shot plan's due time.  ``shards``: a sharded node of that many."""
    if shards is None:
        st = Node.init(root, EXAMPLES / "maison.toml")
    else:
        from audience.runtime.node import ShardedNode

        st = ShardedNode.init(root, EXAMPLES / "maison.toml", shards=shards)
    profiles = []
    events = []
    for i in range(n):
        rec: dict[str, Any] = {
            "contact_id": contact(i),
            "first_name": f"Name{i % 9}",
            "city": "Milan" if i % 2 == 0 else "Rome",
        }
        if i % 5 != 0:
            rec["email"] = f"{contact(i)}@example.com"
        profiles.append(rec)
        ts = "2027-03-12T12:00:00Z" if i % 7 == 0 else "2027-03-05T12:00:00Z"
        events.append(
            {"id": f"p{i}", "contact_id": contact(i), "type": "purchased", "ts": ts, "amount": 10}
        )
    st.ingest_profiles(profiles)
    st.ingest_events(events)
    st.save_segment("Milan buyers", 'city = "Milan" and did purchased in last 30 days')
    st.triggers.add_template(
        "spring-event",
        "Spring at Maison",
        "<p>Dear {{ first_name }} of {{ city }}</p>",
        "Dear {{ first_name }} of {{ city }}",
    )
    st.triggers.add_policies(POLICY)
    return st


def milan_buyers_at_once(n: int) -> set[str]:
    """The one-shot plan's audience with an email, by construction."""
    return {contact(i) for i in range(n) if i % 2 == 0 and i % 5 != 0 and i % 7 != 0}


def milan_with_email(n: int) -> set[str]:
    return {contact(i) for i in range(n) if i % 2 == 0 and i % 5 != 0}


def delivery_rows(root: Path, source: str | None = None) -> list[tuple[str, str, str, int]]:
    """(key, contact, status, due) of every delivery in the log, batches' members
    included (read straight from the file, as another process would)."""
    from audience.runtime.delivery import DeliveryLog

    with DeliveryLog.open(root) as log:
        log.materialize_all()
        rows = log.list()
    return [
        (d.key, d.contact_id, d.status, d.due_ms)
        for d in rows
        if source is None or d.source == source
    ]


def per_contact(rows: list[tuple[str, str, str, int]], occurrence: int) -> Counter[str]:
    """Deliveries per contact of one occurrence (keys name it)."""
    return Counter(c for key, c, _, _ in rows if f":{occurrence}:" in key)


def runs(root: Path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(root / "definitions.sqlite") as conn:
        return conn.execute(
            "select plan, occurrence_ms, state from plan_runs order by plan, occurrence_ms"
        ).fetchall()


def check_spring_run(root: Path, run: Any, n: int) -> None:
    """The one-shot plan's run reached each Milan buyer with an email once; its
    counts say how many had none."""
    expected = milan_buyers_at_once(n)
    # Milan contacts who bought by the due time: half of them have no email
    audience = {contact(i) for i in range(n) if i % 2 == 0 and i % 7 != 0}
    assert run.state == "done"
    assert run.counts["audience"] == len(audience)
    assert run.counts["without_email"] == len(audience) - len(expected)
    assert run.counts["reserved"] == len(expected)
    rows = delivery_rows(root, "plan:Spring reminder")
    assert {c for _, c, _, _ in rows} == expected
    assert max(per_contact(rows, ONCE_DUE).values()) == 1
