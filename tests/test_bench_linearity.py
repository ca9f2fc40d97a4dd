"""benchmarks.linearity at a tiny size (the structure, never the timings),
and the peer harness's on-disk load of our engine."""

from __future__ import annotations

from pathlib import Path

from audience.demo.shop import DEFAULT_NOW
from benchmarks.linearity import measure, table
from benchmarks.peers.data import dataset
from benchmarks.peers.ours import OursEngine
from benchmarks.peers.workloads import WORKLOADS, Times


def test_old_events_are_skipped_and_new_window_events_are_read(tmp_path: Path) -> None:
    first, old, more = measure(tmp_path / "store", 3_000, runs=1, n_contacts=200)
    assert (first.n_events, old.n_events, more.n_events) == (3_000, 6_000, 9_000)
    # Events 60 to 90 days old: new partitions, all skipped; nothing more read.
    assert old.partitions["skipped"] > first.partitions["skipped"]
    assert old.partitions["read"] == first.partitions["read"]
    assert old.partitions["total"] > first.partitions["total"]
    # The old events change nobody's answer for a 15-day window.
    assert old.audience == first.audience
    # More events in the window: more partitions read, none more skipped.
    assert more.partitions["read"] > old.partitions["read"]
    assert more.partitions["skipped"] == old.partitions["skipped"]
    assert first.audience > 0
    lines = table([first, old, more]).splitlines()
    assert len(lines) == 5 and "older than 60 days" in lines[3]


def test_peer_harness_loads_ours_from_disk_with_the_in_memory_answers(tmp_path: Path) -> None:
    ds = dataset(5_000, data_dir=tmp_path / "data", profile_gap=4)
    disk, memory = OursEngine(), OursEngine(in_memory=True)
    for e in (disk, memory):
        e.load(ds.events, ds.profiles)
    assert disk._tmp is not None
    store_dir = Path(disk._tmp.name)
    assert disk.snapshot.n_events == memory.snapshot.n_events == 5_000
    t = Times(DEFAULT_NOW)
    for w in WORKLOADS:
        assert disk.ids(disk.prepare(w, t)()) == memory.ids(memory.prepare(w, t)()), w.key
    disk.close()
    assert not store_dir.exists()
