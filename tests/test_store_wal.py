"""The log of small ingests (audience.runtime.store.wal): what it holds is
seen by every reader as part of the version, deduplicated, checkpointed into
partitions without changing a thing, and survives a torn record and kill -9."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from audience.runtime.node import Node
from audience.runtime.store import Store, layout, wal
from audience.runtime.store.wal import HEADER, read_records
from audience.schema import Schema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Schema.from_toml(
    """
[profile]
city = "string"

[events.viewed]
category = "string"
"""
)
START = 1_780_000_000_000
DAY = 86_400_000
SEGMENT = 'did viewed where category = "shoes" at least 2 times in last 60 days'
AS_OF = dt.datetime.fromtimestamp((START + 40 * DAY) / 1000, dt.UTC)


def _rec(i: int, **kw: Any) -> dict[str, Any]:
    return {
        "id": f"e{i}",
        "contact_id": f"c{i % 23}",
        "type": "viewed",
        "ts": START + (i * 13 % 59) * DAY // 2,
        "category": ["shoes", "bags", "hats"][i % 3],
        **kw,
    }


def _rows(store: Store) -> list[tuple[Any, ...]]:
    snap = store.snapshot()
    cat = snap.dictionaries["category"].values
    out = []
    for part in snap.partitions:
        assert (np.diff(part.ts) >= 0).all()
        col = part.columns["category"]
        for k in range(len(part)):
            value = cat[col.values[k]] if col.valid is None or col.valid[k] else None
            out.append((snap.contact_ids[part.contact[k]], int(part.ts[k]), value))
    return sorted(out, key=lambda r: (r[0], r[1], r[2] or ""))


def _log_records(store_dir: Path) -> int:
    m = json.loads((store_dir / "nodes/main/manifest.json").read_text())
    return len(read_records(store_dir / "nodes/main" / wal.wal_name(m["version"]), 0)[0])


def test_small_ingests_are_logged_and_every_reader_sees_them(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s", SCHEMA)
    first = [_rec(i) for i in range(1500)]  # more than MAX_ROWS: partitions
    store.ingest_events(first)
    base = store.snapshot().version
    assert _log_records(tmp_path / "s") == 0
    later = [_rec(1500 + i) for i in range(5)]
    later[2] = _rec(1502, contact_id="newcomer", category="scarves")  # new codes
    later[3] = _rec(1503, category=None)
    for rec in later:
        assert store.ingest_events([rec]).accepted == 1
    assert _log_records(tmp_path / "s") == 5
    assert json.loads((tmp_path / "s/nodes/main/manifest.json").read_text())["version"] == base
    assert store.snapshot().version == base + 5
    everything = Store.from_arrow(pa.Table.from_pylist(first + later), schema=SCHEMA)
    assert _rows(store) == _rows(everything)
    other = Store.open(tmp_path / "s")
    assert other.snapshot().version == base + 5
    assert list(other.snapshot().contact_ids) == list(everything.snapshot().contact_ids)
    assert list(other.snapshot().dictionaries["category"].values) == [
        "shoes",
        "bags",
        "hats",
        "scarves",
    ]
    seg = Node(other).compile(SEGMENT).evaluate(as_of=AS_OF).ids()
    assert seg == Node(everything).compile(SEGMENT).evaluate(as_of=AS_OF).ids()
    snap = other.snapshot()
    newcomer = list(snap.contact_ids).index("newcomer")
    assert snap.first_event_ts[newcomer] == later[2]["ts"] and not snap.has_profile[newcomer]
    # A new process replays the log too.
    code = (
        "import sys; from audience.runtime.node import open_store; "
        "s = open_store(sys.argv[1]).snapshot(); print(s.version, s.n_events, s.n_contacts)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    ).stdout.split()
    assert out == [str(base + 5), "1505", str(snap.n_contacts)]


def test_duplicates_are_found_in_the_log_and_in_partitions(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s", SCHEMA)
    store.ingest_events([_rec(i) for i in range(1200)])
    store.ingest_events([_rec(5000)])
    r = store.ingest_events(
        [_rec(7), _rec(5000), _rec(5001), _rec(5001), {**_rec(5002), "id": None}]
    )
    assert (r.accepted, r.duplicates) == (2, 3)  # e7 stored, e5000 logged, e5001 twice
    r = Store.open(tmp_path / "s").ingest_events([_rec(5001), _rec(5002)])
    assert (r.accepted, r.duplicates) == (1, 1)  # 5002 was logged without an id: not a duplicate
    assert Store.open(tmp_path / "s").snapshot().n_events == 1200 + 4


def test_checkpoints_keep_versions_and_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal, "CHECKPOINT_ROWS", 4)
    store = Store.init(tmp_path / "s", SCHEMA)
    records = [_rec(i) for i in range(30)]
    versions = [store.snapshot().version]
    for rec in records:
        store.ingest_events([rec])
        versions.append(store.snapshot().version)
        assert Store.open(tmp_path / "s").snapshot().version == versions[-1]
    assert versions == list(range(versions[0], versions[0] + 31))  # one version per ingest
    manifest = json.loads((tmp_path / "s/nodes/main/manifest.json").read_text())
    assert versions[0] < manifest["version"] <= versions[-1]  # checkpointed on the way
    everything = Store.from_arrow(pa.Table.from_pylist(records), schema=SCHEMA)
    assert _rows(store) == _rows(everything) == _rows(Store.open(tmp_path / "s"))
    # A big ingest checkpoints the log first; so does a profiles ingest.
    store.ingest_events([_rec(100 + i) for i in range(1100)])
    assert _log_records(tmp_path / "s") == 0
    store.ingest_events([_rec(9000, contact_id="late")])
    store.ingest_profiles([{"contact_id": "late", "city": "Milan"}])
    snap = Store.open(tmp_path / "s").snapshot()
    late = list(snap.contact_ids).index("late")
    assert snap.has_profile[late] and snap.n_events == 30 + 1100 + 1
    assert _log_records(tmp_path / "s") == 0
    store.checkpoint()  # nothing logged: nothing to do
    assert Store.open(tmp_path / "s").snapshot().version == snap.version


def test_a_torn_record_is_ignored_then_cut_off(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s", SCHEMA)
    for i in range(3):
        store.ingest_events([_rec(i)])
    m = json.loads((tmp_path / "s/nodes/main/manifest.json").read_text())
    log = tmp_path / "s/nodes/main" / wal.wal_name(m["version"])
    whole = log.read_bytes()
    # What a crash mid-append leaves: a header promising more than was written.
    with open(log, "ab") as f:
        f.write(HEADER.pack(wal.MAGIC, 1000, 0) + b"x" * 10)
    reader = Store.open(tmp_path / "s")
    assert reader.snapshot().n_events == 3
    reader.ingest_events([_rec(3)])
    assert log.read_bytes().startswith(whole) and _log_records(tmp_path / "s") == 4
    assert Store.open(tmp_path / "s").snapshot().n_events == 4
    # A damaged payload (bad checksum) also ends the log for readers.
    data = bytearray(log.read_bytes())
    data[-1] ^= 0xFF
    log.write_bytes(bytes(data))
    assert Store.open(tmp_path / "s").snapshot().n_events == 3


CHILD = """
import sys
from audience.runtime.node import open_store
store = open_store(sys.argv[1])

