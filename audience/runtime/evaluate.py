"""Compile a checked condition once; evaluate it over any Snapshot at any time.

``compile_condition`` lowers the AST to a logical plan, emits the physical
program and runs the passes; ``CompiledSegment.evaluate`` resolves the
windows for ``now`` and runs the program's kernels.  Compiling never
generates code: every kernel is generic and already compiled (and cached on
disk by numba), so a never-seen segment text runs without any JIT work.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa

from audience.compiler.lower import compile_error, lower
from audience.compiler.passes.pipeline import run_passes
from audience.compiler.physical import Program, ScanStep, SeqStep, emit, program_text
from audience.dsl.ast import And, Cond, Or, Rule, Segment
from audience.engine.context import EvalContext
from audience.engine.execute import run_program
from audience.engine.kernels.masks import indexes
from audience.engine.strings import LutCache
from audience.engine.subset import subset_snapshot
from audience.schema import Schema
from audience.snapshot import Snapshot
from audience.timecalc import iso_utc, to_ms

SegmentResolver = Callable[[str], Segment | None]
AsOf = dt.datetime | str | int | None


@dataclass(repr=False)
class Audience:
    """The contacts of a segment at one time: ``mask`` is a bool per dense contact."""

    mask: np.ndarray
    contact_ids: Any  # Sequence[str], the snapshot's dense index -> id
    now_ms: int
    explain: dict[str, Any] | None = None
    _idx: np.ndarray | None = field(default=None, repr=False)
    # the contacts it was taken from, when ``mask`` covers only the members
    # (a cluster's audience: the shards send their members back, not masks)
    contacts: int | None = None

    def __len__(self) -> int:
        if self._idx is not None:
            return len(self._idx)
        return int(np.count_nonzero(self.mask))

    def indexes(self) -> np.ndarray:
        if self._idx is None:
            m = self.mask
            ok = m.dtype == np.bool_ and m.ndim == 1
            self._idx = indexes(m) if ok else np.flatnonzero(m)
        return self._idx

    def id_array(self, start: int = 0, stop: int | None = None) -> pa.Array:
        """The ids of members ``start`` to ``stop`` (in dense-index order) as an
        Arrow string array, taken from the store's contact ids (no Python
        string per member)."""
        from audience.runtime.ids import member_ids

        return member_ids(self.contact_ids, self.indexes()[start:stop])

    def ids(self) -> list[str]:
        out: list[str] = self.id_array().to_pylist()
        return out

    def to_arrow(self, *, dictionary: bool = True) -> pa.Table:
        """The members' ids as a table of one column, ``contact_id``.  It is
        dictionary-encoded: its dictionary is the store's contact ids, its
        indices the members' dense indexes, so a million members cost no
        copy of their ids (``.cast(pa.string())`` decodes it).  With
        ``dictionary=False``, plain strings."""
        from audience.runtime.ids import member_ids

        col = member_ids(self.contact_ids, self.indexes(), dictionary=dictionary)
        return pa.table({"contact_id": col})

    def __repr__(self) -> str:
        n = len(self)
        shown = self.id_array(0, _REPR_IDS).to_pylist() if n else []
        more = ", ..." if n > len(shown) else ""
        some = f", ids=[{', '.join(repr(i) for i in shown)}{more}]" if shown else ""
        when = _iso_ms(self.now_ms)
        total = len(self.mask) if self.contacts is None else self.contacts
        return f"<Audience {n:,} of {total:,} contacts as of {when}{some}>"


_REPR_IDS = 3


def _iso_ms(ms: int) -> str:
    return iso_utc(ms)


def parse_as_of(as_of: AsOf, tz: str = "UTC") -> int:
    """Epoch ms of ``as_of``: an aware datetime (naive: read in ``tz``), an ISO
    8601 string (without an offset: read in ``tz``), epoch ms, or None (now)."""
    if as_of is None:
        return time.time_ns() // 1_000_000
    if isinstance(as_of, bool):
        raise TypeError("as_of must be a datetime, an ISO string or epoch milliseconds")
    if isinstance(as_of, int | np.integer):
        return int(as_of)
    if isinstance(as_of, str):
        text = as_of.strip()
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"as_of {as_of!r} is not an ISO 8601 date or time") from None
        as_of = parsed
    if isinstance(as_of, dt.datetime):
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=ZoneInfo(tz))
        return to_ms(as_of)
    if isinstance(as_of, dt.date):
        return to_ms(dt.datetime.combine(as_of, dt.time(0), tzinfo=ZoneInfo(tz)))
    raise TypeError("as_of must be a datetime, an ISO string or epoch milliseconds")


class CompiledSegment:
    """A compiled condition; ``evaluate`` is thread-safe (each call has its own
    state; the lookup-table cache is locked)."""

    def __init__(self, cond: Cond, program: Program, timezone: str, schema_version: str) -> None:
        self.cond = cond
        self.program = program
        self.timezone = timezone
        self.schema_version = schema_version
        self.plan_text: str = program_text(program)
        self._luts = LutCache()
        self._reads_events = any(isinstance(s, ScanStep | SeqStep) for s in program.steps)

    def evaluate(
        self, snapshot: Snapshot, as_of: AsOf = None, *, explain: bool = False
    ) -> Audience:
        now_ms = parse_as_of(as_of, self.timezone)
        t0 = time.perf_counter()
        ctx = EvalContext(snapshot, now_ms, self._luts)
        mask, report = run_program(self.program, ctx, explain=explain)
        if report is not None:
            report["total_ms"] = round((time.perf_counter() - t0) * 1000, 3)
            report["plan"] = self.plan_text
        return Audience(mask, snapshot.contact_ids, now_ms, report)

    def evaluate_contacts(
        self, snapshot: Snapshot, contact_indexes: np.ndarray, as_of: AsOf = None
    ) -> np.ndarray:
        """Whether each of ``contact_indexes`` (dense indexes of ``snapshot``) is
        in the audience as of ``as_of``: the same program run over a snapshot
        holding only those contacts and their events (audience.engine.subset),
        so its cost follows their rows, not the store's size."""
        idx = np.asarray(contact_indexes, dtype=np.int64)
        if len(idx) == 0:
            return np.zeros(0, dtype=np.bool_)
        uniq, back = np.unique(idx, return_inverse=True)
        now_ms = parse_as_of(as_of, self.timezone)
        sub = subset_snapshot(snapshot, uniq, events=self._reads_events, until_ms=now_ms)
        ctx = EvalContext(sub, now_ms, self._luts)
        mask, _ = run_program(self.program, ctx)
        out: np.ndarray = mask[back]
        return out


