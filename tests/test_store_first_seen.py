"""First event times over an ingest of many small batches into a store that
already knows many contacts: the sparse bookkeeping of first times must give
the dense answer, and it stays sparse only while everything kept is sparse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience.runtime.store import Store
from audience.runtime.store import ingest as ingest_mod
from tests.helpers.store_data import schema

T0 = 1_790_000_000_000  # 2026-09-21
CONTACTS = 4_000


def _files(tmp_path: Path, seed: int) -> tuple[Path, Path, dict[str, int]]:
    rng = np.random.default_rng(seed)
    ids = [f"c{i}" for i in range(CONTACTS)]
    profiles = tmp_path / "profiles.parquet"
    pq.write_table(pa.table({"contact_id": ids, "city": ["Rome"] * CONTACTS}), profiles)
    n = 3_000
    who = rng.integers(0, CONTACTS, n)
    ts = T0 + rng.integers(0, 40 * 86_400_000, n)
    events = tmp_path / "events.parquet"
    table = pa.table(
        {
            "id": [f"e{i}" for i in range(n)],
            "contact_id": [ids[i] for i in who],
            "type": ["viewed_product"] * n,
            "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
        }
    )
    pq.write_table(table, events, row_group_size=20)  # one small batch per row group
    first: dict[str, int] = {}
    for i, t in zip(who.tolist(), ts.tolist(), strict=True):
        first[ids[i]] = min(first.get(ids[i], t), t)
    return profiles, events, first


@pytest.mark.parametrize("seed", [1, 2])
def test_first_times_from_many_small_batches(tmp_path: Path, seed: int) -> None:
    profiles, events, want = _files(tmp_path, seed)
    store = Store.init(tmp_path / "store", schema())
    store.ingest_profiles(profiles)
    sparse_sizes: list[int] = []
    seen = ingest_mod.first_per_contact

    def watched(contacts: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sparse_sizes.append(len(contacts))
        return seen(contacts, ts)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ingest_mod, "first_per_contact", watched)
        report = store.ingest_events(events)
    assert report.accepted == 3_000
    # sparse while small, then dense: no batch re-sorts more than a sixteenth
    # of the contacts (all 3,000 events' contacts would be re-sorted otherwise)
    assert sparse_sizes and max(sparse_sizes) * ingest_mod.SPARSE_RATIO < CONTACTS
    snap = store.snapshot()
    got = dict(zip(snap.contact_ids, snap.first_event_ts.tolist(), strict=True))
    never = np.iinfo(np.int64).max
    assert {c: t for c, t in got.items() if t != never} == want
