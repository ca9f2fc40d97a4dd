"""``on E where P`` through the trigger index against the reference evaluator:
random stores, random predicates, many triggers matched at once."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.dsl.ast import (
    AgoCompare,
    Compare,
    Count,
    Did,
    EventSel,
    Field,
    Pred,
    PredAnd,
    PredNot,
    PredOr,
    StringLit,
    Trigger,
)
from audience.engine.strings import LutCache
from audience.runtime.store.store import Store
from audience.runtime.triggers.batch import EventBatch
from audience.runtime.triggers.definitions import SavedTrigger
from audience.runtime.triggers.matcher import TriggerSet, compile_trigger
from audience.schema import CONTEXTS
from tests.reference.data import StoreData, stores
from tests.reference.programs import event_sel, predicate
from tests.reference.vocab import strings_for


def _reads_now(pred: Pred) -> bool:
    if isinstance(pred, PredAnd | PredOr):
        return any(_reads_now(c) for c in pred.operands)
    if isinstance(pred, PredNot):
        return _reads_now(pred.operand)
    return isinstance(pred, AgoCompare)


@st.composite
def trigger_specs(draw: Any, schema: Any) -> tuple[EventSel, Pred | None]:
    sel = event_sel(draw, schema)
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return sel, None
    pred = predicate(draw, schema, sel, "UTC")
    if kind in (1, 3):  # a keyed conjunct, so the alpha index is used
        ctx = draw(st.sampled_from(CONTEXTS[:3]))
        pred = PredAnd((Compare(Field("event", ("context",)), "=", StringLit(ctx)), pred))
    if kind in (2, 3):  # a profile equality: the index's second level
        strings = [k for k, t in schema.profile.items() if t == "string"]
        if strings:
            prop = draw(st.sampled_from(strings))
            value = draw(st.sampled_from(strings_for(prop)))
            pred = PredAnd((Compare(Field("profile", (prop,)), "=", StringLit(value)), pred))
    return sel, pred


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=stores(max_contacts=8, max_events=60), draw=st.data())
def test_where_matches_as_the_reference(data: StoreData, draw: Any) -> None:
    specs = draw.draw(st.lists(trigger_specs(data.schema), min_size=1, max_size=6))
    specs = [(s, p) for s, p in specs if p is None or not _reads_now(p)]
    events, profiles = data.to_arrow()
    snap = Store.from_arrow(events, profiles, data.schema).snapshot()
    if not snap.partitions:
        return
    compiled = []
    for i, (sel, pred) in enumerate(specs):
        saved = SavedTrigger(f"t{i}", "", 1, True, None, None, "", "")
        trig = Trigger(f"t{i}", sel, pred, None, ())
        compiled.append(compile_trigger(saved, trig, data.schema, None))
    batch = EventBatch.from_partitions(list(snap.partitions), snap)
    now_ms = int(data.now.timestamp() * 1000)
    got: dict[str, Counter[str]] = {f"t{i}": Counter() for i in range(len(specs))}
    for m in TriggerSet(compiled).match(batch, LutCache()):
        if batch.ts(m.row) <= now_ms:
            got[m.trigger.name][batch.contact_id(m.row)] += 1
    for i, (sel, pred) in enumerate(specs):
        counts = got[f"t{i}"]
        want_any = data.evaluate(Did(sel, pred, Count("at_least", 1)))
        assert set(counts) == want_any, (sel, pred)
        for n in set(counts.values()):
            want = data.evaluate(Did(sel, pred, Count("exactly", n)))
            assert {c for c, k in counts.items() if k == n} == want, (sel, pred, n)
