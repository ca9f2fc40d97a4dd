"""The store commands and saved segments."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from audience.cli.store_cmds import register
from audience.runtime.node import Node, open_node
from audience.runtime.store import StoreError
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
    assert "1 rejected record shown" in r.output
    assert open_node(s).snapshot().n_events == 8
    r = runner.invoke(cli(), ["ingest", str(tmp_path), str(events)])
    assert r.exit_code == 1 and "not an audience store" in r.output


def _store_with_schema(tmp_path: Path) -> str:
    (tmp_path / "schema.toml").write_text(SCHEMA_TOML)
    s = str(tmp_path / "s")
    Node.init(s, tmp_path / "schema.toml")
    return s


def test_ingest_says_when_every_record_was_rejected(tmp_path: Path) -> None:
    s = _store_with_schema(tmp_path)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"contact_id": "c1", "type": "x", "ts": 1}] * 2)
    r = CliRunner().invoke(cli(), ["ingest", s, str(bad)])
    assert r.exit_code == 0, r.output
    assert "bad.jsonl: 0 accepted, 2 rejected, 0 duplicates: every record was rejected" in r.stdout
    assert "nothing was stored" in r.stdout
    good = write_jsonl(tmp_path / "good.jsonl", EVENTS)
    r = CliRunner().invoke(cli(), ["ingest", s, str(good)])
    assert "every record" not in r.output


def test_ingest_strict_fails_on_any_reject_and_keeps_the_accepted(tmp_path: Path) -> None:
    s = _store_with_schema(tmp_path)
    events = write_jsonl(
        tmp_path / "e.jsonl", [*EVENTS, {"contact_id": "c1", "type": "x", "ts": 1}]
    )
    runner = CliRunner()
    r = runner.invoke(cli(), ["ingest", s, str(events), "--strict"])
    assert r.exit_code == 1
    assert "e.jsonl: 6 accepted, 1 rejected, 0 duplicates" in r.stdout
    assert "error: 1 record rejected (--strict); the 6 accepted records are stored" in r.stderr
    assert open_node(s).snapshot().n_events == 6
    r = runner.invoke(cli(), ["ingest", s, str(events), "--strict"])  # all but one: duplicates
    assert r.exit_code == 1 and "the 1 accepted record is stored" in r.stderr
    clean = write_jsonl(
        tmp_path / "clean.jsonl", [{**e, "id": f"n{i}"} for i, e in enumerate(EVENTS)]
    )
    r = runner.invoke(cli(), ["ingest", s, str(clean), "--strict"])
    assert r.exit_code == 0 and r.stderr == ""
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"contact_id": "c1", "type": "x", "ts": 1}])
    r = runner.invoke(cli(), ["ingest", s, str(bad), "--strict"])
    assert r.exit_code == 1 and "no record was accepted" in r.stderr


def test_rejected_as_json(tmp_path: Path) -> None:
    s = _store_with_schema(tmp_path)
    events = write_jsonl(
        tmp_path / "e.jsonl",
        [*EVENTS, {"contact_id": "c1", "type": "x", "ts": 1}, {"contact_id": "c2", "ts": 2}],
    )
    runner = CliRunner()
    runner.invoke(cli(), ["ingest", s, str(events)])
    r = runner.invoke(cli(), ["rejected", s, "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [(x["where"], x["line"], x["kind"]) for x in rows] == [
        ("line 7", 7, "events"),
        ("line 8", 8, "events"),
    ]
    assert "unknown event type" in rows[0]["reason"]
    assert json.loads(rows[0]["record"])["type"] == "x"
    assert set(rows[1]) == {"kind", "source", "line", "where", "field", "reason", "record"}


def test_segments_list_and_show_as_json(tmp_path: Path) -> None:
    s = _store_with_schema(tmp_path)
    st = Node.open(s)
    st.save_segment("buyers", "did purchased in last 30 days")
    st.save_segment("buyers", "did purchased in last 60 days")
    st.save_segment("[bold]odd", "did purchased")
    runner = CliRunner()
    r = runner.invoke(cli(), ["segments", "list", s, "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {x["name"]: x for x in json.loads(r.stdout)}
    assert set(rows) == {"buyers", "[bold]odd"}
    assert rows["buyers"]["version"] == 2
    assert rows["buyers"]["text"] == "did purchased in last 60 days"
    r = runner.invoke(cli(), ["segments", "list", s])
    assert "[bold]odd" in r.stdout  # a name is not read as markup
    r = runner.invoke(cli(), ["segments", "show", s, "buyers", "--format", "json"])
    one = json.loads(r.stdout)
    assert (one["name"], one["version"], one["text"]) == ("buyers", 2, rows["buyers"]["text"])
    assert set(one) == {"name", "text", "created", "updated", "version"}


def test_segments_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    s = str(tmp_path / "s")
    Node.init(s, schema())
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
    Node.open(s).triggers.add(
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
    Node.open(s).triggers.defs.delete_trigger("Tag buyers")
    assert runner.invoke(cli(), ["segments", "delete", s, "loyal"]).exit_code == 0
    r = runner.invoke(cli(), ["segments", "delete", s, "buyers"])
    assert r.exit_code == 0
    r = runner.invoke(cli(), ["segments", "show", s, "buyers"])
    assert r.exit_code == 1 and "no saved segment 'buyers'" in r.output
    r = runner.invoke(cli(), ["segments", "save", s, "x"])
    assert r.exit_code == 2


def test_listing_reads_a_migrated_file_as_is_and_migrates_one_that_is_not(
    tmp_path: Path,
) -> None:
    store = Node.init(tmp_path / "s", schema())
    store.save_segment("b", 'city = "Milan"')
    store.save_segment("a", "did purchased")
    path = tmp_path / "s" / "definitions.sqlite"
    # read without opening the database the regular way (which would migrate)
    reader = Definitions(path)
    assert [(s.name, s.version) for s in reader.list_segments()] == [("a", 1), ("b", 1)]
    assert reader._db is None
    # a file missing a migration of the saved segments takes the regular way
    with sqlite3.connect(path) as conn:
        conn.execute("delete from schema_migrations where component = 'segments'")
        conn.execute("drop table segments")
    conn.close()
    reader = Definitions(path)
    assert reader.list_segments() == []
    assert reader._db is not None
    # and a store without its file yet makes it
    fresh = Definitions(tmp_path / "new.sqlite")
    assert fresh.list_segments() == [] and (tmp_path / "new.sqlite").exists()


def test_definitions_api_and_migrations(tmp_path: Path) -> None:
    store = Node.init(tmp_path / "s", schema())
    a = store.save_segment("a", "did purchased")
    b = store.save_segment("a", "did viewed_product")
    assert (a.version, b.version, b.created) == (1, 2, a.created)
    store.save_segment("b", 'city = "Milan"')
    # shared by nodes and reopened stores
    other = Node.init(tmp_path / "s", schema(), node="eu")
    assert [s.name for s in other.list_segments()] == ["a", "b"]
    assert open_node(tmp_path / "s").get_segment("a") == b
    assert store.delete_segment("a") and not store.delete_segment("a")
    assert store.get_segment("a") is None
    with pytest.raises(StoreError, match="bad segment name"):
        store.save_segment("  ", "x")
    db = Definitions(tmp_path / "s" / "definitions.sqlite")
    db.list_segments()
    rows = db._open().execute("select component, id, name from schema_migrations").fetchall()
    # each component migrates its own tables (deleting a segment asked the triggers)
    assert [r for r in rows if r[0] == "segments"] == [("segments", 1, "segments")]
    mem = Node.from_arrow(None, None, schema())
    mem.save_segment("m", "did purchased")
    assert [s.name for s in mem.list_segments()] == ["m"]
    assert (
        json.loads(json.dumps([s.__dict__ for s in mem.list_segments()]))[0]["text"]
        == "did purchased"
    )
