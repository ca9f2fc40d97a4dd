"""``CompiledSegment.evaluate_contacts`` (a trigger's ``if`` for a few contacts)
against the full evaluation, on random stores and random programs."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.engine.subset import contact_index, subset_snapshot
from audience.runtime.store.store import Store
from tests.helpers.differential import compile_program
from tests.reference.data import StoreData, stores
from tests.reference.programs import GeneratedProgram, programs


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=stores(max_contacts=8, max_events=60), prog=programs(), pick=st.randoms())
def test_subset_agrees_with_full_evaluation(
    data: StoreData, prog: GeneratedProgram, pick: object
) -> None:
    events, profiles = data.to_arrow()
    snap = Store.from_arrow(events, profiles, data.schema).snapshot()
    seg = compile_program(data, prog)
    full = seg.evaluate(snap, data.now).mask
    n = snap.n_contacts
    if n == 0:
        return
    rng = np.random.default_rng(abs(hash(repr(pick))) % 2**32)
    for k in (1, max(1, n // 2), n):
        chosen = rng.choice(n, size=k, replace=False)
        got = seg.evaluate_contacts(snap, chosen, data.now)
        assert got.tolist() == full[chosen].tolist(), seg.plan_text


def test_contact_index_finds_each_contacts_rows_in_ts_order() -> None:
    rng = np.random.default_rng(1)
    import pyarrow as pa

    from audience.schema import Schema

    schema = Schema.from_dict({"profile": {}, "events": {"e": {"x": "int"}}})
    n = 500
    ts = np.sort(rng.integers(0, 10_000, n))
    contacts = [f"c{i}" for i in rng.integers(0, 20, n)]
    events = pa.table(
        {
            "contact_id": contacts,
            "type": ["e"] * n,
            "ts": ts,
            "x": rng.integers(0, 5, n),
        }
    )
    snap = Store.from_arrow(events, None, schema).snapshot()
    part = snap.partitions[0]
    index = contact_index(part)
    assert contact_index(part) is index  # cached per partition
    for c in range(snap.n_contacts):
        rows = index.rows(np.array([c], dtype=np.int32))
        assert np.array_equal(rows, np.flatnonzero(part.contact == c))
    sub = subset_snapshot(snap, np.array([2, 5], dtype=np.int32))
    assert sub.contact_ids == [snap.contact_ids[2], snap.contact_ids[5]]
    got = sum(len(p) for p in sub.partitions)
    assert got == int(np.count_nonzero((part.contact == 2) | (part.contact == 5)))
