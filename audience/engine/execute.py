"""Run a physical program over a snapshot at one ``now``."""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from audience.compiler import plan as p
from audience.compiler.explain_words import step_words
from audience.compiler.physical import (
    BoolStep,
    ProfileStep,
    Program,
    ScanStep,
    SeqStep,
    Step,
    TestStep,
)
from audience.engine.context import EvalContext
from audience.engine.counting import count_bounds, count_mask, count_range
from audience.engine.fused import FusedScans, ScanPlan
from audience.engine.kernels import filters, masks
from audience.engine.kernels.reduce import INT64_MAX, INT64_MIN, distinct_counts
from audience.engine.kernels.sequence import (
    NO_STATE,
    ascending,
    sequence_match,
    sequence_stream,
    sort_by_contact_ts,
)
from audience.engine.predicates import present, profile_field, profile_mask, profile_mask_at
from audience.engine.resolve_time import recency_range
from audience.engine.scan import filter_range, filtered_rows, list_elements
from audience.timecalc import UNIT_SECONDS, minus, plus

_CMP = {
    "=": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def run_program(
    prog: Program, ctx: EvalContext, *, explain: bool = False
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """The audience mask (a fresh array, the caller's) and, with ``explain``,
    the report.  The work arrays leased on the way go back to the snapshot's
    pool at the end: nothing returned may be one of them."""
    try:
        return _run_steps(prog, ctx, explain)
    finally:
        ctx.scratch.release()


def _run_steps(
    prog: Program, ctx: EvalContext, explain: bool
) -> tuple[np.ndarray, dict[str, Any] | None]:
    results: list[Any] = []
    steps_info: list[dict[str, Any]] = []
    plan = _plan_of(prog)
    # every scan step runs in one pass over the partitions, on the first one's turn
    scans = FusedScans(plan=plan.scans)
    # each step in the words of the rules (no step numbers): what explain shows
    words = step_words(prog) if explain else []
    # explain counts every step's contacts: none is left to its AND then
    lazy = set() if explain else plan.lazy
    for i, step in enumerate(prog.steps):
        ctx.stats = {}
        t0 = time.perf_counter() if explain else 0.0
        if i in lazy:
            assert isinstance(step, ProfileStep)
            results.append(_Lazy(step))
        elif isinstance(step, ScanStep):
            results.append(scans.result(i, ctx))
        else:
            results.append(_run(step, ctx, results))
        if explain:
            info: dict[str, Any] = {"step": i, "what": words[i]}
            info["ms"] = round((time.perf_counter() - t0) * 1000, 3)
            info.update(ctx.stats)
            if not isinstance(step, ScanStep):
                info["count"] = int(np.count_nonzero(results[i]))
            steps_info.append(info)
    # a boolean step's output is its own array, and so is a test's, unless it
    # is a view (``did``'s flags are a leased scan output); any other may be
    # shared (a cached profile mask, the universe): copied
    root = prog.steps[prog.root]
    out = results[prog.root]
    # (a leased array goes back to the pool: copied too)
    fresh = isinstance(root, BoolStep) or (isinstance(root, TestStep) and out.base is None)
    fresh = fresh and not ctx.scratch.holds(out)
    mask: np.ndarray = _in_universe(out, ctx, copy=not fresh)
    if not explain:
        return mask, None
    count = lambda sid: int(np.count_nonzero(results[sid]))  # noqa: E731
    report = {
        "count": int(np.count_nonzero(mask)),
        "universe": int(np.count_nonzero(ctx.universe)),
        "now_ms": ctx.now_ms,
        "rules": [{"label": label, "count": count(sid)} for label, sid in prog.rules],
        "operands": [{"text": text, "count": count(sid)} for text, sid in prog.operands],
        "steps": steps_info,
        "partitions": {
            "total": len(ctx.snapshot.partitions),
            "read": sum(s.get("partitions_read", 0) for s in steps_info),
            "skipped": sum(s.get("partitions_skipped", 0) for s in steps_info),
        },
        "columns": sorted(ctx.columns_read),
    }
    return mask, report


class _Plan:
    """What every evaluation of one program needs that depends on the
    program alone (and, in ``scans``, on the snapshot: ``ScanPlan``)."""

    def __init__(self, prog: Program) -> None:
        steps = enumerate(prog.steps)
        scans = {i: (s.filter, s.reductions) for i, s in steps if isinstance(s, ScanStep)}
        self.scans = ScanPlan(scans, count_bounds(prog))
        self.lazy = frozenset(lazy_profile_steps(prog))


# the plans of the newest ``_KEEP`` programs, by content (a program
# unpickled anew, as a worker's task is, finds the plan of an equal one) and,
# for a program seen already, by object (its hash walks all its steps); the
# latter by id, guarded by a weak reference, as the engine's other caches
_by_content: dict[Program, _Plan] = {}
_by_id: dict[int, tuple[weakref.ref[Program], _Plan]] = {}
_plans_lock = threading.Lock()
_KEEP = 256


def _plan_of(prog: Program) -> _Plan:
    key = id(prog)
    with _plans_lock:
        hit = _by_id.get(key)
        if hit is not None and hit[0]() is prog:
            return hit[1]
        plan = _by_content.get(prog)
    if plan is None:
        plan = _Plan(prog)
    with _plans_lock:
        plan = _by_content.setdefault(prog, plan)
        _by_id[key] = (weakref.ref(prog), plan)
        while len(_by_content) > _KEEP:  # the oldest go
            del _by_content[next(iter(_by_content))]
        if len(_by_id) > _KEEP:  # the dead, else the oldest
            for k in [k for k, (r, _) in _by_id.items() if r() is None] or list(_by_id)[:1]:
                del _by_id[k]
    return plan


def lazy_profile_steps(prog: Program) -> set[int]:
    """The profile steps read by one AND only (and not the result): the AND
    tests them on the contacts its other operands kept, when those are few
    (milan_spend: a city tested on 15 thousand contacts, not 2.5 million)."""
    readers: dict[int, list[Step]] = {}
    for step in prog.steps:
        if isinstance(step, BoolStep):
            for i in step.inputs:
                readers.setdefault(i, []).append(step)
    return {
        i
        for i, step in enumerate(prog.steps)
        if isinstance(step, ProfileStep)
        and i != prog.root
        and len(r := readers.get(i, [])) == 1
        and isinstance(r[0], BoolStep)
        and r[0].op == "and"
    }


@dataclass(frozen=True)
class _Lazy:
    """A profile step left to the AND that reads it (``lazy_profile_steps``)."""

    step: ProfileStep


# an AND's profile test runs on its kept contacts when they are at most one
# in this many (below, gathering them costs more than a pass over all)
_SPARSE = 16


def _and(vecs: list[np.ndarray], preds: list[p.PredNode], ctx: EvalContext) -> np.ndarray:
    """The AND of ``vecs`` and of the profile tests ``preds`` (within the
    universe), as a new array."""
    if not vecs:  # only profile tests: the first over every contact
        vecs, preds = [_in_universe(profile_mask(ctx, preds[0]), ctx)], preds[1:]
    out = _combine(vecs, "and", ctx)
    for pred in preds:
        kept = int(np.count_nonzero(out))
        if kept * _SPARSE > len(out):
            out &= profile_mask(ctx, pred)  # ``out`` is within the universe
        elif kept:
            idx = np.flatnonzero(out)
            out[idx] = profile_mask_at(ctx, pred, idx)
    return out


def _combine(vecs: list[np.ndarray], op: str, ctx: EvalContext) -> np.ndarray:
    """``vecs`` combined by ``op`` (and / or) into an array of this
    evaluation's own (leased)."""
    fold = np.logical_and if op == "and" else np.logical_or
    out = ctx.scratch.empty(vecs[0].shape, np.bool_)
    if len(vecs) == 1:
        np.copyto(out, vecs[0])
        return out
    fold(vecs[0], vecs[1], out=out)  # one pass, not a copy and a pass
    for v in vecs[2:]:
        fold(out, v, out=out)
    return out


def _in_universe(vec: np.ndarray, ctx: EvalContext, *, copy: bool = False) -> np.ndarray:
    """``vec & universe``; no pass at all when every contact is known (then
    ``vec`` itself, or a copy with ``copy``: the caller will own it)."""
    if ctx.universe_all:
        return vec.copy() if copy else vec
    return vec & ctx.universe


def _run(step: Step, ctx: EvalContext, results: list[Any]) -> Any:
    """A step other than a scan (the scans run together: ``FusedScans``)."""
    if isinstance(step, TestStep):
        return _in_universe(_test(step.cond, results[step.scan], ctx), ctx)
    if isinstance(step, SeqStep):
        return _in_universe(_sequence(step.cond, ctx), ctx)
    if isinstance(step, ProfileStep):
        return _in_universe(profile_mask(ctx, step.pred), ctx)
    if isinstance(step, BoolStep):
        vecs = [results[i] for i in step.inputs]
        if step.op == "not":
            return ~vecs[0] if ctx.universe_all else ctx.universe & ~vecs[0]
        lazy = [v.step.pred for v in vecs if isinstance(v, _Lazy)]
        if lazy:
            return _and([v for v in vecs if not isinstance(v, _Lazy)], lazy, ctx)
        return _combine(vecs, step.op, ctx)
    raise ValueError(f"no rule for step {type(step).__name__}")


def _test(cond: p.CountCond | p.AggCond | p.RecencyCond, scan: Any, ctx: EvalContext) -> np.ndarray:
    if isinstance(cond, p.CountCond):
        # every count test is a range of counts: one pass over the contacts,
        # whatever the counter's width (``counting``)
        return count_mask(scan[("count",)]["count"], *count_range(cond))
    if isinstance(cond, p.AggCond):
        cmp = _CMP[cond.op]
        if cond.field.scope == "profile":
            return _profile_agg(cond, scan[("count",)]["count"] > 0, scan[("count",)]["count"], ctx)
        out = scan[("agg", cond.func, cond.field)]
        if cond.func == "count_distinct":
            return _compare(out["count"], cond.op, cond.value)
        acc = out["acc"]
        if cond.func == "sum":  # a sum over no events is 0 (no value count kept)
            op, rhs = filters.OP_CODES[cond.op], float(cond.value)
            return filters.compare_mask(acc, None, op, rhs, ctx.scratch.empty(acc.shape, np.bool_))
        n = out["n"]
        has = n > 0
        if cond.func == "avg":
            vals = np.divide(acc, n, out=np.zeros_like(acc), where=has)
            return has & cmp(vals, cond.value)
        return has & _compare(acc, cond.op, cond.value)  # min / max: no value compares false
    ts = scan[("ts", cond.which)]["ts"]
    lo, hi = recency_range(cond.recency, cond.tz, ctx.now_ms)
    # the sentinels (INT64_MIN newest / INT64_MAX oldest) mean "no such
    # event": out of the range, so the test is one range of values
    if cond.which == "last":
        lo = max(lo, INT64_MIN + 1)
    else:
        hi = min(hi, INT64_MAX - 1)
    return masks.range_mask(ts, lo, hi)


def _profile_agg(
    cond: p.AggCond, has: np.ndarray, count: np.ndarray, ctx: EvalContext
) -> np.ndarray:
    """An aggregate of ``profile.x`` over a contact's events: every event
    carries the contact's one value, so it follows from the event count."""
    cmp = _CMP[cond.op]
    fd = profile_field(ctx, cond.field)
    ok = has & present(fd, cond.field.kind)
    if cond.func == "count_distinct":
        if fd.offsets is not None and fd.list_codes is not None:
            idx = np.flatnonzero(ok).astype(np.int32)
            c, e = list_elements(idx, fd.offsets[:-1][idx], np.diff(fd.offsets)[idx], fd.list_codes)
            distinct = distinct_counts(c, e.astype(np.int64), len(has))
        else:
            distinct = ok.astype(np.int64)
        return _compare(distinct, cond.op, cond.value)
    if fd.values is None:  # no contact has the value: a sum is 0, the others have none
        if cond.func == "sum":
            return np.asarray(cmp(np.zeros(len(has)), cond.value))
        return np.zeros(len(has), dtype=np.bool_)
    vals = fd.values.astype(np.float64)
    if cond.func == "sum":
        return np.asarray(cmp(np.where(ok, vals * count, 0.0), cond.value))
    if cond.func == "avg":
        return ok & cmp(vals, cond.value)
    return ok & _compare(fd.values, cond.op, cond.value)  # min = max = the one value


def _compare(values: np.ndarray, op: str, value: Any) -> np.ndarray:
    """``values OP value``, exact for int-like values (no float64 rounding)."""
    if values.dtype == np.float64:
        return np.asarray(_CMP[op](values, value))
    rhs = float(value) if isinstance(value, float) else int(value)
    code, exact_rhs = filters.integral_op(op, rhs)
    ints = values.view(np.uint8) if values.dtype == np.bool_ else values
    return filters.compare_mask(ints, None, code, exact_rhs)


def _deadlines(t1: np.ndarray, cond: p.SeqCond) -> np.ndarray:
    d = cond.within
    if d.unit != "month":
        return t1 + np.int64(d.n * UNIT_SECONDS[d.unit] * 1000)
    # calendar months depend on each event's local date: computed per row
    return np.fromiter((plus(int(t), d, cond.tz) for t in t1), dtype=np.int64, count=len(t1))


def _sequence(cond: p.SeqCond, ctx: EvalContext) -> np.ndarray:
    now = ctx.now_ms
    n = ctx.snapshot.n_contacts
    lo, hi = filter_range(ctx, cond.first)
    c1, t1 = filtered_rows(ctx, cond.first, lo, hi)
    deadline = _deadlines(t1, cond)
    if cond.then_not:
        # the E1 must be at least D old: at or before now - D (with calendar
        # months not the same as t1 + D <= now: Jan 29 + 1 month is Feb 28)
        old_enough = t1 <= minus(now, cond.within, cond.tz)
        c1, t1, deadline = c1[old_enough], t1[old_enough], deadline[old_enough]
    else:
        deadline = np.minimum(deadline, now)  # a following event is at or before now
    if len(c1) == 0:
        return np.zeros(n, dtype=np.bool_)
    c2, t2 = filtered_rows(ctx, cond.second, int(t1.min()) + 1, int(deadline.max()))
    if ascending(t1) and ascending(t2):
        # rows in ts order (time-ordered partitions): one merge pass, no sort
        # the per-contact state is kept between evaluations, reset by the
        # kernel at the E1s' contacts only (not a fill of every contact)
        state = ctx.scratch.neutral((n,), np.int64, NO_STATE)
        out = sequence_stream(c1, t1, deadline, c2, t2, cond.then_not, n, state)
        ctx.scratch.restored(state, NO_STATE)
        return out
    o1 = sort_by_contact_ts(c1, t1)
    o2 = sort_by_contact_ts(c2, t2)
    return sequence_match(c1[o1], t1[o1], deadline[o1], c2[o2], t2[o2], cond.then_not, n)
