"""The trend for recipient domains in plain Python, event by event: the
columnar report (audience.runtime.report) is held to it.

Events are dicts: ``contact_id``, ``type``, ``ts`` (epoch ms), and the
tracking properties ``delivery_id``, ``mail_group``, ``bounce_class``,
``bot`` (a missing one: absent or None).  ``emails`` maps contact ids to their
profile email.  The rules, as docs/report.md states them:
- a send belongs to the period (day, Monday week, month; local time in the
  zone) its time falls in, from the period holding ``as_of`` minus the months
  to the one holding ``as_of``; events after ``as_of`` or before the first
  period are not read; a delivery sent twice keeps its latest send;
- its domain: the lower-case part after the ``@`` of its contact's email
  (IDNA); a contact without a usable email is not counted;
- a bounced delivery counts once, in its gravest class (hard, block, soft,
  undetermined); delivered = sent - bounced; opens, human opens, human clicks,
  unsubscribes, complaints: distinct delivered deliveries with one."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

# the names of the counts (only the names are shared with the report)
from audience.runtime.report.compute import COUNTS as _COUNTS

GRAVITY = ("hard", "block", "soft", "undetermined")
EMAIL = re.compile(r"^[^@\s]+@([^@\s]+)$")


def period_of(ms: int, by: str, tz: str) -> dt.date:
    d = dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).date()
    if by == "week":
        return d - dt.timedelta(days=d.weekday())
    if by == "month":
        return d.replace(day=1)
    return d


def first_period(as_of_ms: int, by: str, months: int, tz: str) -> dt.date:
    now = dt.datetime.fromtimestamp(as_of_ms / 1000, ZoneInfo(tz)).date()
    y, m = divmod(now.year * 12 + now.month - 1 - months, 12)
    last_day = 31
    while True:
        try:
            start = dt.date(y, m + 1, min(now.day, last_day))
            break
        except ValueError:
            last_day -= 1
    return period_of(
        int(
            dt.datetime(start.year, start.month, start.day, tzinfo=ZoneInfo(tz)).timestamp() * 1000
        ),
        by,
        tz,
    )


def domain_of(email: Any) -> str | None:
    if not isinstance(email, str):
        return None
    m = EMAIL.match(email.strip().lower())
    if not m:
        return None
    d = m.group(1).rstrip(".")
    try:
        return d.encode("idna").decode("ascii")
    except UnicodeError:
        return d


def counts(
    events: Iterable[Mapping[str, Any]],
    emails: Mapping[str, Any],
    *,
    as_of_ms: int,
    by: str,
    months: int,
    tz: str = "UTC",
    mail_group: str | None = None,
) -> dict[tuple[str, str], dict[str, int]]:
    """(domain, period start as ISO date) -> counts, for every pair with a send."""
    first = first_period(as_of_ms, by, months, tz)
    start_ms = int(
        dt.datetime(first.year, first.month, first.day, tzinfo=ZoneInfo(tz)).timestamp() * 1000
    )
    read = [
        e for e in events if start_ms <= e["ts"] <= as_of_ms and e.get("delivery_id") is not None
    ]
    sends: dict[int, tuple[int, str, str]] = {}  # delivery -> (ts, domain, period)
    for e in sorted((e for e in read if e["type"] == "email_sent"), key=lambda e: e["ts"]):
        if mail_group is not None and e.get("mail_group") != mail_group:
            continue
        dom = domain_of(emails.get(e["contact_id"]))
        if dom is None:
            continue
        sends[e["delivery_id"]] = (e["ts"], dom, period_of(e["ts"], by, tz).isoformat())
    seen: dict[int, set[str]] = {d: set() for d in sends}
    for e in read:
        d = e["delivery_id"]
        if d not in sends or e["type"] == "email_sent":
            continue
        human = not e.get("bot")
        t = e["type"]
        if t == "email_bounced":
            cls = e.get("bounce_class")
            seen[d].add("bounce:" + (cls if cls in GRAVITY else "undetermined"))
        elif t == "email_opened":
            seen[d].add("opened")
            if human:
                seen[d].add("human_opened")
        elif t == "email_clicked" and human:
            seen[d].add("human_clicked")
        elif t in ("unsubscribed", "email_complained"):
            seen[d].add("unsubscribed" if t == "unsubscribed" else "complained")
    out: dict[tuple[str, str], dict[str, int]] = {}
    for d, (_, dom, label) in sends.items():
        c = out.setdefault((dom, label), dict.fromkeys(_COUNTS, 0))
        c["sent"] += 1
        classes = [g for g in GRAVITY if "bounce:" + g in seen[d]]
        if classes:
            c[classes[0]] += 1
            continue
        c["delivered"] += 1
        for k in ("opened", "human_opened", "human_clicked", "unsubscribed", "complained"):
            c[k] += k in seen[d]
    return out
