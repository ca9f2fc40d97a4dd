"""``triggers dry-run``: what replayed events would have done and why, apart
from what the delivery log already holds for them; and ``--format json`` on
every listing of the trigger commands."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from audience.cli import cli
from audience.runtime.delivery import DeliveryRequest
from audience.runtime.delivery.model import wall_ms
from audience.runtime.node import Node
from audience.runtime.triggers import dry_run
from audience.runtime.triggers.batch import iso_ms
from tests.helpers.triggers import add, deliveries, form, ms, seed
from tests.helpers.triggers import store as store  # the fixture

POLICY_NAME = "Maison shoes, clothes and accessories"
NOVEMBER = (ms("2026-11-01T00:00:00Z"), ms("2026-11-30T00:00:00Z"))


def test_deliveries_already_in_the_log_are_not_counted_as_held(store: Node) -> None:
    """Found in review: an event that really fired was replayed as 'suppressed',
    held behind its own delivery; it would send, and the log already holds it."""
    seed(store)
    # an event as they come live (an hour ahead, so its delivery is due at its
    # own time, where the replay decides it too, whatever the wall clock reads)
    soon = iso_ms(wall_ms() // 1000 * 1000 + 3_600_000)
    store.ingest_events([form("e1", "c1", soon)])
    [real] = deliveries(store)
    assert (real.status, real.due_ms) == ("reserved", ms(soon))
    report = dry_run(store)
    assert (report.fired, report.by_outcome(), report.held_by()) == (1, {"would send": 1}, {})
    assert [(d.id, d.status) for d in report.in_log] == [(real.id, "reserved")]
    doc = report.to_dict()
    assert doc["would"] == {"would send": 1}
    assert doc["in_log"]["by_status"] == {"reserved": 1}
    assert doc["in_log"]["deliveries"][0]["id"] == real.id
    assert deliveries(store) == [real]  # the dry run wrote nothing


def test_the_replay_says_why_each_match_would_or_would_not_send(store: Node) -> None:
    seed(store)
    add(store, 'on form_compiled\ndo add_tag("welcomed")\nonce per contact')
    # a delivery of another sender (a plan) is real and not replayed: it counts
    plan = store.triggers.log.request(
        DeliveryRequest(
            key="plan:spring:c3",
            node="main",
            contact_id="c3",
            email="carla@example.com",
            channel="email",
            kind="send_email",
            payload={},
            due_ms=ms("2026-11-21T09:00:00Z"),
            source="plan:Spring",
            now_ms=ms("2026-11-21T08:00:00Z"),  # recorded then, so it leaves at 09:00
        )
    )
    assert plan.status == "reserved"
    store.ingest_events(
        [
            form(None, "c1", "2026-11-20T10:00:00Z"),
            form(None, "c1", "2026-11-20T12:00:00Z"),  # the same day: max 1 per day
            form(None, "c2", "2026-11-20T12:00:00Z"),  # no email: the if is false
            form(None, "c3", "2026-11-21T12:00:00Z"),  # the plan's email the same day
        ]
    )
    report = dry_run(store, *NOVEMBER)
    held = f"DND policy {POLICY_NAME!r}: max 1 per day"
    assert report.by_outcome() == {"would send": 1, "held": 2}
    assert report.held_by() == {held: 2}
    assert [(d.contact_id, d.source) for d in report.deliveries if d.status == "suppressed"] == [
        ("c1", "trigger:Thank newsletter subscribers"),
        ("c3", "trigger:Thank newsletter subscribers"),
    ]
    assert report.skipped == {"if is false": 1, "once per contact": 1}
    doc = report.to_dict()
    assert doc["not_fired"] == {"if is false": 1, "once per contact": 1}
    assert doc["held_by"] == {held: 2}
    listed = [d for d in doc["deliveries"] if d["outcome"] == "held"]
    assert [d["why"] for d in listed] == [held, held]
    # what the log holds for these events: the trigger's own deliveries, not the plan's
    live = [d for d in deliveries(store) if d.source != "plan:Spring"]
    assert [d.status for d in live] == ["reserved", "suppressed", "reserved"]
    assert [d.id for d in report.in_log] == [d.id for d in live]


def invoke(*args: str) -> str:
    res = CliRunner().invoke(cli, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


def test_every_listing_has_a_json_form(store: Node, tmp_path: Path) -> None:
    seed(store)
    store.triggers.add_template("C-1234", "Hello {{ first_name }}", "<p>{{ form }}</p>", "-")
    store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    root = str(store.path)
    name = "Thank newsletter subscribers"

    triggers = json.loads(invoke("triggers", "list", root, "--format", "json"))["triggers"]
    assert [(t["name"], t["version"], t["enabled"]) for t in triggers] == [(name, 1, True)]
    assert triggers[0]["valid_from"] == "2026-01-01T00:00:00.000Z"
    shown = json.loads(invoke("triggers", "show", root, name, "--format", "json"))
    assert shown == triggers[0] and shown["text"].startswith(f'trigger "{name}"')
    history = json.loads(invoke("triggers", "show", root, name, "--history", "--format", "json"))
    assert (history["name"], [v["version"] for v in history["versions"]]) == (name, [1])

    policies = json.loads(invoke("dnd", "list", root, "--format", "json"))["policies"]
    assert [p["name"] for p in policies] == [POLICY_NAME]
    policy = json.loads(invoke("dnd", "show", root, POLICY_NAME, "--format", "json"))
    assert "max 1 per day" in policy["text"]
    past = json.loads(invoke("dnd", "show", root, POLICY_NAME, "--history", "--format", "json"))
    assert [v["version"] for v in past["versions"]] == [1]

    templates = json.loads(invoke("templates", "list", root, "--format", "json"))["templates"]
    assert [(t["name"], t["version"]) for t in templates] == [("C-1234", 2)]
    tpl = json.loads(invoke("templates", "show", root, "C-1234", "--format", "json"))
    assert tpl["subject"] == "Hello {{ first_name }}"
    versions = json.loads(
        invoke("templates", "show", root, "C-1234", "--history", "--format", "json")
    )["versions"]
    assert [json.loads(v["body"])["subject"] for v in versions] == [
        "Welcome {{ first_name }}",
        "Hello {{ first_name }}",
    ]

    doc = json.loads(invoke("triggers", "dry-run", root, "--format", "json", "--limit", "5"))
    assert (doc["events"], doc["fired"], doc["would"]) == (1, 1, {"would send": 1})
    assert doc["in_log"]["by_status"] == {"reserved": 1}
    assert doc["deliveries"][0]["contact_id"] == "c1"
    text = invoke("triggers", "dry-run", root)
    assert "would: would send 1" in text
    assert text.endswith("already in the delivery log for these events: reserved 1\n")
