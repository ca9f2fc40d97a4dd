"""The engine against the plain-Python reference on one random store and
program: the body of the differential tests, shared by the test modules that
run it under different engine settings."""

from __future__ import annotations

from audience.runtime.evaluate import CompiledSegment, compile_condition
from audience.runtime.store.store import Store
from tests.reference.data import StoreData
from tests.reference.programs import GeneratedProgram


def compile_program(data: StoreData, prog: GeneratedProgram) -> CompiledSegment:
    """The generated program compiled against the store's schema, its saved
    segments resolvable."""
    return compile_condition(
        prog.segment.cond,
        data.schema,
        timezone=prog.segment.tz_name,
        segment_resolver=prog.saved.get,
    )


def check_engine_against_reference(data: StoreData, prog: GeneratedProgram) -> None:
    want = data.evaluate_segment(prog.segment, prog.saved)
    events, profiles = data.to_arrow()
    snap = Store.from_arrow(events, profiles, data.schema).snapshot()
    seg = compile_program(data, prog)
    got = set(seg.evaluate(snap, data.now).ids())
    assert got == want, seg.plan_text
