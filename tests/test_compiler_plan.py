"""Logical plans, the passes (dedupe, fuse), golden plan texts, the compile
cache and compile-time errors."""

from __future__ import annotations

import pytest

from audience.compiler.lower import lower
from audience.compiler.passes.pipeline import run_passes
from audience.compiler.physical import ScanStep, emit
from audience.dsl import ast as a
from audience.dsl.errors import DslError
from audience.runtime.evaluate import compile_cached, compile_condition
from audience.schema import Schema
from tests.compiler_ast import cmp, did, dur, ev, last, pf, profile, red_shoes, sel

SCHEMA = Schema.load("audience/examples/maison.toml")

RED_SHOES_PLAN = """\
logical:
  and
    rule "Clicked Red shoes"
      count >= 1 of [viewed_product where product_name = "Red Shoes" in last 15 days]
    rule "No purchase in the last 15 days"
      not
        count >= 1 of [purchased in last 15 days]
physical:
  #0 scan [viewed_product where product_name = "Red Shoes" in last 15 days] -> count
  #1 test count >= 1 <- #0
  #2 scan [purchased in last 15 days] -> count
  #3 test count >= 1 <- #2
  #4 not #3
  #5 and #1 #4
  result #5"""


def test_golden_red_shoes() -> None:
    assert compile_condition(red_shoes(), SCHEMA).plan_text == RED_SHOES_PLAN


def test_golden_milan_loyal_in_rome_zone() -> None:
    cond = a.And(
        (
            a.Rule("Lives in Milan", profile(cmp(pf("city"), "=", "Milan"))),
            a.Rule(
                "Bought in store",
                did(
                    "purchased",
                    cmp(ev("store"), "=", "Milano Brera"),
                    a.Count("at_least", 3),
                    last(12, "month"),
                ),
            ),
        )
    )
    text = compile_condition(cond, SCHEMA, timezone="Europe/Rome").plan_text
    assert (
        text
        == """\
logical:
  and
    rule "Lives in Milan"
      profile profile.city = "Milan"
    rule "Bought in store"
      count >= 3 of [purchased where store = "Milano Brera" in last 12 months [Europe/Rome]]
physical:
  #0 profile profile.city = "Milan"
  #1 scan [purchased where store = "Milano Brera" in last 12 months [Europe/Rome]] -> count
  #2 test count >= 3 <- #1
  #3 and #0 #2
  result #3"""
    )


def test_golden_sequence_aggregate_recency() -> None:
    cond = a.Or(
        (
            a.Sequence(
                sel("added_to_cart"),
                None,
                True,
                sel("purchased"),
                None,
                dur(2, "day"),
                last(15, "day"),
            ),
            a.Aggregate(
                "sum", ev("amount"), sel("purchased"), None, last(90, "day"), ">", a.NumberLit(200)
            ),
            a.LastFirst("last", sel("purchased"), None, a.Recency("more_than_ago", dur(60, "day"))),
        ),
        "any_of",
    )
    text = compile_condition(cond, SCHEMA).plan_text
    assert text.splitlines()[1:5] == [
        "  or",
        "    [added_to_cart in last 15 days] then not [purchased all time] within 2 days",
        "    sum(amount) > 200 of [purchased in last 90 days]",
        "    last [purchased all time] more than 60 days ago",
    ]


def test_dedupe_shares_a_rule_written_twice() -> None:
    x = did("purchased", window=last(30, "day"))
    cond = a.Or((a.Rule("A", x), a.Rule("B", x), a.Not(x)))
    prog = run_passes(emit(lower(cond, SCHEMA)))
    kinds = [type(s).__name__ for s in prog.steps]
    assert kinds == ["ScanStep", "TestStep", "BoolStep", "BoolStep"]
    assert [label for label, _ in prog.rules] == ["A", "B"]
    assert prog.rules[0][1] == prog.rules[1][1] == 1
    assert [i for _, i in prog.operands] == [1, 1, 2]


