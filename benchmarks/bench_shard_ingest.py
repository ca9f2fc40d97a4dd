"""The duplicate checks of a sharded node's ingest: the shop's events, half
ingested first, then the other half, then everything again (all duplicates),
each ingest read in batches of 500,000; per ingest its time and how many
Bloom filters of the duplicate index were built (and the time they took).

The node check asks every shard about every batch; a shard's own ingest of its
part of a batch builds that shard's filter once more.

    python -m benchmarks.bench_shard_ingest --events 4000000 --contacts 200000 --shards 4
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from audience.demo import shop
from audience.demo.run import EXAMPLES
from audience.runtime.shards import ShardedStore
from audience.runtime.store import dedup

_built = {"count": 0, "s": 0.0}


def _counted_resize(resize: object) -> object:
    """``Filter._resize`` (every build of a filter goes through it), counted and timed."""

    def counted(self: dedup.Filter, count: int) -> None:
        t0 = time.perf_counter()
        resize(self, count)  # type: ignore[operator]
        if count:  # (an empty filter is made with every index, and costs nothing)
            _built["count"] += 1
            _built["s"] += time.perf_counter() - t0

    return counted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--shards", type=int, default=4)
    args = ap.parse_args()
    dedup.Filter._resize = _counted_resize(dedup.Filter._resize)  # type: ignore[method-assign,assignment]
    now = shop.DEFAULT_NOW
    table = pa.concat_tables(list(shop.events(args.events, args.contacts, now=now)))
    half = table.num_rows // 2
    root = Path(tempfile.mkdtemp(prefix="bench-shard-ingest-"))
    try:
        st = ShardedStore.init(root / "s", EXAMPLES / "maison.toml", shards=args.shards)
        st.ingest_profiles(shop.profiles(args.contacts, now=now))
        steps = (
            ("first half", table.slice(0, half)),
            ("second half", table.slice(half)),
            ("all again", table),
        )
        for label, part in steps:
            _built.update(count=0, s=0.0)
            t0 = time.perf_counter()
            r = st.ingest_events(part)
            took = time.perf_counter() - t0
            print(
                f"{label:>11}: {part.num_rows:,} events in {took:6.2f} s "
                f"(accepted {r.accepted:,}, duplicates {r.duplicates:,}); "
                f"{_built['count']} filters built over ids in {_built['s']:.2f} s",
                flush=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
