"""Our engine behind the same small interface as the peers.

The store is loaded as a user would: the same Parquet files are ingested
into an on-disk store in a temporary directory (deleted with the engine),
which is then opened afresh, so the snapshot's partitions are memory-mapped
and the load needs no more memory than an ingest (``Store.from_arrow`` holds
every event in RAM, too much at 50M events).  ``in_memory=True`` keeps the
old in-memory load.  The snapshot is taken once at load.  A workload is
parsed, checked and compiled once (``prepare``, as ``store.compile`` caches by
text); a run is ``CompiledSegment.evaluate`` over the snapshot and its
``to_arrow()``, the members' ids as an Arrow table (the peers' runs join their
keys back to the ids too).  The other
engines plan their query in each run; our compile time is reported apart
(``compile_s``) and in the never-seen-text measurement.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from audience.schema import Schema
from benchmarks.peers.workloads import Times, Workload

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "audience" / "examples" / "maison.toml"


def unavailable() -> str | None:
    """Why our engine cannot run here (None: it can)."""
    try:
        from audience.dsl.parser import parse_condition  # noqa: F401
        from audience.runtime.evaluate import compile_condition  # noqa: F401
        from audience.runtime.store import Store  # noqa: F401
    except ImportError as exc:
        return f"not importable: {exc}"
    return None


def compile_text(text: str, schema: Schema) -> Any:
    """Parse, check and compile DSL text: a bare condition or one segment."""
    from audience.dsl.ast import Segment
    from audience.dsl.check import check, check_condition
    from audience.dsl.errors import DslError
    from audience.dsl.parser import parse, parse_condition
    from audience.runtime.evaluate import compile_condition

    if text.lstrip().startswith("segment"):
        program = parse(text)
        diags = check(program, schema)
        seg = program.definitions[0]
        assert isinstance(seg, Segment)
        cond, tz = seg.cond, seg.tz_name
    else:
        cond, tz = parse_condition(text), "UTC"
        diags = check_condition(cond, schema, timezone=tz)
    if diags:
        raise DslError(diags, text, "<workload>")
    return compile_condition(cond, schema, timezone=tz)


def now_ms(t: Times) -> int:
    return int(t.now.astimezone(dt.UTC).timestamp() * 1000)


class OursEngine:
    name = "ours"

    def __init__(self, schema_path: Path = SCHEMA_PATH, *, in_memory: bool = False) -> None:
        self.schema_path = schema_path
        self.schema = Schema.load(schema_path)
        self.in_memory = in_memory
        self.store: Any = None
        self.snapshot: Any = None
        self.compile_s: dict[str, float] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def load(self, events: Path, profiles: Path) -> None:
        from audience.runtime.store import Store

        if self.in_memory:
            self.store = Store.from_arrow(
                pq.read_table(events), pq.read_table(profiles), self.schema
            )
        else:
            self.close()
            self._tmp = tempfile.TemporaryDirectory(prefix="audience-peers-")
            path = Path(self._tmp.name) / "store"
            _ingest(path, events, profiles, self.schema_path)
            self.store = Store.open(path)  # anew: the partitions memory-mapped
        rejected = self.store.rejected(limit=3)
        if rejected:
            raise RuntimeError(f"our store rejected shop rows, e.g. {rejected}")
        self.snapshot = self.store.snapshot()

    def close(self) -> None:
        """Drop the store and delete its temporary directory, if any."""
        self.store = self.snapshot = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def data_bytes(self) -> int:
        """The snapshot's arrays (events, profiles, per-contact columns;
        memory-mapped when loaded from disk); the dictionaries' Python strings
        are left out."""
        snap = self.snapshot
        arrays = [snap.has_profile, snap.first_event_ts]
        for cols in [snap.profile, *(p.columns for p in snap.partitions)]:
            for c in cols.values():
                arrays += [c.values, c.valid, c.offsets]
        for p in snap.partitions:
            arrays += [p.ts, p.contact, p.type]
        return sum(int(a.nbytes) for a in arrays if a is not None)

    def open(self, path: Path) -> None:
        """An on-disk store made by ``ingest``."""
        from audience.runtime.store import Store

        self.store = Store.open(path)
        self.snapshot = self.store.snapshot()

    def prepare(self, w: Workload, t: Times) -> Callable[[], Any]:
        seg = compile_text(w.dsl, self.schema)
        snap, at = self.snapshot, now_ms(t)
        # the whole answer: the members' ids as an Arrow table (Audience.to_arrow)
        return lambda: seg.evaluate(snap, as_of=at).to_arrow()

    def ids(self, table: Any) -> set[str]:
        return {str(x) for x in table.column("contact_id").to_pylist()}


def ingest(store_dir: Path, events: Path, profiles: Path) -> int:
    """Our on-disk ingest of the shop's Parquet files; the events stored."""
    n: int = _ingest(store_dir, events, profiles, SCHEMA_PATH).snapshot().n_events
    return n


def _ingest(store_dir: Path, events: Path, profiles: Path, schema_path: Path) -> Any:
    from audience.runtime.store import Store

    store = Store.init(store_dir, Schema.load(schema_path))
    store.ingest_profiles(profiles)
    store.ingest_events(events)  # read from the file in batches: memory stays bounded
    return store
