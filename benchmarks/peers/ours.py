"""Our engine behind the same small interface as the peers.

The store is built in memory from the same Parquet files
(``Store.from_arrow``), its snapshot taken once at load.  A workload is
parsed, checked and compiled once (``prepare``, as ``store.compile`` caches by
text); a run is ``CompiledSegment.evaluate`` over the snapshot.  The other
engines plan their query in each run; our compile time is reported apart
(``compile_s``) and in the never-seen-text measurement.
"""

from __future__ import annotations

import datetime as dt
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

    def __init__(self, schema_path: Path = SCHEMA_PATH) -> None:
        self.schema = Schema.load(schema_path)
        self.store: Any = None
        self.snapshot: Any = None
        self.compile_s: dict[str, float] = {}

    def load(self, events: Path, profiles: Path) -> None:
        from audience.runtime.store import Store

        self.store = Store.from_arrow(pq.read_table(events), pq.read_table(profiles), self.schema)
        rejected = self.store.rejected(limit=3)
        if rejected:
            raise RuntimeError(f"our store rejected shop rows, e.g. {rejected}")
        self.snapshot = self.store.snapshot()

    def data_bytes(self) -> int:
        """The snapshot's arrays (events, profiles, per-contact columns); the
        dictionaries' Python strings are left out."""
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
        return lambda: seg.evaluate(snap, as_of=at)

    def ids(self, result: Any) -> set[str]:
        return set(result.ids())


def ingest(store_dir: Path, events: Path, profiles: Path) -> int:
    """Our on-disk ingest of the shop's Parquet files; the events stored."""
    from audience.runtime.store import Store

    store = Store.init(store_dir, Schema.load(SCHEMA_PATH))
    store.ingest_profiles(profiles)
    report = store.ingest_events(events)
    n: int = store.snapshot().n_events
    del report
    return n