def ingest(k):
    store.ingest_events([{"id": f"k{k}", "contact_id": f"c{k % 50}", "type": "viewed",
                          "ts": 1_780_000_000_000 + k * 1000, "category": "shoes"}])

ingest(0)  # the first ingest loads what ingests need
print("ready", flush=True)
for k in range(1, 100000):
    ingest(k)
    print(k, flush=True)
"""


def test_kill_9_during_single_event_ingests_loses_nothing_returned(tmp_path: Path) -> None:
    Store.init(tmp_path / "s", SCHEMA)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    returned = 0
    for delay in (0.3, 0.7):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD.replace("k{k}", f"k{delay}-{{k}}"), str(tmp_path / "s")],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        done = 1 + len(out.decode().split())  # and the one before "ready"
        n = Store.open(tmp_path / "s").snapshot().n_events
        # every ingest that returned is there; the one cut short is whole or absent
        assert n - returned in (done, done + 1)
        returned = n
    assert returned > 0
    store = Store.open(tmp_path / "s")
    assert store.ingest_events([{**_rec(1), "id": "after"}]).accepted == 1
    assert store.snapshot().n_events == returned + 1


def test_a_memory_store_takes_the_regular_path() -> None:
    store = Store.from_arrow(None, schema=SCHEMA)
    store.ingest_events([_rec(1)])
    store.ingest_events([_rec(2)])
    assert store.snapshot().n_events == 2 and len(store.snapshot().partitions) == 2


def test_readers_never_see_a_torn_version(tmp_path: Path) -> None:
    """Snapshots taken while another thread logs ingests are each whole: every
    contact code in the partitions has an id, a first-event time and a
    profile row, and versions only grow."""
    import threading

    store = Store.init(tmp_path / "s", SCHEMA)
    store.ingest_events([_rec(i) for i in range(1200)])
    done = threading.Event()
    problems: list[str] = []

    def read() -> None:
        last = 0
        while not done.is_set():
            snap = store.snapshot()
            n = snap.n_contacts
            top = max((int(p.contact.max()) for p in snap.partitions if len(p)), default=-1)
            if not (top < n == len(snap.has_profile) == len(snap.first_event_ts)):
                problems.append(f"version {snap.version}: {n} contacts, code {top}")
            if snap.version < last:
                problems.append(f"version went back from {last} to {snap.version}")
            last = snap.version

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for k in range(150):  # every event a new contact: the dictionaries grow
            store.ingest_events([_rec(2000 + k, contact_id=f"new{k}")])
    finally:
        done.set()
        for t in readers:
            t.join()
    assert not problems, problems[:3]
    assert store.snapshot().n_events == 1350


def test_a_log_of_an_older_version_stays_readable_for_the_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint stops naming the log (and the old contacts table); a reader
    that read the manifest just before must still find them, however old the
    files are."""
    store = Store.init(tmp_path / "s", SCHEMA)
    store.ingest_events([_rec(i) for i in range(1200)])
    store.ingest_events([_rec(5000, contact_id="logged-only")])
    node = tmp_path / "s/nodes/main"
    hour_ago = time.time() - 3600
    for f in node.rglob("*"):
        if f.is_file():
            os.utime(f, (hour_ago, hour_ago))
    reader = Store.open(tmp_path / "s")
    manifest = reader._backend.read_manifest()  # what a reader had just read
    monkeypatch.setattr(layout, "COLLECT_EVERY_S", 0.0)
    store.ingest_events([_rec(6000 + i) for i in range(1100)])  # checkpoint + partitions
    assert (node / wal.wal_name(manifest.version)).exists()
    assert manifest.contacts is not None and (node / manifest.contacts).exists()
    tail = reader._tail_for(manifest)
    assert tail is not None and tail.records == 1


