"""Small parts of plan runs: grouping contacts by their field values, and the
delivery log's batch check taking Arrow inputs and deciding without recording."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from audience.dsl.ast import DndPolicy
from audience.dsl.parser import parse
from audience.runtime.delivery import DeliveryLog, Policy
from audience.runtime.delivery.members import ADMITTED
from audience.runtime.plans.render import _groups

DAY = 86_400_000
T0 = 1_800_000_000_000


def test_groups_are_equal_exactly_for_equal_values() -> None:
    a = pa.array(["x", "y", "x", None, "x", None, "y"])
    b = pa.array([1, 1, 1, 1, 2, 1, 1])
    group, first = _groups([a, b])
    rows = list(zip(a.to_pylist(), b.to_pylist(), strict=True))
    for i in range(len(rows)):
        for j in range(len(rows)):
            assert (group[i] == group[j]) == (rows[i] == rows[j])
    assert sorted(first.tolist()) == [0, 1, 3, 4]
    assert all(group[f] == g for g, f in enumerate(first.tolist()))
    lists = pa.array([["a"], ["a", "b"], ["a"]])
    group, first = _groups([lists])
    assert group.tolist()[0] == group.tolist()[2] != group.tolist()[1]


def _policy() -> Policy:
    node = parse('dnd "P" {\n max 1 per day\n}').definitions[0]
    assert isinstance(node, DndPolicy)
    return Policy.from_ast(node)


def test_a_dry_batch_decides_as_the_real_one_and_records_nothing() -> None:
    with DeliveryLog.open(None) as log:
        ids = pa.array([f"c{i}" for i in range(10)])
        emails = pa.array([f"c{i}@x.example" for i in range(10)])
        log.reserve_batch("main", ids[:4], emails[:4], _policy(), T0, {}, "s", "first:", now_ms=T0)
        texts = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(10, dtype=np.int32)), pa.array(['{"subject":"hi"}'])
        )
        dry = log.reserve_batch(
            "main", ids, emails, _policy(), T0 + 1000, texts, "s", "second:", dry_run=True,
            now_ms=T0 + 1000,
        )  # fmt: skip
        assert log.materialize_all() == 4  # only the first batch is recorded
        real = log.reserve_batch(
            "main", ids, emails, _policy(), T0 + 1000, texts, "s", "second:", now_ms=T0 + 1000
        )
        assert (dry["reserved"], dry["suppressed"]) == (real["reserved"], real["suppressed"])
        assert dry["codes"].tolist() == [0] * 4 + [ADMITTED] * 6
        log.materialize_all()
        later = [d for d in log.list() if d.key.startswith("second:")]
        assert [d.payload for d in later if d.status == "reserved"] == [{"subject": "hi"}] * 6


def test_a_lateness_is_said_in_its_unit() -> None:
    from audience.runtime.plans.scheduler import span_text

    assert span_text(3_600_000) == "1 hour"
    assert span_text(2 * 86_400_000) == "2 days"
    assert span_text(90 * 60_000) == "90 minutes"
    assert span_text(1_500) == "1.5 seconds"
