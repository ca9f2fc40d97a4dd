"""Engine micro-benchmarks: compile of a never-seen text, evaluation, kernels.

The store (200k events, 10k contacts of the demo shop) is built in memory
once per module.  Numba kernels are compiled at import (eager signatures),
and each test runs its call once before timing, so these measure the
per-call cost a warm server pays, not the start-up.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import audience
from audience.demo import shop
from audience.engine.kernels.filters import select_rows
from audience.engine.kernels.reduce import distinct_codes
from audience.schema import Schema
from benchmarks.frontend_corpus import EXAMPLES

SCHEMA = Schema.load(EXAMPLES / "maison.toml")
RED_SHOES = """segment "Red Shoes viewed without purchase" {
  rule "Clicked Red shoes" (
    did viewed_product where product_name = "Red Shoes" in last 15 days
  )
  and rule "No purchase in the last 15 days" (
    not did purchased in last 15 days
  )
}
"""
N_EVENTS, N_CONTACTS = 200_000, 10_000
KERNEL_ROWS, KERNEL_CONTACTS = 1_000_000, 50_000


@pytest.fixture(scope="module")
def store() -> Any:
    events = pa.concat_tables(shop.events(N_EVENTS, N_CONTACTS))
    return audience.Node.from_arrow(events, shop.profiles(N_CONTACTS), SCHEMA)


def test_compile_never_seen_text(benchmark: Any, store: Any) -> None:
    # A new number each call, so neither the parser's nor the compiler's
    # caches by text can answer: each round pays parse + check + compile.
    counter = itertools.count(1)

    def run() -> Any:
        n = next(counter)
        return store.compile(
            f'segment "S{n}" {{ did viewed_product at least {n} times in last {n} days }}'
        )

    seg = benchmark(run)
    assert seg.name.startswith("S")


def test_evaluate_red_shoes_200k(benchmark: Any, store: Any) -> None:
    seg = store.compile(RED_SHOES)
    seg.evaluate(as_of=shop.DEFAULT_NOW)  # warm-up outside the timing
    hits = benchmark(seg.evaluate, as_of=shop.DEFAULT_NOW)
    assert 0 < len(hits) < N_CONTACTS


def _kernel_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    contact = np.sort(rng.integers(0, KERNEL_CONTACTS, KERNEL_ROWS)).astype(np.int32)
    code = rng.integers(0, 200, KERNEL_ROWS).astype(np.int32)
    return contact, code


def test_kernel_distinct_codes_1m(benchmark: Any) -> None:
    contact, code = _kernel_data()
    distinct_codes(contact, code, KERNEL_CONTACTS)
    out = benchmark(distinct_codes, contact, code, KERNEL_CONTACTS)
    # every contact holds ~20 rows over 200 codes: at least one distinct code each
    assert out.shape == (KERNEL_CONTACTS,)
    assert out.max() <= 200 and out.sum() <= KERNEL_ROWS


def test_kernel_select_rows_1m(benchmark: Any) -> None:
    _, code = _kernel_data()
    lut = np.zeros(200, dtype=np.bool_)
    lut[:20] = True  # a tenth of the type codes
    select_rows(code, 0, len(code), lut)
    rows = benchmark(select_rows, code, 0, len(code), lut)
    assert np.array_equal(rows, np.flatnonzero(code < 20))
