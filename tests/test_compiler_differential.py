"""The compiled engine against the plain-Python reference evaluator, on random
stores (through ``Store.from_arrow``) and random programs."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from audience.runtime.evaluate import compile_condition
from audience.runtime.store.store import Store
from tests.reference.data import StoreData, stores
from tests.reference.programs import GeneratedProgram, programs


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=stores(max_contacts=8, max_events=60), prog=programs())
def test_engine_agrees_with_the_reference(data: StoreData, prog: GeneratedProgram) -> None:
    want = data.evaluate_segment(prog.segment, prog.saved)
    events, profiles = data.to_arrow()
    snap = Store.from_arrow(events, profiles, data.schema).snapshot()
    seg = compile_condition(
        prog.segment.cond,
        data.schema,
        timezone=prog.segment.tz_name,
        segment_resolver=prog.saved.get,
    )
    got = set(seg.evaluate(snap, data.now).ids())
    assert got == want, seg.plan_text