def test_a_journal_of_an_ingest_that_never_landed_is_never_matched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audience.runtime.store import wal as wal_mod
    from tests.helpers.triggers import EXAMPLES, deliveries, form, seed

    st = Node.init(tmp_path / "s", EXAMPLES / "maison.toml")
    st.triggers.add_template("C-1234", "Welcome {{ first_name }}", "<p>Hi</p>", "Hi")
    st.ingest_profiles([{"contact_id": "c1", "email": "angela@example.com", "first_name": "A"}])
    seed(st)

    def disk_full(*args: Any) -> int:
        raise OSError(28, "No space left on device")

    # The disk fills up between the trigger journal and the log's append.
    with monkeypatch.context() as m:
        m.setattr(wal_mod, "append_record", disk_full)
        with pytest.raises(OSError, match="No space left"):
            st.ingest_events([form("GHOST", "c1", "2026-11-20T10:00:00Z")])
    # The next version lands without a journal of its own (a profiles ingest).
    st.ingest_profiles([{"contact_id": "c1", "first_name": "Angela"}])
    assert st.triggers.catch_up().fired == 0
    report = st.ingest_events([form("REAL", "c1", "2026-11-21T10:00:00Z")])
    assert report.triggers is not None and report.triggers.fired == 1
    assert [d.key.split(":")[3] for d in deliveries(st)] == ["REAL"]
    assert st.snapshot().n_events == 1
