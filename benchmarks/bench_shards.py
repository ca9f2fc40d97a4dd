"""A sharded node against a plain one on one machine: the same shop data
ingested into each (profiles, then the events in batches of a million), and
two segments evaluated (the best of five, warm), with their members compared.

    python -m benchmarks.bench_shards --events 3000000 --contacts 200000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from audience.demo import shop
from audience.demo.run import EXAMPLES, seed_segments
from audience.dsl.formatter import format_text
from audience.runtime.node import Node, ShardedNode

SEGMENTS = [format_text(seed_segments()[0]), "did purchased at least 2 times in last 90 days"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--contacts", type=int, default=50_000)
    ap.add_argument("--shards", type=int, nargs="*", default=[1, 2, 4])
    args = ap.parse_args()
    now = shop.DEFAULT_NOW
    chunks = list(shop.events(args.events, args.contacts, now=now))
    profiles = shop.profiles(args.contacts, now=now)
    root = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    want: list[list[str]] = []
    try:
        for count in [0, *args.shards]:
            t0 = time.perf_counter()
            schema = EXAMPLES / "maison.toml"
            st: Node | ShardedNode
            if count:
                st = ShardedNode.init(root / f"s{count}", schema, shards=count)
            else:
                st = Node.init(root / "plain", schema)
            st.ingest_profiles(profiles)
            for chunk in chunks:
                st.ingest_events(chunk)
            ingest_s = time.perf_counter() - t0
            segs = [st.compile(text) for text in SEGMENTS]
            got = [sorted(seg.evaluate(as_of=now).ids()) for seg in segs]
            best = min(_timed(segs, now) for _ in range(5))
            if not want:
                want = got
            same = "same members" if got == want else "MEMBERS DIFFER"
            print(
                f"{'plain' if not count else f'{count} shards':>9}: ingest {ingest_s:6.2f} s, "
                f"{len(SEGMENTS)} segments {best * 1000:6.1f} ms, "
                f"{'/'.join(str(len(g)) for g in got)} members ({same})",
                flush=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _timed(segs: list[Any], now: Any) -> float:
    t0 = time.perf_counter()
    for seg in segs:
        seg.evaluate(as_of=now)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
