"""The store commands and saved segments."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from audience.cli.store_cmds import register
from audience.runtime.store import Store, StoreError, open_store
from audience.runtime.store.definitions import Definitions
from tests.helpers.store_data import EVENTS, PROFILES, SCHEMA_TOML, schema, write_jsonl


def cli() -> click.Group:
    @click.group()
    def group() -> None:
        pass

    register(group)
    return group


def test_init_ingest_rejected(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "schema.toml").write_text(SCHEMA_TOML)
    s = str(tmp_path / "s")
    r = runner.invoke(cli(), ["init", s, "--schema", str(tmp_path / "schema.toml")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli(), ["init", s, "--schema", str(tmp_path / "schema.toml")])
    assert r.exit_code == 1 and "already a store" in r.output
    events = write_jsonl(
        tmp_path / "e.jsonl", [*EVENTS, {"contact_id": "c1", "type": "x", "ts": 1}]
    )
    r = runner.invoke(cli(), ["ingest", s, str(events)])
    assert r.exit_code == 0, r.output
    assert "6 accepted, 1 rejected, 0 duplicates" in r.output
    r = runner.invoke(cli(), ["ingest", s, str(events)])
    assert "1 accepted, 1 rejected, 5 duplicates" in r.output  # one event has no id: new again
    profiles = write_jsonl(tmp_path / "p.jsonl", PROFILES)
    r = runner.invoke(cli(), ["ingest", s, str(profiles), "--profiles"])
    assert r.exit_code == 0 and "2 accepted, 0 rejected" in r.output
    r = runner.invoke(cli(), ["ingest", s, str(tmp_path / "nope.csv"), str(events)])
    assert r.exit_code == 1 and "no such file" in r.output and "e.jsonl: 1 accepted" in r.output
    r = runner.invoke(cli(), ["rejected", s, "--limit", "1"])
    assert r.exit_code == 0 and "line 7" in r.output and "unknown event type" in r.output
    assert "1 rejected record(s) shown" in r.output
    assert open_store(s).snapshot().n_events == 8
    r = runner.invoke(cli(), ["ingest", str(tmp_path), str(events)])
    assert r.exit_code == 1 and "not an audience store" in r.output


def test_segments_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    s = str(tmp_path / "s")
    Store.init(s, schema())
    r = runner.invoke(
        cli(), ["segments", "save", s, "buyers", "-e", "did purchased in last 30 days"]
    )
    assert r.exit_code == 0, r.output
    assert "version 1" in r.output
    r = runner.invoke(cli(), ["segments", "save", s, "bad", "-e", "did purchase in last 30 days"])
    assert r.exit_code == 1 and "unknown event type 'purchase'" in r.output
    (tmp_path / "seg.rules").write_text('did viewed_product where category = "shoes"\n')
    r = runner.invoke(cli(), ["segments", "save", s, "buyers", "-f", str(tmp_path / "seg.rules")])
    assert r.exit_code == 0 and "version 2" in r.output
    r = runner.invoke(cli(), ["segments", "list", s])
    assert "buyers" in r.output and "bad" not in r.output
    r = runner.invoke(cli(), ["segments", "show", s, "buyers"])
    assert r.output.strip() == 'did viewed_product where category = "shoes"'
    # Not while another saved segment or a trigger uses it.
    r = runner.invoke(cli(), ["segments", "save", s, "loyal", "-e", 'in segment "buyers"'])
    assert r.exit_code == 0, r.output
    Store.open(s).triggers.add(
        'trigger "Tag buyers" {\n  on purchased\n  if in segment "buyers"\n'
        '  do add_tag("buyer")\n}\n',
        "t.rules",
    )
    r = runner.invoke(cli(), ["segments", "delete", s, "buyers"])
    assert r.exit_code == 1
    assert (
        'saved segment \'buyers\' is used by segment "loyal", trigger "Tag buyers": '
        "change or delete them first" in r.output
    )
    Store.open(s).triggers.defs.delete_trigger("Tag buyers")
    assert runner.invoke(cli(), ["segments", "delete", s, "loyal"]).exit_code == 0
    r = runner.invoke(cli(), ["segments", "delete", s, "buyers"])
    assert r.exit_code == 0
    r = runner.invoke(cli(), ["segments", "show", s, "buyers"])
    assert r.exit_code == 1 and "no saved segment 'buyers'" in r.output
    r = runner.invoke(cli(), ["segments", "save", s, "x"])
    assert r.exit_code == 2


def test_definitions_api_and_migrations(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s", schema())
    a = store.save_segment("a", "did purchased")
    b = store.save_segment("a", "did viewed_product")
    assert (a.version, b.version, b.created) == (1, 2, a.created)
    store.save_segment("b", 'city = "Milan"')
    # shared by nodes and reopened stores
    other = Store.init(tmp_path / "s", schema(), node="eu")
    assert [s.name for s in other.list_segments()] == ["a", "b"]
    assert open_store(tmp_path / "s").get_segment("a") == b
    assert store.delete_segment("a") and not store.delete_segment("a")
    assert store.get_segment("a") is None
    with pytest.raises(StoreError, match="bad segment name"):
        store.save_segment("  ", "x")
    db = Definitions(tmp_path / "s" / "definitions.sqlite")
    db.list_segments()
    rows = db._open().execute("select component, id, name from schema_migrations").fetchall()
    # each component migrates its own tables (deleting a segment asked the triggers)
    assert [r for r in rows if r[0] == "segments"] == [("segments", 1, "segments")]
    mem = Store.from_arrow(None, None, schema())
    mem.save_segment("m", "did purchased")
    assert [s.name for s in mem.list_segments()] == ["m"]
    assert (
        json.loads(json.dumps([s.__dict__ for s in mem.list_segments()]))[0]["text"]
        == "did purchased"
    )
