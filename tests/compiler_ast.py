"""Test helper: short constructors for the AST (the compiler tests build
conditions directly, independent of the parser)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from audience.dsl import ast as a


def sel(*types: str) -> a.EventSel:
    return a.EventSel(types or None)


def ev(name: str) -> a.Field:
    parts = tuple(name.split("."))
    if parts[0] == "profile":
        return a.Field("profile", parts[1:])
    return a.Field("event", parts)


def pf(name: str) -> a.Field:
    return a.Field("profile", tuple(name.split(".")))


def lit(v: object) -> a.Literal_:
    if isinstance(v, bool):
        return a.BoolLit(v)
    if isinstance(v, int | float):
        return a.NumberLit(v)
    if isinstance(v, str):
        return a.StringLit(v)
    raise TypeError(v)


def cmp(f: a.Field, op: a.CompareOp, v: object) -> a.Compare:
    return a.Compare(f, op, v if isinstance(v, a.DateLit | a.DateTimeLit) else lit(v))


def date(s: str, tz: str = "UTC") -> a.DateLit:
    return a.DateLit(dt.date.fromisoformat(s), ZoneInfo(tz))


def when(s: str) -> a.DateTimeLit:
    return a.DateTimeLit(dt.datetime.fromisoformat(s.replace("Z", "+00:00")))


def dur(n: int, unit: a.TimeUnit) -> a.Duration:
    return a.Duration(n, unit)


def last(n: int, unit: a.TimeUnit) -> a.Window:
    return a.Window("last", dur(n, unit))


def did(
    types: a.EventSel | str,
    where: a.Pred | None = None,
    count: a.Count | None = None,
    window: a.Window | None = None,
) -> a.Did:
    return a.Did(sel(types) if isinstance(types, str) else types, where, count, window)


def profile(pred: a.Comparison) -> a.ProfileCond:
    return a.ProfileCond(pred)


def red_shoes() -> a.Cond:
    """The Red Shoes segment of the demo."""
    w = last(15, "day")
    return a.And(
        (
            a.Rule(
                "Clicked Red shoes",
                did("viewed_product", cmp(ev("product_name"), "=", "Red Shoes"), window=w),
            ),
            a.Rule("No purchase in the last 15 days", a.Not(did("purchased", window=w))),
        )
    )
