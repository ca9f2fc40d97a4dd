"""Polars in its strongest honest configuration for these queries.

In-memory DataFrames read from the shop's Parquet files, low-cardinality
strings as ``Enum`` (categories known at load), the same dense integer
contact key as the other engines, events in time order with ``ts`` flagged
sorted, lazy queries; the thread count comes from ``POLARS_MAX_THREADS``,
which must be set before polars is imported (the runner starts a process per
engine with it set).  Loading is timed apart from the queries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa

from benchmarks.peers.duck import EVENT_ENUMS, PROFILE_ENUMS
from benchmarks.peers.workloads import Frames, Times, Workload


def _enums(src: pl.LazyFrame, names: tuple[str, ...]) -> list[pl.Expr]:
    """Casts to ``Enum`` of each column's sorted distinct values (one scan)."""
    present = [n for n in names if n in src.collect_schema().names()]
    distinct = src.select([pl.col(n).drop_nulls().unique().implode() for n in present]).collect()
    return [pl.col(n).cast(pl.Enum(sorted(distinct[n][0].to_list()))) for n in present]


def _key(ids: pl.Series) -> pl.Expr:
    """``contact_id`` -> its index in the sorted ``ids`` (the dense key),
    without a join: for strings, the physical code of an Enum is the index of
    its category; integer ids are mapped by value."""
    col = pl.col("contact_id")
    if ids.dtype == pl.String:
        return col.cast(pl.Enum(ids.to_list())).to_physical().cast(pl.Int32).alias("cid")
    keys = pl.Series(range(len(ids)), dtype=pl.Int32)
    return col.replace_strict(ids, keys, return_dtype=pl.Int32).alias("cid")


class PolarsEngine:
    name = "polars"

    def __init__(self) -> None:
        self.frames: Frames | None = None
        self._ids = pl.DataFrame()  # cid -> contact_id

    def load(self, events: Path, profiles: Path) -> None:
        ev, pr = pl.scan_parquet(events), pl.scan_parquet(profiles)
        # Lazy end to end, so that no string copy of the table is ever whole.
        first = ev.group_by("contact_id").agg(pl.col("ts").min().alias("first_ts"))
        contacts = (
            pr.select("contact_id", pl.lit(True).alias("has_profile"))
            .join(first, on="contact_id", how="full", coalesce=True)
            .with_columns(pl.col("has_profile").fill_null(False))
            .sort("contact_id")
            .collect()
        )
        ids = contacts["contact_id"]
        contacts = contacts.with_columns(pl.int_range(pl.len(), dtype=pl.Int32).alias("cid"))
        events_df = (
            ev.with_columns(_key(ids), *_enums(ev, EVENT_ENUMS))
            .select("cid", pl.exclude("cid", "contact_id"))
            .collect()
        )
        # The shop writes events in time order; a sort here would hide a broken file.
        if not events_df["ts"].is_sorted():
            raise ValueError(f"{events}: events are not in time order")
        events_df = events_df.with_columns(pl.col("ts").set_sorted())
        profiles_df = (
            pr.with_columns(_key(ids), *_enums(pr, PROFILE_ENUMS))
            .select("cid", pl.exclude("cid", "contact_id"))
            .sort("cid")
            .collect()
        )
        self.frames = Frames(
            events_df, profiles_df, contacts.select("cid", "has_profile", "first_ts")
        )
        self._ids = contacts.select("cid", "contact_id")

    def data_bytes(self) -> int:
        """The frames' own size (Polars' estimate)."""
        assert self.frames is not None
        f = self.frames
        return sum(int(d.estimated_size()) for d in (f.events, f.profiles, f.contacts))

    def run(self, query: pl.LazyFrame) -> pa.Table:
        """The audience's contact ids as an Arrow table (the whole answer a
        user gets: the query's keys joined back to their ids)."""
        ids = query.join(self._ids.lazy(), on="cid").select("contact_id")
        return ids.collect().to_arrow()

    def prepare(self, w: Workload, t: Times) -> Callable[[], pa.Table]:
        frames = self.frames
        assert frames is not None, "load first"
        # The lazy plan is built and optimised by each run, as an ad-hoc query is.
        return lambda: self.run(w.polars(frames, t))

    def ids(self, table: pa.Table) -> set[str]:
        return {str(x) for x in table.column(0).to_pylist()}
