"""A trigger reacts to what happens after it is saved: events dated before its
valid-from (by default the moment it is saved) fire nothing, over the Python
API, the CLI and HTTP; a new version keeps its valid-from; stores written
before the default get their triggers' creation time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from audience.cli import cli
from audience.runtime.db import open_database
from audience.runtime.node import Node, open_node
from audience.runtime.triggers import dry_run
from audience.runtime.triggers.clock import fixed_clock
from audience.runtime.triggers.definitions import DEFINITIONS_FILE, MIGRATIONS
from tests.helpers.server_api import Live, build_store, start
from tests.helpers.triggers import EXAMPLES, deliveries, form, ms, seed

SEED = "Thank newsletter subscribers"
SAVED = "2026-11-15T09:00:00Z"  # when the tests below save their trigger
HOOK = 'trigger "Hook" {\n  on form_compiled\n  do webhook(url: "https://hook.example/x")\n}\n'


@pytest.fixture
def store(tmp_path: Path) -> Node:
    st = Node.init(tmp_path / "shop", EXAMPLES / "maison.toml")
    st.triggers.add_template(
        "C-1234", "Welcome {{ first_name }}", "<p>{{ form }}</p>", "{{ first_name }}"
    )
    st.ingest_profiles([{"contact_id": "c1", "email": "a@example.com", "first_name": "Angela"}])
    return st


def test_history_loaded_after_the_trigger_is_saved_fires_nothing(store: Node) -> None:
    with fixed_clock(ms(SAVED)):
        seed(store)
    [t] = store.triggers.defs.list_triggers()
    assert t.valid_from_ms == ms(SAVED)
    history = [
        form("old-1", "c1", "2025-11-20T10:00:00Z"),
        form("old-2", "c1", "2026-11-15T08:59:59.999Z"),
    ]
    report = store.ingest_events(history).triggers
    assert report is not None
    assert (report.matched, report.fired, dict(report.too_old)) == (2, 0, {SEED: 2})
    note = report.too_old_note() or ""
    assert note.startswith("2 matching events older than the trigger's valid-from fired nothing")
    assert "'Thank newsletter subscribers'" in note and "dry-run" in note
    assert deliveries(store) == []
    # an event at exactly the valid-from fires, and so does a later one
    report = store.ingest_events([form("now-1", "c1", SAVED)]).triggers
    assert report is not None and report.fired == 1 and not report.too_old
    assert [d.key.split(":")[3] for d in deliveries(store)] == ["now-1"]
    # the dry run still replays the history, saying it is older than the trigger
    replay = dry_run(store, None, ms(SAVED) - 1)
    assert (replay.fired, dict(replay.too_old)) == (2, {SEED: 2})


def test_an_explicit_valid_from_in_the_past_replays_on_purpose(store: Node) -> None:
    with fixed_clock(ms(SAVED)):
        store.triggers.add(HOOK, valid_from_ms=ms("2025-01-01T00:00:00Z"))
    report = store.ingest_events([form("old-1", "c1", "2025-11-20T10:00:00Z")]).triggers
    assert report is not None and report.fired == 1 and not report.too_old


def test_a_new_version_keeps_its_valid_from_unless_given(store: Node) -> None:
    with fixed_clock(ms(SAVED)):
        store.triggers.add(HOOK)
    with fixed_clock(ms("2026-12-01T00:00:00Z")):
        [again], _ = store.triggers.add(HOOK.replace("/x", "/y"))
    assert (again.version, again.valid_from_ms) == (2, ms(SAVED))
    # an event between the two saves fires: the trigger existed then
    report = store.ingest_events([form("mid-1", "c1", "2026-11-20T10:00:00Z")]).triggers
    assert report is not None and report.fired == 1
    [v3], _ = store.triggers.add(HOOK, valid_from_ms=ms("2026-11-25T00:00:00Z"))
    assert (v3.version, v3.valid_from_ms) == (3, ms("2026-11-25T00:00:00Z"))
    # disabling and enabling is not a new version: the valid-from stays too
    store.triggers.defs.set_enabled("Hook", False)
    on = store.triggers.defs.set_enabled("Hook", True)
    assert on is not None and on.valid_from_ms == ms("2026-11-25T00:00:00Z")
    # deleted and saved again: a new trigger, valid from that save
    store.triggers.defs.delete_trigger("Hook")
    with fixed_clock(ms("2026-12-02T00:00:00Z")):
        [fresh], _ = store.triggers.add(HOOK)
    assert (fresh.version, fresh.valid_from_ms) == (4, ms("2026-12-02T00:00:00Z"))


def test_a_validity_that_ends_before_the_default_start_is_refused(store: Node) -> None:
    from audience.runtime.store import StoreError

    with fixed_clock(ms(SAVED)), pytest.raises(StoreError) as err:
        store.triggers.add(HOOK, valid_until_ms=ms("2026-11-01T00:00:00Z"))
    assert "valid-from 2026-11-15T09:00:00.000Z" in str(err.value)
    assert "the moment it was first saved" in str(err.value)
    assert store.triggers.defs.list_triggers() == []


def test_a_store_saved_before_the_default_gets_the_creation_time(tmp_path: Path) -> None:
    path = tmp_path / "old"
    Node.init(path, EXAMPLES / "maison.toml")
    # the definitions file as the previous release left it: no valid-from
    db = open_database(path / DEFINITIONS_FILE, "triggers", MIGRATIONS[:1])
    with db.conn:
        db.execute(
            "insert into triggers (name, text, version, enabled, valid_from_ms, "
            "valid_until_ms, created, updated) values (?, ?, 1, 1, null, null, ?, ?)",
            ["Hook", HOOK, "2026-11-15T09:00:00.000Z", "2026-11-16T00:00:00.000Z"],
        )
        db.execute(
            "insert into triggers_versions (name, version, body, saved) values (?, 1, ?, ?)",
            ["Hook", HOOK, "2026-11-15T09:00:00.000Z"],
        )
    db.conn.close()
    st = open_node(path)
    [t] = st.triggers.defs.list_triggers()
    assert (t.valid_from_ms, t.version) == (ms(SAVED), 1)
    report = st.ingest_events(
        [form("before", "c1", "2026-11-01T00:00:00Z"), form("after", "c1", "2026-11-20T00:00:00Z")]
    ).triggers
    assert report is not None and (report.fired, dict(report.too_old)) == (1, {"Hook": 1})
    assert [d.key.split(":")[3] for d in deliveries(st)] == ["after"]


def _jsonl(path: Path, records: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_cli_history_ingested_after_triggers_add_fires_nothing(store: Node, tmp_path: Path) -> None:
    runner = CliRunner()
    root = str(store.path)
    rules = str(EXAMPLES / "maison.rules")
    with fixed_clock(ms(SAVED)):
        res = runner.invoke(cli, ["triggers", "add", root, "-f", rules])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["triggers", "show", root, SEED, "--format", "json"])
    assert json.loads(res.output)["valid_from"] == "2026-11-15T09:00:00.000Z"
    history = _jsonl(tmp_path / "h.jsonl", [form("old-1", "c1", "2025-11-20T10:00:00Z")])
    res = runner.invoke(cli, ["ingest", root, history])
    assert res.exit_code == 0, res.output
    assert "1 accepted" in res.output
    assert "triggers: 1 matching event older than the trigger's valid-from" in res.output
    assert open_node(root).triggers.log.list() == []
    # saved again with an explicit valid-from in the past: history fires on purpose
    res = runner.invoke(
        cli, ["triggers", "add", root, "-f", rules, "--valid-from", "2025-01-01T00:00:00Z"]
    )
    assert res.exit_code == 0, res.output
    more = _jsonl(tmp_path / "m.jsonl", [form("old-2", "c1", "2025-11-21T10:00:00Z")])
    res = runner.invoke(cli, ["ingest", root, more])
    assert res.exit_code == 0 and "older than" not in res.output
    assert [d.status for d in open_node(root).triggers.log.list()] == ["reserved"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path = build_store(tmp_path_factory.mktemp("vf") / "shop", n_events=200, n_contacts=20)
    srv = start(path)
    yield srv
    srv.server.stop()


def test_http_history_posted_after_the_trigger_fires_nothing(live: Live) -> None:
    c = live.client("write")
    with fixed_clock(ms(SAVED)):
        r = c.post("/v1/triggers", {"text": HOOK.replace("Hook", "Web hook")})
    assert r.status == 201, r
    assert r.json()["valid_from"] == "2026-11-15T09:00:00.000Z"
    old = form("http-old", "angela", "2025-11-20T10:00:00Z")
    body = c.post("/v1/events", [old]).json()["triggers"]
    assert (body["matched"], body["fired"], body["too_old"]) == (1, 0, {"Web hook": 1})
    assert "older than the trigger's valid-from" in body["note"]
    body = c.post("/v1/events", [form("http-now", "angela", SAVED)]).json()["triggers"]
    assert (body["fired"], body["too_old"]) == (1, {})
    assert "note" not in body
    # a replace keeps the valid-from
    with fixed_clock(ms("2026-12-01T00:00:00Z")):
        r = c.request("PUT", "/v1/triggers/Web hook", {"text": HOOK.replace("Hook", "Web hook")})
    assert (r.json()["version"], r.json()["valid_from"]) == (2, "2026-11-15T09:00:00.000Z")
    assert c.request("DELETE", "/v1/triggers/Web hook").status == 200
