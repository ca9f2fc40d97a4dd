"""Explain's step texts: in the words of the rules, never a step number."""

from __future__ import annotations

import re

from audience.dsl.parser import parse
from audience.runtime.evaluate import compile_condition
from audience.schema import Schema
from tests.compiler_snapshot import build_snapshot, ms

SCHEMA = Schema.load("audience/examples/maison.toml")
NOW = "2026-11-01T00:00:00Z"
EVENTS = [
    {"contact_id": "a", "type": "purchased", "ts": ms(NOW) - 3_600_000, "amount": 10.0},
    {"contact_id": "b", "type": "viewed_product", "ts": ms(NOW) - 3_600_000},
]


def whats(text: str) -> list[str]:
    program = parse(text, filename="<t>")
    assert program.condition is not None
    compiled = compile_condition(program.condition, SCHEMA)
    explain = compiled.evaluate(build_snapshot(SCHEMA, EVENTS), NOW, explain=True).explain
    assert explain is not None
    return [s["what"] for s in explain["steps"]]


def test_rules_by_label_operands_by_text() -> None:
    got = whats(
        'rule "Buyers" (did purchased in last 7 days) '
        "and not did viewed_product at least 2 times "
        "and (last purchased more than 60 days ago or did purchased)"
    )
    assert not any(re.search(r"#\d", w) for w in got), got
    assert 'rule "Buyers": did purchased in last 7 days' in got
    assert "did viewed_product at least 2 times" in got
    assert "not did viewed_product at least 2 times" in got
    assert "last purchased more than 60 days ago" in got
    assert got[-1] == (
        '"Buyers" and not did viewed_product at least 2 times and '
        "(last purchased more than 60 days ago or did purchased)"
    )


def test_deep_nesting_stays_short() -> None:
    got = whats("not " * 150 + "(did purchased or did viewed_product)")
    assert not any(re.search(r"#\d", w) for w in got)
    assert max(len(w) for w in got) < 100