def test_fuse_reads_the_same_rows_once_for_several_reductions() -> None:
    cond = a.And(
        (
            did("purchased", count=a.Count("at_least", 3)),
            a.LastFirst("last", sel("purchased"), None, a.Recency("in_last", dur(10, "day"))),
            a.Aggregate("max", ev("amount"), sel("purchased"), None, None, ">", a.NumberLit(5)),
            did("purchased", window=last(5, "day")),
        )
    )
    prog = run_passes(emit(lower(cond, SCHEMA)))
    scans = [s for s in prog.steps if isinstance(s, ScanStep)]
    assert len(scans) == 2  # all time (3 reductions) and the 5-day window
    assert [r[0] for r in scans[0].reductions] == ["count", "ts", "agg"]
    assert "all time] -> count, last ts, max(amount)" in compile_condition(cond, SCHEMA).plan_text


def test_in_segment_is_inlined_with_its_own_zone() -> None:
    saved = a.Segment("Recent", did("purchased", window=a.Window("today")), "Europe/Rome")
    cond = a.And((a.InSegment("Recent"), a.InSegment("Recent")))
    seg = compile_condition(cond, SCHEMA, segment_resolver={"Recent": saved}.get)
    assert 'segment "Recent"' in seg.plan_text
    assert "today [Europe/Rome]" in seg.plan_text
    assert seg.plan_text.count("scan [") == 1  # referenced twice, computed once


def test_segment_cycle_and_unknown_segment_are_errors() -> None:
    segs = {
        "A": a.Segment("A", a.InSegment("B")),
        "B": a.Segment("B", a.Or((profile(a.IsSet(pf("email"))), a.InSegment("A")))),
    }
    with pytest.raises(DslError) as err:
        compile_condition(a.InSegment("A"), SCHEMA, segment_resolver=segs.get)
    assert err.value.first.code == "segment_cycle"
    assert "A -> B -> A" in err.value.first.message
    with pytest.raises(DslError) as err:
        compile_condition(a.InSegment("Nope"), SCHEMA, segment_resolver=segs.get)
    assert err.value.first.code == "unknown_segment"
    with pytest.raises(DslError):
        compile_condition(a.InSegment("A"), SCHEMA)


@pytest.mark.parametrize(
    "cond",
    [
        did("purchase"),  # unknown event type
        did("purchased", cmp(ev("nope"), "=", 1)),
        profile(cmp(pf("nope"), "=", "x")),
        profile(cmp(pf("city"), "=", 3)),  # wrong value type
        profile(cmp(pf("loyalty_points"), "=", "x")),
        profile(cmp(pf("newsletter"), ">", True)),
        profile(a.TextMatch(pf("loyalty_points"), "contains", a.StringLit("1"))),
        a.Aggregate("sum", ev("store"), sel("purchased"), None, None, ">", a.NumberLit(1)),
    ],
)
def test_compile_errors(cond: a.Cond) -> None:
    with pytest.raises(DslError):
        compile_condition(cond, SCHEMA)


def test_unknown_timezone() -> None:
    with pytest.raises(DslError) as err:
        compile_condition(red_shoes(), SCHEMA, timezone="Mars/Olympus")
    assert err.value.first.code == "unknown_timezone"


def test_compile_cache_ignores_spans_and_keys_on_zone() -> None:
    c1 = red_shoes()
    c2 = a.And(c1.operands, span=a.Span(1, 1, 9, 9))  # type: ignore[union-attr]
    first = compile_cached(c1, SCHEMA)
    assert compile_cached(c2, SCHEMA) is first
    assert compile_cached(c1, SCHEMA, timezone="Europe/Rome") is not first
    other = Schema.from_dict(
        {"events": {"purchased": {"amount": "float"}, "viewed_product": {"product_name": "string"}}}
    )
    assert compile_cached(c1, other) is not first
