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

import numpy as np
import polars as pl

from benchmarks.peers.duck import EVENT_ENUMS, PROFILE_ENUMS
from benchmarks.peers.workloads import Frames, Times, Workload


def _enums(df: pl.DataFrame, names: tuple[str, ...]) -> list[pl.Expr]:
    out = []
    for n in names:
        if n in df.columns:
            values = df[n].drop_nulls().unique().sort().to_list()
            out.append(pl.col(n).cast(pl.Enum(values)))
    return out


def _keyed(df: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """``contact_id`` replaced by the dense ``cid``, row order kept."""
    joined = df.join(keys, on="contact_id", how="left", maintain_order="left")
    return joined.select("cid", *[c for c in df.columns if c != "contact_id"])


class PolarsEngine:
    name = "polars"

    def __init__(self) -> None:
        self.frames: Frames | None = None
        self._contact_ids: np.ndarray = np.array([], dtype=object)

    def load(self, events: Path, profiles: Path) -> None:
        ev = pl.read_parquet(events)
        pr = pl.read_parquet(profiles)
        first = ev.group_by("contact_id").agg(pl.col("ts").min().alias("first_ts"))
        contacts = (
            pr.select("contact_id")
            .join(first, on="contact_id", how="full", coalesce=True)
            .with_columns(
                pl.col("contact_id").is_in(pr["contact_id"].implode()).alias("has_profile")
            )
            .sort("contact_id")
            .with_row_index("cid")
            .with_columns(pl.col("cid").cast(pl.Int32))
        )
        keys = contacts.select("contact_id", "cid")
        ev = _keyed(ev, keys).with_columns(_enums(ev, EVENT_ENUMS))
        # The shop writes events in time order; a sort here would hide a broken file.
        if not ev["ts"].is_sorted():
            raise ValueError(f"{events}: events are not in time order")
        ev = ev.with_columns(pl.col("ts").set_sorted())
        pr = _keyed(pr, keys).with_columns(_enums(pr, PROFILE_ENUMS))
        self.frames = Frames(ev, pr, contacts.select("cid", "has_profile", "first_ts"))
        self._contact_ids = contacts["contact_id"].to_numpy()

    def run(self, query: pl.LazyFrame) -> np.ndarray:
        out: np.ndarray = query.collect()["cid"].to_numpy()
        return np.asarray(out, dtype=np.int32)

    def prepare(self, w: Workload, t: Times) -> Callable[[], np.ndarray]:
        frames = self.frames
        assert frames is not None, "load first"
        # The lazy plan is built and optimised by each run, as an ad-hoc query is.
        return lambda: self.run(w.polars(frames, t))

    def ids(self, cids: np.ndarray) -> set[str]:
        return {str(x) for x in self._contact_ids[cids]}
