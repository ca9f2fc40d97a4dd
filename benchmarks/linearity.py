"""Cost follows the events inside the windows a segment reads, not the store.

``python -m benchmarks.linearity [--events N] [--runs R]`` builds an on-disk
store with N demo-shop events in the last 30 days and times the Red Shoes
segment (a 15-day window) over it; then ingests N more events 60 to 90 days
old (outside every window it reads) and times again; then N more inside the
last 30 days and times again.  Expected: the first doubling of the store
changes nothing (its time partitions are skipped), the second roughly doubles
the time of the window's scan.  Each figure is the median (and the minimum)
of R runs over a freshly opened, memory-mapped store, as a user would open
it, after one untimed run (which pays the first touch of the mapped pages).
On a shared 2-core machine the runs are noisy: compare the minimums too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from audience.demo import shop
from audience.runtime.node import Node
from audience.schema import Schema

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "audience" / "examples" / "maison.toml"
RED_SHOES = """segment "Red Shoes viewed without purchase" {
  rule "Clicked Red shoes" (
    did viewed_product where product_name = "Red Shoes" in last 15 days
  )
  and rule "No purchase in the last 15 days" (
    not did purchased in last 15 days
  )
}
"""
NOW = shop.DEFAULT_NOW


@dataclass(frozen=True)
class Step:
    label: str
    n_events: int  # in the store
    n_in_window: int  # of them, in the last 30 days
    median_ms: float
    times_ms: list[float]
    audience: int
    explain: dict[str, Any]  # of the last run

    @property
    def partitions(self) -> dict[str, int]:
        parts: dict[str, int] = self.explain["partitions"]
        return parts


def events(n: int, n_contacts: int, *, ends_days_ago: int, tag: str, seed: int) -> pa.Table:
    """``n`` shop events over the 30 days ending ``ends_days_ago`` before NOW,
    over the same contacts; event ids carry ``tag`` so that batches never
    collide (the shop numbers every batch's events from 0)."""
    now = NOW - dt.timedelta(days=ends_days_ago)
    table = pa.concat_tables(shop.events(n, n_contacts, days=30, now=now, seed=seed))
    ids = pc.binary_join_element_wise(pa.scalar(tag), table.column("id"), "")
    return table.set_column(table.schema.get_field_index("id"), "id", ids)


def time_segment(path: Path, label: str, runs: int, n_in_window: int) -> Step:
    store = Node.open(path)
    seg = store.compile(RED_SHOES)
    snap = store.snapshot()
    hits = seg.compiled.evaluate(snap, NOW, explain=True)  # warm-up, and the explain
    times = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        again = seg.compiled.evaluate(snap, NOW)
        times.append((time.perf_counter() - t0) * 1000)
        if len(again) != len(hits):
            raise RuntimeError(f"{label}: {len(again)} contacts, first run {len(hits)}")
    assert hits.explain is not None
    return Step(
        label,
        snap.n_events,
        n_in_window,
        statistics.median(times),
        times,
        len(hits),
        hits.explain,
    )


def measure(path: Path, n: int, runs: int = 7, n_contacts: int | None = None) -> list[Step]:
    """The three steps over a new store at ``path`` (which must not exist)."""
    contacts = n_contacts or max(100, n // 20)
    store = Node.init(path, Schema.load(SCHEMA_PATH))
    store.ingest_profiles(shop.profiles(contacts))
    store.ingest_events(events(n, contacts, ends_days_ago=0, tag="in1-", seed=1))
    steps = [time_segment(path, f"{n:,} in the window", runs, n)]
    store.ingest_events(events(n, contacts, ends_days_ago=60, tag="old-", seed=2))
    steps.append(time_segment(path, f"+ {n:,} older than 60 days", runs, n))
    store.ingest_events(events(n, contacts, ends_days_ago=0, tag="in2-", seed=3))
    steps.append(time_segment(path, f"+ {n:,} more in the window", runs, 2 * n))
    return steps


def table(steps: list[Step]) -> str:
    head = (
        f"{'step':<32} {'events':>12} {'in last 30 d':>12} {'partitions read/skipped':>24} "
        f"{'median ms':>10} {'min ms':>8} {'x first':>8}"
    )
    lines = [head, "-" * len(head)]
    for s in steps:
        p = s.partitions
        lines.append(
            f"{s.label:<32} {s.n_events:>12,} {s.n_in_window:>12,} "
            f"{str(p['read']) + ' / ' + str(p['skipped']):>24} "
            f"{s.median_ms:>10.2f} {min(s.times_ms):>8.2f} "
            f"{s.median_ms / steps[0].median_ms:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.linearity", description=__doc__)
    p.add_argument("--events", type=int, default=2_000_000, help="N (default 2,000,000)")
    p.add_argument("--runs", type=int, default=7, help="timed runs per step (>= 7)")
    args = p.parse_args(argv)
    if args.runs < 7:
        p.error("--runs must be at least 7")
    with tempfile.TemporaryDirectory(prefix="audience-linearity-") as tmp:
        steps = measure(Path(tmp) / "store", args.events, args.runs)
    print(f"Red Shoes segment (15-day window), median of {args.runs} runs, as of {NOW:%Y-%m-%d}")
    print(table(steps))


if __name__ == "__main__":
    main()
