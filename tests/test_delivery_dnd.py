"""DND enforcement through the real delivery log (SPEC 5)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from audience.runtime.delivery import DeliveryLog, DeliveryRequest, Policy
from tests.helpers.delivery import DAY, HOUR, MAISON, T0, policy


def ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture
def log(tmp_path: Path) -> DeliveryLog:
    return DeliveryLog.open(tmp_path)


_n = 0


def req(
    contact: str,
    at: int,
    pol: Policy | None = MAISON,
    *,
    node: str = "main",
    email: str | None = None,
    channel: str = "email",
    test: bool = False,
    key: str | None = None,
) -> DeliveryRequest:
    global _n
    _n += 1
    return DeliveryRequest(
        key=key or f"k{_n}",
        node=node,
        contact_id=contact,
        email=email,
        channel=channel,
        kind="send_email" if channel == "email" else "webhook",
        payload={"subject": "hi"},
        due_ms=at,
        policy=pol,
        test=test,
        source="test",
        now_ms=at,
    )


def test_rolling_day_boundary_is_exact(log: DeliveryLog) -> None:
    assert log.request(req("c1", T0)).status == "reserved"
    late = log.request(req("c1", T0 + DAY - 1))
    assert (late.status, late.policy, late.cap) == ("suppressed", "Maison", "max 1 per day")
    # the window (t - 1 day, t] no longer holds T0
    assert log.request(req("c1", T0 + DAY)).status == "reserved"
    assert log.request(req("c2", T0 + DAY - 1)).status == "reserved"


def test_several_caps_all_hold(log: DeliveryLog) -> None:
    statuses = [log.request(req("c1", T0 + i * DAY)).status for i in range(5)]
    assert statuses == ["reserved"] * 3 + ["suppressed"] * 2
    assert log.list(contact="c1", status="suppressed")[0].cap == "max 3 per week"
    # a week after the first, a slot is free again
    assert log.request(req("c1", T0 + 7 * DAY)).status == "reserved"
    assert log.request(req("c1", T0 + 8 * DAY - 1)).status == "suppressed"


def test_suppressed_and_test_sends_do_not_count(log: DeliveryLog) -> None:
    assert log.request(req("c1", T0, test=True)).status == "reserved"
    assert log.request(req("c1", T0 + 1, test=True)).status == "reserved"  # never capped
    assert log.request(req("c1", T0 + 2)).status == "reserved"
    assert log.request(req("c1", T0 + 3)).status == "suppressed"
    # the suppressed one does not count: a day after the real one, a slot again
    assert log.request(req("c1", T0 + 2 + DAY)).status == "reserved"


def test_idempotency_key(log: DeliveryLog) -> None:
    first = log.request(req("c1", T0, key="trig:e1:0"))
    again = log.request(req("c1", T0 + 5 * DAY, key="trig:e1:0"))
    assert again == first
    assert len(log.list()) == 1


def test_global_spans_nodes_by_normalized_email(log: DeliveryLog) -> None:
    a = log.request(req("c1", T0, node="main", email="Angela@Example.com"))
    b = log.request(req("x9", T0 + HOUR, node="eu", email="  angela@example.COM "))
    assert (a.status, b.status) == ("reserved", "suppressed")
    assert b.cap == "max 1 per day"
    # without global each node is its own database
    local = policy('dnd "Local" {\n max 1 per day\n}')
    c = log.request(req("c7", T0, local, node="main", email="bob@example.com"))
    d = log.request(req("c7", T0 + HOUR, local, node="eu", email="bob@example.com"))
    e = log.request(req("c7", T0 + HOUR, local, node="main", email="other@example.com"))
    assert (c.status, d.status, e.status) == ("reserved", "reserved", "suppressed")


def test_channel_policy(log: DeliveryLog) -> None:
    email_only = policy('dnd "Mail" {\n max 1 per day\n for email\n}')
    assert log.request(req("c1", T0, email_only, channel="webhook")).status == "reserved"
    # the webhook neither counts for nor is capped by an email policy
    assert log.request(req("c1", T0 + 1, email_only, channel="webhook")).status == "reserved"
    assert log.request(req("c1", T0 + 2, email_only)).status == "reserved"
    assert log.request(req("c1", T0 + 3, email_only)).status == "suppressed"
    # a policy for every channel counts every channel (whatever policy recorded it)
    assert log.request(req("c1", T0 + 4, MAISON, channel="webhook")).status == "suppressed"


def test_quiet_hours_defer_to_their_end(log: DeliveryLog) -> None:
    quiet = policy(
        'dnd "Quiet" timezone "Europe/Rome" {\n max 1 per day\n quiet hours 22:00 to 08:00\n}'
    )
    # 23:30 in Rome (UTC+1 in January) -> 08:00 Rome the next morning
    d = log.request(req("c1", ms("2026-01-10T22:30:00Z"), quiet))
    assert d.status == "deferred"
    assert d.requested_ms == ms("2026-01-10T22:30:00Z")
    assert d.due_ms == ms("2026-01-11T07:00:00Z")
    # 06:00 Rome, same night after midnight -> 08:00 that day
    e = log.request(req("c2", ms("2026-01-11T05:00:00Z"), quiet))
    assert (e.status, e.due_ms) == ("deferred", ms("2026-01-11T07:00:00Z"))
    # the end of the span itself is not quiet
    f = log.request(req("c3", ms("2026-01-11T07:00:00Z"), quiet))
    assert (f.status, f.due_ms) == ("reserved", ms("2026-01-11T07:00:00Z"))
    # a deferred delivery counts at its new time: c1 already has one at 08:00 Rome
    g = log.request(req("c1", ms("2026-01-11T07:30:00Z"), quiet))
    assert (g.status, g.cap) == ("suppressed", "max 1 per day")
    # a zone written on the quiet hours wins over the policy's
    utc = policy('dnd "Q" timezone "Europe/Rome" {\n quiet hours 22:00 to 08:00 timezone "UTC"\n}')
    h = log.request(req("c4", ms("2026-01-10T22:30:00Z"), utc))
    assert h.due_ms == ms("2026-01-11T08:00:00Z")


def test_a_later_reservation_is_protected(log: DeliveryLog) -> None:
    # a delivery already reserved for T0 + 12h (e.g. deferred): one at T0 would put
    # two in the window ending at T0 + 12h
    assert log.request(req("c1", T0 + 12 * HOUR)).status == "reserved"
    assert log.request(req("c1", T0)).status == "suppressed"


def test_month_caps_are_calendar_months(log: DeliveryLog) -> None:
    monthly = policy('dnd "M" {\n max 1 per month\n}')
    jan31 = ms("2026-01-31T12:00:00Z")
    assert log.request(req("c1", jan31, monthly)).status == "reserved"
    # Feb 28 12:00 minus one month is Jan 28 12:00: Jan 31 is inside
    assert log.request(req("c1", ms("2026-02-28T12:00:00Z"), monthly)).status == "suppressed"
    assert log.request(req("c1", ms("2026-03-31T12:00:00Z"), monthly)).status == "reserved"


def test_past_due_is_checked_at_now(log: DeliveryLog) -> None:
    r = req("c1", T0)
    d = log.request(DeliveryRequest(**{**r.__dict__, "now_ms": T0 + HOUR}))
    assert (d.requested_ms, d.due_ms) == (T0, T0 + HOUR)


def test_dry_run_writes_nothing(log: DeliveryLog) -> None:
    log.request(req("c1", T0))
    with log.dry_run() as dry:
        a = dry.request(req("c1", T0 + HOUR))
        b = dry.request(req("c2", T0 + HOUR))
        c = dry.request(req("c2", T0 + 2 * HOUR))  # sees the dry run's own b
        assert (a.status, b.status, c.status) == ("suppressed", "reserved", "suppressed")
        assert [d.contact_id for d in dry.list(status="reserved")] == ["c2"]
        assert b.id < 0
    assert len(log.list()) == 1
    assert log.request(req("c2", T0 + HOUR)).status == "reserved"


def test_in_memory_log() -> None:
    mem = DeliveryLog.open(None)
    assert mem.request(req("c1", T0)).status == "reserved"
    assert mem.request(req("c1", T0 + 1)).status == "suppressed"
    assert mem.list(since_ms=T0 + 1)[0].status == "suppressed"


def test_list_filters(log: DeliveryLog) -> None:
    for i in range(5):
        log.request(req(f"c{i % 2}", T0 + i * HOUR))
    assert [d.contact_id for d in log.list(limit=2)] == ["c1", "c0"]
    assert len(log.list(contact="c0")) == 3
    assert len(log.list(status="reserved")) == 2
    assert [d.due_ms for d in log.list(since_ms=T0 + 3 * HOUR)] == [T0 + 3 * HOUR, T0 + 4 * HOUR]


def test_a_log_of_an_older_version_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    import sqlite_utils

    from audience.runtime.db import migrate
    from audience.runtime.delivery.schema import FILE, MIGRATIONS

    old = sqlite_utils.Database(sqlite3.connect(tmp_path / FILE))
    migrate(old, "deliveries", MIGRATIONS[:1])
    old.conn.close()
    log = DeliveryLog.open(tmp_path)
    names = {r[0] for r in log._conn.execute("select name from sqlite_master")}
    assert "deliveries_single" in names
    assert log.reserve_batch("main", ["c1"], [None], MAISON, T0, {}, "p", "p:")["reserved"] == 1


def test_request_many_decides_each_against_the_ones_before(log: DeliveryLog) -> None:
    reqs = [req("c1", T0), req("c1", T0 + HOUR), req("c2", T0 + HOUR), req("c1", T0 + 2 * DAY)]
    got = log.request_many(reqs)
    assert [d.status for d in got] == ["reserved", "suppressed", "reserved", "reserved"]
    assert got[1].cap == "max 1 per day"
    assert [d.id for d in log.list()] == [d.id for d in got]
    assert log.request_many([reqs[0]]) == [got[0]]  # keyed: the first delivery again


def test_request_many_records_all_or_nothing(log: DeliveryLog) -> None:
    log.request(req("c1", T0, key="taken"))
    with pytest.raises(ValueError, match="already belongs"):
        log.request_many([req("c2", T0), req("c3", T0, key="taken")])
    assert [d.key for d in log.list()] == ["taken"]
    # the log is usable afterwards, inside and outside a group
    with log.grouped():
        a = log.request(req("c2", T0))
        b = log.request(req("c2", T0 + HOUR))
    assert (a.status, b.status) == ("reserved", "suppressed")
    assert log.request(req("c4", T0)).status == "reserved"


def test_a_failed_request_is_recorded_and_not_counted(log: DeliveryLog) -> None:
    bad = DeliveryRequest(
        "bad", "main", "c1", "a@x.com", "email", "send_email", {}, T0, MAISON, error="no template"
    )
    d = log.request(bad)
    assert (d.status, d.last_error, d.cap) == ("failed", "no template", None)
    assert log.get(d.id) == d
    assert log.request(req("c1", T0)).status == "reserved"
