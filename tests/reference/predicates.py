"""Comparisons of SPEC 3.3 on one value, as plain Python.

``holds(pred, resolve, now, tz)`` decides a predicate; ``resolve(field)``
returns the field's value for the event or contact at hand, ``None`` when it
is missing.  Values are normalised before comparing: an empty list is missing,
a ``date`` value is the instant of its local midnight in the definition's time
zone (so it compares with date and time literals alike), a ``datetime`` is
brought to UTC.

Choices where the SPEC is silent (listed again in ``evaluator``):
- ``between A and B``: a date literal B covers its whole day (``x <`` the start
  of the next day), as for the WINDOW ``between``; any other comparison with a
  date literal uses the start of that day;
- ``since T`` on a property is ``x >= T`` (no upper bound; ``ts`` cannot pass
  ``now`` anyway), ``less than D ago`` is ``x > now - D`` (no upper bound),
  ``in last D`` is ``now - D < x <= now``, ``more than D ago`` is ``x < now - D``;
- on a ``list<string>`` property ``contains S`` is element membership, and
  every other operator but ``is (not) set`` asks whether SOME element
  satisfies it, and the negated ones (``!=``, ``not in``)
  are the negation of that over lists that are set: ``tags != "vip"`` is
  "set, and no element is vip";
- mixing incompatible types (a string with a number) raises ``TypeError``:
  the compiler rejects such programs, so a generated one is a generator bug.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from audience.dsl.ast import (
    AgoCompare,
    Between,
    BoolLit,
    Compare,
    DateLit,
    DateTimeLit,
    Field,
    Flag,
    InList,
    IsSet,
    NumberLit,
    Pred,
    PredAnd,
    PredNot,
    PredOr,
    StringLit,
    TextMatch,
    TimeCompare,
)

from .timewin import between, lit_instant, local_midnight, minus, utc

Resolver = Callable[[Field], Any]


def normalize(value: Any, tz: str) -> Any:
    """A stored value as the reference compares it; ``None`` when missing."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [normalize(v, tz) for v in value] or None
    if isinstance(value, dt.datetime):
        return utc(value)
    if isinstance(value, dt.date):
        return local_midnight(value, tz)
    return value


def literal(lit: Any) -> Any:
    if isinstance(lit, StringLit | NumberLit | BoolLit):
        return lit.value
    if isinstance(lit, DateLit | DateTimeLit):
        return lit_instant(lit)
    raise TypeError(f"not a literal: {lit!r}")


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dt.datetime):
        return "time"
    raise TypeError(f"unsupported value {v!r}")


def _check(x: Any, v: Any) -> None:
    if _kind(x) != _kind(v):
        raise TypeError(f"cannot compare {x!r} with {v!r}")


def _compare(x: Any, op: str, v: Any) -> bool:
    _check(x, v)
    if op == "=":
        return bool(x == v)
    if op == "!=":
        return bool(x != v)
    if op == "<":
        return bool(x < v)
    if op == "<=":
        return bool(x <= v)
    if op == ">":
        return bool(x > v)
    if op == ">=":
        return bool(x >= v)
    raise ValueError(f"unknown operator {op!r}")


def _text(x: Any, op: str, s: str) -> bool:
    if not isinstance(x, str):
        raise TypeError(f"{op} needs a string, got {x!r}")
    if op == "contains":
        return s in x
    if op == "starts_with":
        return x.startswith(s)
    if op == "ends_with":
        return x.endswith(s)
    if op == "matches":
        return re.search(s, x) is not None
    raise ValueError(f"unknown text operator {op!r}")


def _scalar(pred: Any, x: Any, now: dt.datetime, tz: str) -> bool:
    """A positive comparison on one present scalar value."""
    if isinstance(pred, Flag):
        return x is True  # `vip` alone: the property is true (SPEC 3.3)
    if isinstance(pred, Compare):
        return _compare(x, pred.op, literal(pred.value))
    if isinstance(pred, InList):
        return any(_compare(x, "=", literal(v)) for v in pred.values)
    if isinstance(pred, Between):
        if isinstance(pred.high, DateLit):
            if not isinstance(x, dt.datetime) or not isinstance(pred.low, DateLit | DateTimeLit):
                raise TypeError("between with a date bound needs a time value and time bounds")
            return x in between(pred.low, pred.high)
        return _compare(x, ">=", literal(pred.low)) and _compare(x, "<=", literal(pred.high))
    if isinstance(pred, TextMatch):
        return _text(x, pred.op, pred.value.value)
    if isinstance(pred, TimeCompare):
        op = "<" if pred.op == "before" else ">="
        return _compare(x, op, lit_instant(pred.value))
    if isinstance(pred, AgoCompare):
        if not isinstance(x, dt.datetime):
            raise TypeError(f"{pred.op} needs a date or datetime, got {x!r}")
        edge = minus(now, pred.duration, tz)
        if pred.op == "more_than_ago":
            return x < edge
        if pred.op == "less_than_ago":
            return x > edge
        return edge < x <= utc(now)
    raise TypeError(f"not a comparison: {pred!r}")


def comparison_holds(pred: Any, raw: Any, now: dt.datetime, tz: str) -> bool:
    """One comparison of SPEC 3.3 on the field's raw value (``None``: missing)."""
    x = normalize(raw, tz)
    if isinstance(pred, IsSet):
        return (x is None) if pred.negated else (x is not None)
    if x is None:
        return False  # a missing value makes every comparison false
    negated = (isinstance(pred, Compare) and pred.op == "!=") or (
        isinstance(pred, InList) and pred.negated
    )
    positive = pred
    if isinstance(pred, Compare) and pred.op == "!=":
        positive = Compare(pred.field, "=", pred.value)
    elif isinstance(pred, InList) and pred.negated:
        positive = InList(pred.field, pred.values, negated=False)
    if isinstance(x, list) and isinstance(pred, TextMatch) and pred.op == "contains":
        found = pred.value.value in x  # a list contains S as an element
    elif isinstance(x, list):
        found = any(_scalar(positive, element, now, tz) for element in x)
    else:
        found = _scalar(positive, x, now, tz)
    return not found if negated else found


def holds(pred: Pred, resolve: Resolver, now: dt.datetime, tz: str) -> bool:
    """A predicate (comparison or boolean of them) on one event or profile."""
    if isinstance(pred, PredAnd):
        return all(holds(p, resolve, now, tz) for p in pred.operands)
    if isinstance(pred, PredOr):
        return any(holds(p, resolve, now, tz) for p in pred.operands)
    if isinstance(pred, PredNot):
        return not holds(pred.operand, resolve, now, tz)
    return comparison_holds(pred, resolve(pred.field), now, tz)
