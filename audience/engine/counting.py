"""How wide a scan's per-contact event count is: as narrow as its tests allow.

A count that is only compared with bounds (``at least 50 times``, ``at most
3 times``, ``between 2 and 9 times``) need not be known above them: a
counter that stops at a cap ``K`` (stores ``min(count, K)``) answers ``lo <=
count <= hi`` exactly whenever ``lo <= K`` and ``hi < K`` (or ``hi`` is
unbounded): below ``K`` it is the count, and a stopped counter passes
exactly the tests every count from ``K`` up passes.  So a scan whose count
is only tested so gets the narrowest counter whose cap is at least its
*bound* (the least ``K`` its tests need): a flag (``did``: cap 1), a
saturating byte (cap 255), else a full int64 count.  At a million contacts
an int64 count array outgrows the caches and every counted row (time
ordered, so contacts at random) misses them; a byte array an eighth of it
mostly stays in.  This module is the one place that picks the width.
"""

from __future__ import annotations

import numpy as np

from audience.compiler import plan as p
from audience.compiler.physical import Program, TestStep
from audience.engine.kernels import lanes, masks
from audience.engine.kernels.reduce import INT64_MAX, INT64_MIN

# the cap of each narrow count dtype: a bool flag, a saturating byte
_CAPS = {np.dtype(np.bool_): 1, np.dtype(np.uint8): lanes.BYTE_MAX}


def count_range(cond: p.CountCond) -> tuple[int, int]:
    """The counts ``cond`` passes: ``lo <= count <= hi`` (int64 extremes for
    an open end)."""
    if cond.op == "at_least":
        return cond.n, int(INT64_MAX)
    if cond.op == "at_most":
        return int(INT64_MIN), cond.n
    if cond.op == "exactly":
        return cond.n, cond.n
    assert cond.high is not None
    return cond.n, cond.high


def range_bound(lo: int, hi: int) -> int:
    """The least cap under which ``lo <= count <= hi`` is exact (see the
    module's docstring); never below 0 (a count is not)."""
    return max(0, lo, hi + 1 if hi < INT64_MAX else 0)


def count_bounds(prog: Program) -> dict[int, int | None]:
    """Per scan step whose count a test reads: the least cap its counter
    needs (the largest of its tests' ``range_bound``), or None when the count
    is read in full (an aggregate of a profile field is derived from it)."""
    out: dict[int, int | None] = {}
    for step in prog.steps:
        if not isinstance(step, TestStep):
            continue
        cond = step.cond
        need: int | None
        if isinstance(cond, p.CountCond):
            need = range_bound(*count_range(cond))
        elif isinstance(cond, p.AggCond) and cond.field.scope == "profile":
            need = None
        else:
            continue  # reads another reduction
        had = out.get(step.scan, 0)
        out[step.scan] = None if had is None or need is None else max(had, need)
    return out


def count_kind(bound: int | None) -> int:
    """The lane kind that counts for a scan of ``bound`` (``count_bounds``):
    the one place the counter's width is chosen."""
    if bound is None:
        return lanes.COUNT
    if bound <= 1:
        return lanes.EXISTS
    if bound <= lanes.BYTE_MAX:
        return lanes.COUNT8
    return lanes.COUNT


def count_mask(counts: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``lo <= count <= hi`` per contact, from ``counts`` of any width
    (``count_kind``): a narrow counter must be exact for the range.  It may
    be ``counts`` itself (a bool array): the caller must not write it."""
    cap = _CAPS.get(counts.dtype)
    if cap is None:
        return masks.range_mask(counts, lo, hi)
    if range_bound(lo, hi) > cap:
        raise ValueError(f"a count capped at {cap} cannot test {lo}..{hi}")
    if cap == 1 and lo == 1:  # ``did``: the flags are the answer (no pass)
        return counts
    return masks.range_mask(counts.view(np.uint8), lo, hi)
