"""A sharded node's ingest decides duplicates as one store does, batch after
batch: an id held by any shard, on an earlier row of the batch or of an
earlier batch of the same ingest (whichever contact it names) is dropped."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from audience.runtime.shards import ShardedStore
from audience.runtime.shards import ingest as shard_ingest
from audience.runtime.store import Store, dedup, sources
from audience.snapshot import Snapshot, dictionary_key

SCHEMA = """
[profile]
city = "string"

[events.visit]
page = "string"
"""


def _events(rng: random.Random, n: int, ids: int, contacts: int) -> pa.Table:
    """``n`` visits whose ids are drawn from ``ids`` (so many repeat, some with
    another contact), a few without an id; a table, so that it is read in
    batches of ``CHUNK_ROWS``."""
    out = []
    for i in range(n):
        rec: dict[str, Any] = {
            "contact_id": f"c{rng.randrange(contacts)}",
            "type": "visit",
            "ts": 1_780_000_000_000 + rng.randrange(10**9),
            "page": f"p{i}",
        }
        rec["id"] = f"e{rng.randrange(ids)}" if rng.random() > 0.05 else None
        out.append(rec)
    return pa.Table.from_pylist(out)


def _held(snaps: list[Snapshot]) -> Counter[tuple[str, str]]:
    """(contact, page) of every event held."""
    out: Counter[tuple[str, str]] = Counter()
    for snap in snaps:
        pages = snap.dictionaries[dictionary_key("event", "page")].values
        for part in snap.partitions:
            codes = part.columns["page"].values
            for c, p in zip(part.contact.tolist(), codes.tolist(), strict=True):
                out[snap.contact_ids[c], pages[p]] += 1
    return out


# the Bloom filter's path and the one without it; the node's lookups made
# once per ingest, or again every few batches (after 50 ids)
@pytest.mark.parametrize(("filter_min", "renew"), [(1, 10**9), (10**9, 10**9), (1, 50)])
def test_duplicates_over_batches_and_shards_as_in_one_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filter_min: int, renew: int
) -> None:
    monkeypatch.setattr(sources, "CHUNK_ROWS", 37)  # several batches per ingest
    monkeypatch.setattr(dedup, "FILTER_MIN", filter_min)
    monkeypatch.setattr(shard_ingest, "SPILL_IDS", renew)
    rng = random.Random(7)
    one = Store.init(tmp_path / "one", SCHEMA)
    sharded = ShardedStore.init(tmp_path / "sharded", SCHEMA, shards=3)
    for round_ in range(3):  # later rounds repeat ids the stores hold
        events = _events(rng, 400, 500 * (round_ + 1), 60)
        want, got = one.ingest_events(events), sharded.ingest_events(events)
        assert (got.accepted, got.duplicates) == (want.accepted, want.duplicates), round_
        assert want.duplicates > 0 and want.accepted > 0
        assert _held(sharded.snapshots()) == _held([one.snapshot()])
    # one small ingest (the log of small ingests), then the same ids again
    small = _events(rng, 3, 5, 60)
    assert sharded.ingest_events(small).accepted == one.ingest_events(small).accepted
    assert sharded.ingest_events(small).duplicates == one.ingest_events(small).duplicates == 3
    assert _held(sharded.snapshots()) == _held([one.snapshot()])