def _check_zone(timezone: str) -> None:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise compile_error(f"unknown time zone {timezone!r}", code="unknown_timezone") from None


def compile_condition(
    cond: Cond,
    schema: Schema,
    *,
    timezone: str = "UTC",
    segment_resolver: SegmentResolver | None = None,
) -> CompiledSegment:
    """Compile a checked condition.  ``timezone`` is the definition's zone
    (calendar windows, months); ``segment_resolver`` gives the saved segment
    named by ``in segment "X"`` (None: unknown).  Raises ``DslError``."""
    _check_zone(timezone)
    logical = lower(cond, schema, timezone=timezone, resolver=segment_resolver)
    program = _user_operand_texts(run_passes(emit(logical)), cond)
    return CompiledSegment(cond, program, timezone, schema.version)


def _operand_text(cond: Cond) -> str:
    if isinstance(cond, Rule):
        return cond.label
    from audience.dsl.formatter import format_text  # (imported by a compilation, not here)

    return " ".join(format_text(cond).split())


def _user_operand_texts(program: Program, cond: Cond) -> Program:
    """Explain names the top-level operands as the user wrote them (a rule by its
    label), not in the plan's notation."""
    operands = cond.operands if isinstance(cond, And | Or) else (cond,)
    if len(operands) != len(program.operands):
        return program
    texts = tuple(
        (_operand_text(c), sid) for c, (_, sid) in zip(operands, program.operands, strict=True)
    )
    return dataclasses.replace(program, operands=texts)


_CACHE_MAX = 512
# the entry keeps its resolver alive, so an equal id() means the same resolver
_cache: dict[tuple[Cond, str, str, int], tuple[CompiledSegment, object]] = {}
_cache_lock = threading.Lock()


def compile_cached(
    cond: Cond,
    schema: Schema,
    *,
    timezone: str = "UTC",
    segment_resolver: SegmentResolver | None = None,
) -> CompiledSegment:
    """``compile_condition`` memoised by (condition structure, schema version,
    time zone, resolver).  The AST is hashable and span-free, so the same
    condition written with other spacing hits the cache.  With a resolver,
    saved segments are inlined at compile time: pass a new resolver object
    (or call ``clear_compile_cache``) after a saved segment changes."""
    key = (cond, schema.version, timezone, id(segment_resolver))
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[1] is segment_resolver:
        return hit[0]
    compiled = compile_condition(cond, schema, timezone=timezone, segment_resolver=segment_resolver)
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.pop(next(iter(_cache)))
        _cache[key] = (compiled, segment_resolver)
    return compiled


def clear_compile_cache() -> None:
    with _cache_lock:
        _cache.clear()
