"""The store directory: init/open errors, files and manifest, crash safety."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from audience.runtime.node import open_store
from audience.runtime.store import Store, StoreError, wal
from tests.helpers.store_data import SCHEMA_TOML, dump, events_table, schema

ROOT = Path(__file__).resolve().parents[1]


def test_init_layout_and_open(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s", schema())
    node = tmp_path / "s" / "nodes" / "main"
    assert json.loads((tmp_path / "s" / "store.json").read_text())["format"] == 1
    assert (tmp_path / "s" / "definitions.sqlite").is_file()
    assert (node / "schema.toml").is_file() and (node / "manifest.json").is_file()
    store.ingest_events(events_table())
    again = open_store(tmp_path / "s")
    assert again.schema == schema() and again.node == "main" and again.path == tmp_path / "s"
    assert dump(again.snapshot()) == dump(store.snapshot())
    other = Store.init(tmp_path / "s", schema(), node="eu")
    assert other.snapshot().n_events == 0
    assert open_store(tmp_path / "s", node="eu").node == "eu"


def test_init_and_open_errors(tmp_path: Path) -> None:
    Store.init(tmp_path / "s", schema())
    with pytest.raises(StoreError, match=r"s: already a store with a node 'main'"):
        Store.init(tmp_path / "s", schema())
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(StoreError, match="full: exists and is not an empty directory"):
        Store.init(tmp_path / "full", schema())
    with pytest.raises(StoreError, match="full: not an audience store"):
        open_store(tmp_path / "full")
    with pytest.raises(StoreError, match="no node 'eu' \\(nodes: main\\)"):
        open_store(tmp_path / "s", node="eu")
    bad = tmp_path / "bad.toml"
    bad.write_text('[events.a]\nx = "integer"\n')
    with pytest.raises(StoreError, match=r"bad\.toml"):
        Store.init(tmp_path / "t", bad)
    assert not (tmp_path / "t").exists()
    (tmp_path / "s" / "nodes" / "main" / "schema.toml").write_text("[profile\n")
    with pytest.raises(StoreError, match=r"schema\.toml: not valid TOML"):
        open_store(tmp_path / "s")


def test_partitions_on_disk_are_memory_mapped_arrow_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal, "MAX_ROWS", 0)  # every ingest writes its partitions
    store = Store.init(tmp_path / "s", schema())
    store.ingest_events(events_table())
    store.ingest_events([{"contact_id": "c1", "type": "purchased", "ts": "2026-10-05T00:00:00Z"}])
    node = tmp_path / "s" / "nodes" / "main"
    manifest = json.loads((node / "manifest.json").read_text())
    parts = manifest["partitions"]
    assert [p["bucket"] for p in parts] == ["2026-09", "2026-10", "2026-11", "2026-10"]
    for p in parts:
        with pa.memory_map(str(node / p["file"])) as f:
            t = ipc.open_file(f).read_all()
            assert t.num_rows == p["rows"]
            ts = t.column("__ts").to_pylist()
            assert ts == sorted(ts) and (ts[0], ts[-1]) == (p["min_ts"], p["max_ts"])
    snap = Store.open(tmp_path / "s").snapshot()
    assert [(q.min_ts, q.max_ts) for q in snap.partitions] == [
        (p["min_ts"], p["max_ts"]) for p in parts
    ]
    # the snapshot's arrays are views of the mapped files, not copies
    assert not snap.partitions[1].ts.flags.owndata
    assert not snap.partitions[1].columns["category"].values.flags.owndata


def test_reader_keeps_its_version_during_and_after_an_ingest(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s", schema())
    store.ingest_events(events_table())
    reader = open_store(tmp_path / "s")
    before = reader.snapshot()
    writer = open_store(tmp_path / "s")
    writer.ingest_events([{"contact_id": "z", "type": "purchased", "ts": 5}])
    assert before.n_events == 6 and before.n_contacts == 4
    after = reader.snapshot()
    assert after.n_events == 7 and after.version == before.version + 1


CHILD = """
import sys
from audience.runtime.node import open_store
store = open_store(sys.argv[1])
batch = int(sys.argv[2])
run = sys.argv[3]
for k in range(1000):
    recs = [{"id": f"{run}-{k}-{i}", "contact_id": f"c{i % 5000}", "type": "purchased",
             "ts": 1_790_000_000_000 + i * 3_600_000, "properties": {"order_id": f"o{run}-{k}-{i}"}}
            for i in range(batch)]
    store.ingest_events(recs)
    print(k, flush=True)
"""


def _run_and_kill(store_dir: Path, delay: float, batch: int, run: int) -> int:
    """Ingest in a child until killed -9 ``delay`` s after its first ingest
    returned (so the kill lands amid ingests, however slow the start); the
    number of ingests that returned (their line was printed)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store_dir), str(batch), str(run)],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None
    first = child.stdout.readline()
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate()
    return len((first + out).decode().split())


