"""The benchmark data: the Maison shop (audience.demo.shop) written once to Parquet.

Datasets are cached under ``benchmarks/.data/`` keyed by size, seed and shape,
so a run after the first only reads files.  Contacts are in proportion to
events, in one of two shapes of shop:

- ``shop``: one contact per 60 events (few contacts with many events each),
  string contact ids, every event with an id;
- ``wide``: one contact per 4 events (millions of contacts with few events
  each), int64 contact ids, and no event id column (a file exported from a
  warehouse, not from a tracker).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from audience.demo import shop

DATA_DIR = Path(__file__).resolve().parent.parent / ".data"
EVENTS_PER_CONTACT = {"shop": 60, "wide": 4}
SHAPES = tuple(EVENTS_PER_CONTACT)
DEFAULT_SEED = 42
# A row group per million events: DuckDB zone maps and our partitions both
# skip by time slice, so the files keep the generator's time order.
ROW_GROUP = 1_000_000

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_size(text: str) -> int:
    """``"1M"`` -> 1_000_000, ``"20k"`` -> 20_000, ``"5000"`` -> 5000."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (write e.g. 20k, 1M, 10M)")
    mult = {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def size_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


@dataclass(frozen=True)
class Dataset:
    n_events: int
    n_contacts: int
    seed: int
    profile_gap: int
    root: Path
    shape: str = "shop"

    @property
    def events(self) -> Path:
        return self.root / "events.parquet"

    @property
    def profiles(self) -> Path:
        return self.root / "profiles.parquet"

    @property
    def label(self) -> str:
        suffix = "" if self.shape == "shop" else f"-{self.shape}"
        return size_label(self.n_events) + suffix


def contacts_for(n_events: int, shape: str = "shop") -> int:
    return max(100, n_events // EVENTS_PER_CONTACT[shape])


def _int_ids(table: pa.Table) -> pa.Table:
    """``contact_id`` ``c0001234`` -> int64 1234 (the shop's ids are all so)."""
    i = table.schema.get_field_index("contact_id")
    ids = pc.cast(pc.utf8_slice_codeunits(table.column(i), 1), pa.int64())
    return table.set_column(i, "contact_id", ids)


def _shaped(table: pa.Table, shape: str) -> pa.Table:
    if shape == "wide":
        table = _int_ids(table)
        if "id" in table.column_names:
            table = table.drop_columns(["id"])
    return table


def dataset(
    n_events: int,
    seed: int = DEFAULT_SEED,
    data_dir: Path = DATA_DIR,
    profile_gap: int = 0,
    shape: str = "shop",
) -> Dataset:
    """The shop with ``n_events`` events as Parquet, generated on first use.

    ``profile_gap`` k > 0 drops every k-th profile, so that some contacts are
    known only through their events (the tests use it to exercise the universe
    of SPEC 3.2); the benchmark keeps every profile, as the shop makes them.
    """
    if shape not in EVENTS_PER_CONTACT:
        raise ValueError(f"unknown shape {shape!r}: use one of {', '.join(SHAPES)}")
    n_contacts = contacts_for(n_events, shape)
    gap = f"-gap{profile_gap}" if profile_gap else ""
    wide = "" if shape == "shop" else f"-{shape}"
    root = data_dir / f"shop-{n_events}-seed{seed}{gap}{wide}"
    ds = Dataset(n_events, n_contacts, seed, profile_gap, root, shape)
    if ds.events.exists() and ds.profiles.exists():
        return ds
    data_dir.mkdir(parents=True, exist_ok=True)
    ignore = data_dir / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# generated benchmark data\n*\n")
    # Written aside and renamed, so an interrupted run never leaves half a dataset.
    tmp = data_dir / f".tmp-{root.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    profiles = shop.profiles(n_contacts, seed=seed)
    if profile_gap:
        keep = np.arange(n_contacts) % profile_gap != 0
        profiles = profiles.filter(pa.array(keep))
    pq.write_table(_shaped(profiles, shape), tmp / "profiles.parquet")
    writer: pq.ParquetWriter | None = None
    try:
        for raw in shop.events(n_events, n_contacts, seed=seed, chunk=ROW_GROUP):
            chunk = _shaped(raw, shape)
            if writer is None:
                writer = pq.ParquetWriter(tmp / "events.parquet", chunk.schema)
            writer.write_table(chunk, row_group_size=ROW_GROUP)
    finally:
        if writer is not None:
            writer.close()
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return ds
