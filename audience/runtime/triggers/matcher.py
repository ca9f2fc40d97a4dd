"""Which triggers an ingest's events fire: ``on E where P``, then ``if C``.

``on E where P`` is lowered by the segment compiler into the same row filter a
``did E where P`` reads, and evaluated by the same predicate code
(audience.engine.predicates) over the batch's rows of each event type: one
vectorised pass per trigger and type, and exactly the semantics of docs/language/values.md
(missing values, profile.x, lists, case-sensitive strings).

``if C`` is compiled like a segment and evaluated only for the event's contact,
as of the event's time, over the snapshot that already holds the event
(``CompiledSegment.evaluate_contacts``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from audience.compiler import plan as p
from audience.compiler.lower import Lowering
from audience.dsl.ast import Segment, Trigger
from audience.engine.context import EvalContext
from audience.engine.predicates import event_mask
from audience.engine.strings import LutCache
from audience.runtime.evaluate import CompiledSegment, compile_cached
from audience.runtime.triggers.batch import EventBatch, take_rows
from audience.runtime.triggers.definitions import SavedTrigger
from audience.schema import Schema
from audience.snapshot import Partition, dictionary_key

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


def _eq_keys(pred: p.PredNode | None) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """``(property, value)`` of a top-level ``property = "value"`` conjunct on a
    string event property (preferring one other than ``context``), and of one
    on a string profile property; None where there is none."""
    if pred is None:
        return None, None
    leaves = pred.children if isinstance(pred, p.PAnd) else (pred,)
    found: list[tuple[str, str]] = []
    profile: tuple[str, str] | None = None
    for c in leaves:
        if not (
            isinstance(c, p.PLeaf)
            and c.field.kind == "string"
            and isinstance(c.test, p.StrTest)
            and c.test.op == "="
            and len(c.test.values) == 1
        ):
            continue
        if c.field.scope == "profile":
            profile = profile or (c.field.name, c.test.values[0])
        elif c.field.name not in ("id", "contact_id", "type"):
            found.append((c.field.name, c.test.values[0]))
    found.sort(key=lambda kv: kv[0] == "context")
    return (found[0] if found else None), profile


@dataclass
class _Bucket:
    """Triggers that an event reaches by its type (and event value): ``plain``
    ones are tested on it; the others only when the event's contact has the
    profile value their ``where`` requires."""

    plain: list[CompiledTrigger] = field(default_factory=list)
    by_profile: dict[str, dict[str, list[CompiledTrigger]]] = field(default_factory=dict)

    def add(self, t: CompiledTrigger, profile: tuple[str, str] | None) -> None:
        if profile is None:
            self.plain.append(t)
        else:
            self.by_profile.setdefault(profile[0], {}).setdefault(profile[1], []).append(t)


class TriggerSet:
    """Triggers indexed by the event types that fire them, within a type by the
    value of a ``property = "value"`` their ``where`` requires, and then by the
    value of a ``profile.p = "value"`` it requires (an alpha index): an event
    is tested only against the triggers its values and its contact's select.
    Selected triggers still evaluate their whole ``where``; the index only
    leaves out those an equality they require already rules out."""

    def __init__(self, triggers: Iterable[CompiledTrigger]) -> None:
        self.triggers = list(triggers)
        self.plain: dict[str | None, _Bucket] = defaultdict(_Bucket)
        self.keyed: dict[str, dict[str, dict[str, _Bucket]]] = defaultdict(dict)
        for t in self.triggers:
            key, profile = _eq_keys(t.pred)
            for name in t.types if t.types is not None else (None,):
                if key is None or name is None:
                    self.plain[name].add(t, profile)
                else:
                    by_value = self.keyed[name].setdefault(key[0], {})
                    by_value.setdefault(key[1], _Bucket()).add(t, profile)

    def __len__(self) -> int:
        return len(self.triggers)

    def match(self, batch: EventBatch, luts: LutCache) -> list[Match]:
        """Every (trigger, event) whose ``on ... where`` holds, in (ts, row) order
        (``if`` and the options are decided later, per match)."""
        part = batch.match_part
        ctx = EvalContext(batch.match_snapshot, part.max_ts, luts)
        found: list[tuple[int, int, str, CompiledTrigger]] = []

        def run(triggers: list[CompiledTrigger], rows: np.ndarray, a: int, b: int) -> None:
            """Test ``triggers`` on ``rows`` (the slice [a, b) when b > a)."""
            if b > a:
                sub, lo, hi = part, a, b
            else:
                sub, lo, hi = take_rows(part, rows), 0, len(rows)
            for t in triggers:
                hits = _rows(t, sub, ctx, luts, lo, hi, rows)
                found.extend((batch.ts(r), r, t.name, t) for r in hits.tolist())

        def run_bucket(bucket: _Bucket, rows: np.ndarray, a: int = 0, b: int = 0) -> None:
            if bucket.plain:
                run(bucket.plain, rows, a, b)
            for prop, by_value in bucket.by_profile.items():
                for sel, triggers in _profile_groups(batch, prop, by_value, rows):
                    run(triggers, sel, 0, 0)

        names = batch.snapshot.event_types.values
        for code, (a, b) in batch.slices.items():
            name = names[code]
            every = np.arange(a, b)
            for bucket in (self.plain.get(name), self.plain.get(None)):
                if bucket is not None:
                    run_bucket(bucket, every, a, b)
            for prop, by_value in self.keyed.get(name, {}).items():
                for rows, bucket in _groups(batch, prop, by_value, a, b):
                    run_bucket(bucket, rows)
        found.sort(key=lambda x: (x[0], x[1], x[2]))
        return [Match(t, r) for _, r, _, t in found]


def _groups(
    batch: EventBatch, prop: str, by_value: dict[str, _Bucket], a: int, b: int
) -> Iterator[tuple[np.ndarray, _Bucket]]:
    """(rows, bucket) for each value of ``prop`` in rows [a, b) that some trigger requires."""
    col = batch.part.columns.get(prop)
    d = batch.snapshot.dictionaries.get(dictionary_key("event", prop))
    if col is None or d is None:
        return
    codes = col.values[a:b]
    valid = None if col.valid is None else col.valid[a:b]
    present = codes if valid is None else codes[valid]
    for c in np.unique(present).tolist():
        bucket = by_value.get(d.values[c])
        if bucket is not None:
            hit = codes == c
            if valid is not None:
                hit &= valid
            yield a + np.flatnonzero(hit), bucket


def _profile_groups(
    batch: EventBatch, prop: str, by_value: dict[str, list[CompiledTrigger]], rows: np.ndarray
) -> Iterator[tuple[np.ndarray, list[CompiledTrigger]]]:
    """(rows, triggers) for each value of ``profile.prop`` among the contacts of
    ``rows`` that some trigger requires (a contact without it matches none)."""
    snap = batch.snapshot
    col = snap.profile.get(prop)
    d = snap.dictionaries.get(dictionary_key("profile", prop))
    if col is None or d is None or col.kind != "code":
        return
    keep = rows[batch.part.contact[rows] < len(col.values)]  # in case the column is shorter
    contacts = batch.part.contact[keep]
    codes = col.values[contacts]
    if col.valid is not None:
        ok = col.valid[contacts]
        codes, keep = codes[ok], keep[ok]
    for c in np.unique(codes).tolist():
        triggers = by_value.get(d.values[c])
        if triggers:
            yield keep[codes == c], triggers


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