def test_kill_9_mid_ingest_leaves_the_previous_version(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s", schema())
    rng = random.Random(7)
    batch = 3000
    for run in range(3):
        before = open_store(tmp_path / "s").snapshot().n_events
        returned = _run_and_kill(tmp_path / "s", rng.uniform(0.05, 0.8), batch, run)
        n = open_store(tmp_path / "s").snapshot().n_events
        # every ingest that returned is there; the one cut short is whole or absent
        assert n - before in (returned * batch, (returned + 1) * batch)
        assert n % batch == 0
    # a later ingest works and sweeps what the killed one left behind
    report = store.ingest_events([{"contact_id": "x", "type": "purchased", "ts": 1}])
    assert report.accepted == 1
    node = tmp_path / "s" / "nodes" / "main"
    manifest = json.loads((node / "manifest.json").read_text())
    listed = {p["file"] for p in manifest["partitions"]}
    on_disk = {f"partitions/{p.name}" for p in (node / "partitions").iterdir()}
    # Nothing of the killed ingest (a version the manifest never reached) is
    # left; files compaction merged away wait for their grace period.
    assert listed <= on_disk
    assert all(int(f.split("/")[1][:8]) <= manifest["version"] for f in on_disk - listed)
    assert not list(node.rglob("*.tmp"))
    snap = open_store(tmp_path / "s").snapshot()
    for p in snap.partitions:
        assert list(p.ts) == sorted(p.ts)
    assert len(snap.dictionaries["order_id"]) == snap.n_events - 1


# Killed -9 between writing the new manifest's temporary file and the switch
# (os.replace onto manifest.json): the leftover the kill test found by chance.
KILLED_AT_SWITCH = """
import os, signal, sys
from audience.runtime.node import open_store
store = open_store(sys.argv[1])
replace = os.replace
def killed_at_switch(src, dst, *args, **kwargs):
    if os.path.basename(dst) == "manifest.json":
        os.kill(os.getpid(), signal.SIGKILL)
    return replace(src, dst, *args, **kwargs)
os.replace = killed_at_switch
store.ingest_events([{"contact_id": "k", "type": "purchased", "ts": i} for i in range(50_000)])
"""


def test_a_writer_killed_at_the_switch_leaves_a_temp_file_the_next_writer_sweeps(
    tmp_path: Path,
) -> None:
    store = Store.init(tmp_path / "s", schema())
    store.ingest_events(events_table())
    node = tmp_path / "s" / "nodes" / "main"
    version = json.loads((node / "manifest.json").read_text())["version"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AT_SWITCH, str(tmp_path / "s")], env=env, check=False
    )
    assert proc.returncode == -signal.SIGKILL
    # what the killed writer left: its manifest's temporary file, its partitions
    assert (node / "manifest.json.tmp").is_file()
    assert json.loads((node / "manifest.json.tmp").read_text())["version"] > version
    assert any(int(p.name[:8]) > version for p in (node / "partitions").iterdir())
    # readers (this process's store and a new opener) see the previous version
    assert store.snapshot().n_events == 6
    assert open_store(tmp_path / "s").snapshot().n_events == 6
    # the next writer sweeps it all: this object, which swept once already
    # (the lock file tells it the last holder did not leave cleanly)
    report = store.ingest_events([{"contact_id": "x", "type": "purchased", "ts": 1}])
    assert report.accepted == 1
    assert not list(node.rglob("*.tmp"))
    landed = json.loads((node / "manifest.json").read_text())["version"]
    assert not any(int(p.name[:8]) > landed for p in (node / "partitions").iterdir())
    assert open_store(tmp_path / "s").snapshot().n_events == 7


def test_an_ingest_that_returned_survives_kill_9(tmp_path: Path) -> None:
    Store.init(tmp_path / "s", schema())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = (
        "import sys, os, signal\n"
        "from audience.runtime.node import open_store\n"
        "r = open_store(sys.argv[1]).ingest_events("
        "[{'contact_id': 'c1', 'type': 'purchased', 'ts': 7}])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], env=env, check=False)
    assert proc.returncode == -signal.SIGKILL
    snap = open_store(tmp_path / "s").snapshot()
    assert snap.n_events == 1 and list(snap.contact_ids) == ["c1"]


def test_schema_file_round_trips(tmp_path: Path) -> None:
    Store.init(tmp_path / "s", schema())
    text = (tmp_path / "s" / "nodes" / "main" / "schema.toml").read_text()
    from audience.schema import Schema

    assert Schema.from_toml(text) == Schema.from_toml(SCHEMA_TOML)
