"""Triggers firing on ingested events, on real disk stores (SPEC 4 and 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from audience.dsl.errors import DslError
from audience.runtime.node import Node, open_node
from audience.runtime.triggers import dry_run
from tests.helpers.triggers import EXAMPLES, add, deliveries, form, ms, seed
from tests.helpers.triggers import store as store  # the fixture

SEED_TRIGGER = "Thank newsletter subscribers"


def test_the_seed_trigger_reserves_a_rendered_delivery(store: Node) -> None:
    seed(store)
    store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    [d] = deliveries(store)
    assert d.status == "reserved"
    assert d.key == f"main:{SEED_TRIGGER}:1:e1:0"
    assert (d.contact_id, d.email, d.channel, d.kind, d.test) == (
        "c1",
        "angela@example.com",
        "email",
        "send_email",
        False,
    )
    assert d.policy == "Maison shoes, clothes and accessories"
    assert d.source == f"trigger:{SEED_TRIGGER}"
    assert d.payload["subject"] == "Welcome <Angela>"
    assert d.payload["html"] == "<p>Hi &lt;Angela&gt;, thanks for addUser</p>"  # escaped
    assert d.payload["text"] == "Hi <Angela>, thanks for addUser"
    assert d.requested_ms == ms("2026-11-20T10:00:00Z")


def test_events_that_do_not_match_fire_nothing(store: Node) -> None:
    seed(store)
    store.ingest_events(
        [
            form("n1", "c1", "2026-11-20T10:00:00Z", form_name="other"),
            form("n2", "c1", "2026-11-20T10:00:00Z", context="MOBILE"),
            {"id": "n3", "contact_id": "c1", "type": "form_compiled", "ts": "2026-11-20T10:00:00Z"},
            {"id": "n4", "contact_id": "c1", "type": "email_opened", "ts": "2026-11-20T10:00:00Z"},
            form("n5", "c2", "2026-11-20T10:00:00Z"),  # matches, but c2 has no email
            form("n6", "c9", "2026-11-20T10:00:00Z"),  # no profile at all
        ]
    )
    assert deliveries(store) == []


def test_the_same_event_twice_fires_once(store: Node) -> None:
    seed(store)
    store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    report = store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    assert report.duplicates == 1
    assert len(deliveries(store)) == 1
    assert len(store.triggers.state.firings().list()) == 1


def test_the_dnd_policy_suppresses_the_second_delivery_in_a_day(store: Node) -> None:
    seed(store)
    store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    store.ingest_events([form("e2", "c1", "2026-11-20T12:00:00Z")])
    first, second = sorted(deliveries(store), key=lambda d: d.id)
    assert first.status == "reserved"
    assert (second.status, second.cap) == ("suppressed", "max 1 per day")
    # another contact is not affected
    store.ingest_events([form("e3", "c3", "2026-11-20T12:00:00Z")])
    assert [d.status for d in deliveries(store) if d.contact_id == "c3"] == ["reserved"]


def test_once_per_contact(store: Node) -> None:
    add(store, 'on form_compiled\ndo webhook(url: "https://hook.example/x")\nonce per contact')
    store.ingest_events([form("e1", "c1", "2026-11-01T10:00:00Z")])
    store.ingest_events(
        [form("e2", "c1", "2026-11-10T10:00:00Z"), form("e3", "c3", "2026-11-10T10:00:00Z")]
    )
    # within one batch too
    store.ingest_events(
        [form("e4", "c2", "2026-11-11T10:00:00Z"), form("e5", "c2", "2026-11-12T10:00:00Z")]
    )
    got = sorted((d.contact_id, d.key.split(":")[3]) for d in deliveries(store))
    assert got == [("c1", "e1"), ("c2", "e4"), ("c3", "e3")]
    assert all(d.kind == "webhook" and d.channel == "webhook" for d in deliveries(store))


def test_at_most_once_per_period(store: Node) -> None:
    add(
        store,
        'on form_compiled\ndo webhook(url: "https://hook.example/x", body: {f: event.form_name})\n'
        "at most once per 2 days per contact",
    )
    for i, ts in enumerate(
        [
            "2026-11-01T10:00:00Z",
            "2026-11-02T09:00:00Z",
            "2026-11-03T10:00:01Z",
            "2026-11-04T10:00:00Z",
        ]
    ):
        store.ingest_events([form(f"e{i}", "c1", ts)])
    fired = sorted(d.key.split(":")[3] for d in deliveries(store))
    assert fired == ["e0", "e2"]
    assert deliveries(store)[0].payload["body"] == {"f": "addUser"}


def test_delay_sets_the_due_time(store: Node) -> None:
    add(store, 'on form_compiled\ndo webhook(url: "https://hook.example/x")\ndelay 3 hours')
    store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    [d] = deliveries(store)
    assert d.requested_ms == ms("2026-11-20T13:00:00Z")


def test_a_constant_address_is_a_test_send(store: Node) -> None:
    add(
        store,
        'on form_compiled\ndo send_email(campaign: "C-1234", to: "qa@example.com",\n'
        "  fields: {first_name: profile.first_name, form: event.form_name})\n"
        'dnd "Maison shoes, clothes and accessories"',
    )
    store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    store.ingest_events([form("e2", "c1", "2026-11-20T11:00:00Z")])
    ds = deliveries(store)
    assert [(d.email, d.test, d.status) for d in ds] == [("qa@example.com", True, "reserved")] * 2


def test_set_and_add_tag_are_durable(store: Node, tmp_path: Path) -> None:
    add(
        store,
        'on form_compiled where form_name = "addUser"\n'
        'do add_tag("subscriber")\ndo set(newsletter: true, city: "Milan")',
    )
    store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    store.ingest_events([form("e2", "c1", "2026-11-21T10:00:00Z")])  # the tag is not repeated
    reopened = open_node(tmp_path / "shop")
    hits = reopened.compile('tags contains "subscriber" and newsletter = true and city = "Milan"')
    assert hits.evaluate().ids() == ["c1"]
    snap = reopened.snapshot()
    from audience.runtime.triggers.batch import profile_value

    i = list(snap.contact_ids).index("c1")
    assert profile_value(snap, i, "tags") == ["subscriber"]
    assert profile_value(snap, i, "email") == "angela@example.com"  # other fields kept


def test_disabled_and_not_yet_valid_triggers_fire_nothing(store: Node) -> None:
    body = 'on form_compiled\ndo webhook(url: "https://hook.example/x")'
    add(store, body, "Off")
    store.triggers.defs.set_enabled("Off", False)
    store.triggers.add(
        f'trigger "Later" {{\n{body}\n}}\n', valid_from_ms=ms("2026-12-01T00:00:00Z")
    )
    store.triggers.add(
        f'trigger "Over" {{\n{body}\n}}\n', valid_until_ms=ms("2026-11-01T00:00:00Z")
    )
    store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    assert deliveries(store) == []
    store.triggers.defs.set_enabled("Off", True)
    store.ingest_events([form("e2", "c1", "2026-12-02T10:00:00Z")])
    assert sorted(d.source for d in deliveries(store)) == ["trigger:Later", "trigger:Off"]


def test_the_if_condition_sees_the_event_and_the_history(store: Node) -> None:
    add(
        store,
        "on form_compiled\nif did form_compiled at least 2 times in last 7 days\n"
        'do webhook(url: "https://hook.example/x")',
    )
    store.ingest_events([form("e1", "c1", "2026-11-01T10:00:00Z")])
    assert deliveries(store) == []  # one event so far (itself)
    store.ingest_events([form("e2", "c1", "2026-11-03T10:00:00Z")])
    assert [d.key.split(":")[3] for d in deliveries(store)] == ["e2"]
    store.ingest_events([form("e3", "c1", "2026-11-20T10:00:00Z")])  # e1, e2 out of the window
    assert len(deliveries(store)) == 1


def test_a_missing_template_field_is_refused_when_known(store: Node) -> None:
    with pytest.raises(DslError) as err:
        add(
            store,
            'on form_compiled\ndo send_email(campaign: "C-1234", to: profile.email, '
            "fields: {first_name: profile.first_name})",
        )
    assert [d.code for d in err.value.diagnostics] == ["template_fields"]
    assert "form" in err.value.render()


def test_a_template_broken_later_records_a_failed_delivery(store: Node) -> None:
    seed(store)
    store.triggers.add_template("C-1234", "Hi {{ nickname }}", "<p/>", "-")
    store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    [d] = deliveries(store)
    assert d.status == "failed" and d.last_error is not None
    assert "nickname" in d.last_error and "does not give" in d.last_error
    assert d.payload["fields"] == {"first_name": "<Angela>", "form": "addUser"}
    [f] = store.triggers.state.firings().list()
    [outcome] = json.loads(f.outcome)
    assert outcome == {
        "action": "send_email",
        "status": "failed",
        "delivery": d.id,
        "reason": d.last_error,
    }
    # a failed delivery is not counted: one an hour later is within "max 1 per day"
    store.triggers.add_template("C-1234", "Hi {{ first_name }}", "<p/>", "{{ form }}")
    store.ingest_events([form("e2", "c1", "2026-11-20T11:00:00Z")])
    assert [x.status for x in deliveries(store)] == ["failed", "reserved"]


def test_an_unknown_journey_is_refused(store: Node) -> None:
    with pytest.raises(DslError) as err:
        add(store, 'on form_compiled\ndo enter_journey("Welcome")')
    assert err.value.diagnostics[0].code == "unknown_journey"
    assert store.triggers.defs.list_triggers() == []


@pytest.mark.parametrize("journal", ["row", "file"])
def test_an_ingest_whose_matching_died_is_caught_up(
    store: Node, tmp_path: Path, journal: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if journal == "file":  # as a big ingest's journal is
        monkeypatch.setattr("audience.runtime.triggers.state.ROW_JOURNAL_MAX", 0)
    jdir = tmp_path / "shop/nodes/main/triggers/journal"
    seed(store)
    engine = store.triggers
    journals: list[Any] = []
    before = engine.before_commit

    def keep(version: int, new: Any) -> Any:
        pending = before(version, new)
        journals.append(pending.table if pending is not None else None)
        return pending

    def die(table: object) -> None:
        raise RuntimeError("killed")

    engine.before_commit = keep  # type: ignore[method-assign,assignment]
    engine.process = die  # type: ignore[method-assign,assignment]
    store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])  # lands; matching fails
    assert store.ingest_events([]).accepted == 0
    assert engine.errors and deliveries(store) == []
    [left] = engine.state.pending_journals(10**9)
    assert left.version == 3 and (left.path is None) == (journal == "row")
    assert len(list(jdir.iterdir())) == (journal == "file")
    # another process opens the store: its first ingest catches up, in order
    again = open_node(tmp_path / "shop")
    again.ingest_events([form("e2", "c3", "2026-11-20T11:00:00Z")])
    keys = sorted(d.key.split(":")[3] for d in deliveries(again))
    assert keys == ["e1", "e2"]
    assert engine.state.pending_journals(10**9) == []
    assert list(jdir.iterdir()) == []
    # replaying a journal again changes nothing
    assert again.triggers.catch_up().fired == 0
    assert journals[0] is not None
    assert again.triggers.process(journals[0]).fired == 0
    assert len(deliveries(again)) == 2


def test_dry_run_reports_and_writes_nothing(store: Node, tmp_path: Path) -> None:
    store.ingest_events(
        [
            form("e1", "c1", "2026-11-20T10:00:00Z"),
            form("e2", "c1", "2026-11-20T12:00:00Z"),
            form("e3", "c3", "2026-11-21T12:00:00Z"),
            form("e4", "c2", "2026-11-21T12:00:00Z"),
            form("e5", "c3", "2026-10-01T12:00:00Z"),
        ]
    )
    seed(store)  # saved after the events: they fired nothing
    assert deliveries(store) == []
    report = dry_run(store, ms("2026-11-01T00:00:00Z"), ms("2026-11-30T00:00:00Z"))
    assert report.events == 4
    assert report.by_status() == {"reserved": 2, "suppressed": 1}
    assert report.skipped == {"if is false": 1}
    sup = next(d for d in report.deliveries if d.status == "suppressed")
    assert (sup.contact_id, sup.cap) == ("c1", "max 1 per day")
    assert deliveries(store) == []
    assert store.triggers.state.firings().list() == []


def test_in_memory_stores_fire_too() -> None:
    import pyarrow as pa

    from audience.schema import Schema

    st = Node.from_arrow(None, None, Schema.load(EXAMPLES / "maison.toml"))
    st.triggers.add(
        'trigger "Big spender" {\n on purchased where (amount > 100 and profile.city = "Milan")\n'
        ' do webhook(url: "https://hook.example/big", body: {amount: event.amount})\n}\n'
    )
    st.ingest_profiles([{"contact_id": "m1", "city": "Milan"}, {"contact_id": "m2"}])
    st.ingest_events(
        pa.Table.from_pylist(
            [
                {
                    "contact_id": "m1",
                    "type": "purchased",
                    "ts": ms("2026-11-01T00:00:00Z"),
                    "amount": 150.0,
                },
                {
                    "contact_id": "m1",
                    "type": "purchased",
                    "ts": ms("2026-11-02T00:00:00Z"),
                    "amount": 50.0,
                },
                {
                    "contact_id": "m2",
                    "type": "purchased",
                    "ts": ms("2026-11-03T00:00:00Z"),
                    "amount": 500.0,
                },
            ]
        )
    )
    [d] = st.triggers.log.list()
    assert (d.contact_id, d.payload["body"]) == ("m1", {"amount": 150.0})
    assert d.key.startswith("main:Big spender:1:h:")  # no id: a content hash


def test_the_same_event_id_on_two_nodes_fires_for_each_contact(store: Node, tmp_path: Path) -> None:
    """Event ids are the sender's: node 'other' may reuse one of 'main'. Each node's
    trigger must reserve its own contact's delivery (found in review)."""
    seed(store)
    other = Node.init(tmp_path / "shop", EXAMPLES / "maison.toml", node="other")
    other.ingest_profiles([{"contact_id": "o1", "email": "olga@example.com", "first_name": "O"}])
    store.ingest_events([form("order-1", "c1", "2026-11-20T10:00:00Z")])
    other.ingest_events([form("order-1", "o1", "2026-11-20T10:00:00Z")])
    by_node = {d.node: d for d in deliveries(store)}
    assert by_node["main"].contact_id == "c1"
    assert by_node["other"].contact_id == "o1"
    assert by_node["other"].payload["to"] == "olga@example.com"
