"""The per-contact reductions of one scan, in plain Python from the event records.

The engine computes every scan of a program in one fused pass (lanes over
type selections, column indexes, exists flags); the fused-scan tests hold
each result to this literal loop over the records, which shares no code with
the engine.  A scan is the plan's ``RowFilter`` (types, predicate, window)
and its reductions (``audience.compiler.physical.Reduction``); the results
have the engine's layout:

- ``("count",)``: ``{"count": int64}``, the passing rows per contact;
- ``("ts", "last" | "first")``: ``{"ts": int64}``, the newest / oldest passing
  row's ts, ``INT64_MIN`` / ``INT64_MAX`` for a contact without one;
- ``("agg", func, field)``: ``{"acc", "n"}`` for sum, avg (``acc`` the sum),
  min and max (``acc`` int64 unless the field is a float, so exact; 0 when
  the contact has no value), ``n`` the present values; ``{"count"}`` for
  ``count_distinct`` (a list counts its distinct elements).

Predicates are the string tests the engine answers by lookup table or column
index (``StrTest``, ``SetTest``, ``and`` / ``or`` / ``not``); a missing value
fails every test but ``is not set``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from audience.compiler import plan as p
from audience.compiler.physical import Reduction

from .timewin import window_interval

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
Record = Mapping[str, Any]

_STR_OPS: dict[str, Callable[[str, tuple[str, ...]], bool]] = {
    "=": lambda s, v: s == v[0],
    "!=": lambda s, v: s != v[0],
    "in": lambda s, v: s in v,
    "not_in": lambda s, v: s not in v,
    "<": lambda s, v: s < v[0],
    "<=": lambda s, v: s <= v[0],
    ">": lambda s, v: s > v[0],
    ">=": lambda s, v: s >= v[0],
    "between": lambda s, v: v[0] <= s <= v[1],
    "contains": lambda s, v: v[0] in s,
    "starts_with": lambda s, v: s.startswith(v[0]),
    "ends_with": lambda s, v: s.endswith(v[0]),
    "matches": lambda s, v: re.search(v[0], s) is not None,
}


def _instant(ms: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)


def _value(rec: Record, f: p.FieldRef) -> Any:
    if f.scope != "event":
        raise ValueError(f"the reference scans read event fields only, not {f.text()}")
    return rec.get(f.name)


def passes(pred: p.PredNode, rec: Record) -> bool:
    """Whether the event ``rec`` passes the plan predicate ``pred``."""
    if isinstance(pred, p.PAnd):
        return all(passes(c, rec) for c in pred.children)
    if isinstance(pred, p.POr):
        return any(passes(c, rec) for c in pred.children)
    if isinstance(pred, p.PNot):
        return not passes(pred.child, rec)
    value = _value(rec, pred.field)
    if isinstance(pred.test, p.SetTest):
        return (value is None) == pred.test.negated
    if not isinstance(pred.test, p.StrTest):
        raise ValueError(f"the reference scans read string tests only, not {pred.test}")
    return value is not None and _STR_OPS[pred.test.op](value, pred.test.values)


def _rows(records: Sequence[Record], flt: p.RowFilter, now_ms: int) -> list[Record]:
    """The records ``flt`` reads at ``now_ms``, in input order."""
    window = None if flt.window is None else flt.window.window
    tz = "UTC" if flt.window is None else flt.window.tz
    interval = window_interval(window, _instant(now_ms), tz)
    return [
        rec
        for rec in records
        if (flt.types is None or rec["type"] in flt.types)
        and _instant(rec["ts"]) in interval
        and (flt.pred is None or passes(flt.pred, rec))
    ]


def _reduce(red: Reduction, values: list[Any]) -> Any:
    """One contact's result of ``red`` over its passing rows' values (the
    field's values for an aggregate, the rows' ts otherwise)."""
    if red[0] == "count":
        return len(values)
    if red[0] == "ts":
        if not values:
            return INT64_MIN if red[1] == "last" else INT64_MAX
        return max(values) if red[1] == "last" else min(values)
    present = [v for v in values if v is not None and v != []]
    func = red[1]
    if func == "count_distinct":
        elements = [e for v in present for e in (v if isinstance(v, list) else [v])]
        return len(set(elements))
    if func in ("sum", "avg"):
        return sum(present), len(present)
    if not present:
        return 0, 0
    return (min(present) if func == "min" else max(present)), len(present)


def _acc_dtype(red: Reduction) -> Any:
    # the extremes of int-like values stay exact; sums are float64
    return np.int64 if red[1] in ("min", "max") and red[2].kind != "float" else np.float64


def reference_scan(
    records: Sequence[Record],
    contact_ids: Sequence[str],
    flt: p.RowFilter,
    reductions: Sequence[Reduction],
    now_ms: int,
) -> dict[Reduction, dict[str, np.ndarray]]:
    """Every reduction of ``reductions`` over the records ``flt`` reads at
    ``now_ms``, per contact in the order of ``contact_ids``.  ``records``
    are events as given to ``tests.compiler_snapshot.build_snapshot``, with
    ``ts`` in epoch ms."""
    by_contact: dict[str, list[Record]] = {c: [] for c in contact_ids}
    for rec in _rows(records, flt, now_ms):
        by_contact[str(rec["contact_id"])].append(rec)
    out: dict[Reduction, dict[str, np.ndarray]] = {}
    for red in reductions:
        per = [
            _reduce(
                red,
                [_value(r, red[2]) for r in rows] if red[0] == "agg" else [r["ts"] for r in rows],
            )
            for rows in by_contact.values()
        ]
        if red[0] == "count" or (red[0] == "agg" and red[1] == "count_distinct"):
            out[red] = {"count": np.array(per, dtype=np.int64)}
        elif red[0] == "ts":
            out[red] = {"ts": np.array(per, dtype=np.int64)}
        else:
            acc = np.array([a for a, _ in per], dtype=_acc_dtype(red))
            out[red] = {"acc": acc}
            if red[1] != "sum":  # a sum is only compared (0 over no values): no count
                out[red]["n"] = np.array([n for _, n in per], dtype=np.int64)
    return out
