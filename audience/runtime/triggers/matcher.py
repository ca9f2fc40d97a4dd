"""Which triggers an ingest's events fire: ``on E where P``, then ``if C``.

``on E where P`` is lowered by the segment compiler into the same row filter a
``did E where P`` reads, and evaluated by the same predicate code
(audience.compiler.predicates) over the batch's rows of each event type: one
vectorised pass per trigger and type, and exactly SPEC 3.3's semantics
(missing values, profile.x, lists, case-sensitive strings).

``if C`` is compiled like a segment and evaluated only for the event's contact,
as of the event's time, over the snapshot that already holds the event
(``CompiledSegment.evaluate_contacts``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from audience.compiler import plan as p
from audience.compiler.context import EvalContext
from audience.compiler.lower import Lowering
from audience.compiler.predicates import event_mask
from audience.compiler.strings import LutCache
from audience.dsl.ast import Segment, Trigger
from audience.runtime.evaluate import CompiledSegment, compile_cached
from audience.runtime.snapshot import Partition, dictionary_key
from audience.runtime.triggers.batch import EventBatch, take_rows
from audience.runtime.triggers.definitions import SavedTrigger
from audience.schema import Schema

SegmentResolver = Callable[[str], Segment | None]


@dataclass(frozen=True)
class CompiledTrigger:
    saved: SavedTrigger
    trigger: Trigger
    types: tuple[str, ...] | None  # None: any event type
    pred: p.PredNode | None
    relative: bool  # the predicate reads "now" (ts in last D...): decided per event
    cond: CompiledSegment | None

    @property
    def name(self) -> str:
        return self.saved.name

    @property
    def version(self) -> int:
        return self.saved.version


def _reads_now(pred: p.PredNode | None) -> bool:
    if pred is None:
        return False
    if isinstance(pred, p.PAnd | p.POr):
        return any(_reads_now(c) for c in pred.children)
    if isinstance(pred, p.PNot):
        return _reads_now(pred.child)
    test = pred.test
    return isinstance(test, p.TimeTest) and any(ref.kind != "abs" for _, ref in test.atoms)


def compile_trigger(
    saved: SavedTrigger, trigger: Trigger, schema: Schema, resolver: SegmentResolver | None
) -> CompiledTrigger:
    """Lower ``on E where P`` and compile ``if C`` (raises DslError)."""
    tz = trigger.tz_name
    flt = Lowering(schema, tz, resolver).row_filter(trigger.events, trigger.where, None)
    cond = None
    if trigger.condition is not None:
        cond = compile_cached(trigger.condition, schema, timezone=tz, segment_resolver=resolver)
    return CompiledTrigger(saved, trigger, flt.types, flt.pred, _reads_now(flt.pred), cond)


@dataclass(frozen=True)
class Match:
    trigger: CompiledTrigger
    row: int  # in the batch


def _eq_key(pred: p.PredNode | None) -> tuple[str, str] | None:
    """``(property, value)`` of a top-level ``property = "value"`` conjunct on a
    string event property (preferring one other than ``context``), or None."""
    if pred is None:
        return None
    leaves = pred.children if isinstance(pred, p.PAnd) else (pred,)
    found = []
    for c in leaves:
        if (
            isinstance(c, p.PLeaf)
            and c.field.scope == "event"
            and c.field.kind == "string"
            and c.field.name not in ("id", "contact_id", "type")
            and isinstance(c.test, p.StrTest)
            and c.test.op == "="
            and len(c.test.values) == 1
        ):
            found.append((c.field.name, c.test.values[0]))
    found.sort(key=lambda kv: kv[0] == "context")
    return found[0] if found else None


class TriggerSet:
    """Triggers indexed by the event types that fire them, and within a type by
    the value of a ``property = "value"`` their ``where`` requires (an alpha
    index): an event is tested only against the triggers its value selects."""

    def __init__(self, triggers: Iterable[CompiledTrigger]) -> None:
        self.triggers = list(triggers)
        self.plain: dict[str | None, list[CompiledTrigger]] = defaultdict(list)
        self.keyed: dict[str, dict[str, dict[str, list[CompiledTrigger]]]] = defaultdict(dict)
        for t in self.triggers:
            key = _eq_key(t.pred)
            for name in t.types if t.types is not None else (None,):
                if key is None or name is None:
                    self.plain[name].append(t)
                else:
                    by_value = self.keyed[name].setdefault(key[0], {})
                    by_value.setdefault(key[1], []).append(t)

    def __len__(self) -> int:
        return len(self.triggers)

    def match(self, batch: EventBatch, luts: LutCache) -> list[Match]:
        """Every (trigger, event) whose ``on ... where`` holds, in (ts, row) order
        (``if`` and the options are decided later, per match)."""
        snap = batch.snapshot
        part = batch.match_part
        ctx = EvalContext(batch.match_snapshot, part.max_ts, luts)
        found: list[tuple[int, int, str, CompiledTrigger]] = []

        def add(t: CompiledTrigger, rows: np.ndarray) -> None:
            found.extend((batch.ts(r), r, t.name, t) for r in rows.tolist())

        names = snap.event_types.values
        for code, (a, b) in batch.slices.items():
            name = names[code]
            for t in (*self.plain.get(name, ()), *self.plain.get(None, ())):
                add(t, _rows(t, part, ctx, luts, a, b, np.arange(a, b)))
            for prop, by_value in self.keyed.get(name, {}).items():
                for rows, triggers in _groups(batch, prop, by_value, a, b):
                    sub = take_rows(part, rows)
                    for t in triggers:
                        add(t, _rows(t, sub, ctx, luts, 0, len(rows), rows))
        found.sort(key=lambda x: (x[0], x[1], x[2]))
        return [Match(t, r) for _, r, _, t in found]


def _groups(
    batch: EventBatch, prop: str, by_value: dict[str, list[CompiledTrigger]], a: int, b: int
) -> Iterator[tuple[np.ndarray, list[CompiledTrigger]]]:
    """(rows, triggers) for each value of ``prop`` in rows [a, b) that some trigger requires."""
    col = batch.part.columns.get(prop)
    d = batch.snapshot.dictionaries.get(dictionary_key("event", prop))
    if col is None or d is None:
        return
    codes = col.values[a:b]
    valid = None if col.valid is None else col.valid[a:b]
    present = codes if valid is None else codes[valid]
    for c in np.unique(present).tolist():
        triggers = by_value.get(d.values[c])
        if triggers:
            hit = codes == c
            if valid is not None:
                hit &= valid
            yield a + np.flatnonzero(hit), triggers


def _rows(
    t: CompiledTrigger,
    part: Partition,
    ctx: EvalContext,
    luts: LutCache,
    a: int,
    b: int,
    rows: np.ndarray,
) -> np.ndarray:
    """``rows`` (the batch rows of part's [a, b)) that pass the trigger's ``where``."""
    if t.pred is None:
        return rows
    if not t.relative:
        out: np.ndarray = rows[event_mask(ctx, t.pred, part, a, b)]
        return out
    # "now" is each event's own time: one small evaluation per event
    keep = [
        i
        for i in range(a, b)
        if event_mask(EvalContext(ctx.snapshot, int(part.ts[i]), luts), t.pred, part, i, i + 1)[0]
    ]
    return rows[np.asarray(keep, dtype=np.int64) - a]


def condition_holds(matches: list[Match], batch: EventBatch) -> list[bool]:
    """``if C`` of each match, for its contact as of its event's time (True
    without ``if``).  Matches of one trigger at one time are evaluated together."""
    out = [True] * len(matches)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k, m in enumerate(matches):
        if m.trigger.cond is not None:
            groups[(id(m.trigger), batch.ts(m.row))].append(k)
    for (_, ts), ks in groups.items():
        cond = matches[ks[0]].trigger.cond
        assert cond is not None
        contacts = np.array([batch.contact(matches[k].row) for k in ks], dtype=np.int64)
        hits = cond.evaluate_contacts(batch.snapshot, contacts, ts)
        for k, hit in zip(ks, hits.tolist(), strict=True):
            out[k] = bool(hit)
    return out
