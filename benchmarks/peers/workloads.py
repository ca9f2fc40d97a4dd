"""The workloads: each one as our DSL, DuckDB SQL and a Polars lazy query.

The three must mean exactly the same thing (SPEC 3), since the harness checks
that they return the same contacts before it reports any time:

- ``in last N days`` is ``now - N days < ts <= now``; events after ``now`` do
  not exist, so every event read is bounded by ``ts <= now``;
- the universe is every contact with a profile or with an event at or before
  ``now`` (the ``contacts`` table: ``has_profile``, ``first_ts``) and ``not C``
  is the universe minus C;
- a missing value makes a comparison false (SQL and Polars nulls do that);
- ``sum`` over no events is 0, so ``sum(...) > x`` with x >= 0 needs an event.

Tables, shared by the SQL and the Polars frames: ``events`` (``cid`` int32,
``type``, ``ts`` and the shop's event columns, sorted by ``ts``), ``profiles``
(``cid`` and the profile columns), ``contacts`` (``cid``, ``contact_id``,
``has_profile``, ``first_ts``).  ``cid`` is a dense surrogate key given at load.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Times:
    """The evaluation time and the literals the queries need."""

    now: dt.datetime

    @classmethod
    def from_iso(cls, text: str) -> Times:
        now = dt.datetime.fromisoformat(text)
        return cls(now if now.tzinfo else now.replace(tzinfo=dt.UTC))

    def ago(self, days: float) -> dt.datetime:
        return self.now - days * DAY

    @staticmethod
    def lit(t: dt.datetime) -> str:
        """A DuckDB TIMESTAMP literal (UTC, millisecond precision)."""
        return "TIMESTAMP '" + t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "'"

    @property
    def now_sql(self) -> str:
        return self.lit(self.now)

    def last(self, days: float, col: str = "ts") -> str:
        """SQL for ``in last DAYS days``: now - DAYS < ts <= now."""
        return f"{col} > {self.lit(self.ago(days))} AND {col} <= {self.now_sql}"

    @property
    def universe_sql(self) -> str:
        return f"SELECT cid FROM contacts WHERE has_profile OR first_ts <= {self.now_sql}"


@dataclass(frozen=True)
class Frames:
    """The Polars tables, in memory; ``events`` sorted by ``ts`` (and flagged so)."""

    events: pl.DataFrame
    profiles: pl.DataFrame
    contacts: pl.DataFrame

    def window(self, after: dt.datetime | None, upto: dt.datetime) -> pl.LazyFrame:
        """Events with ``after < ts <= upto``: a zero-copy slice found by binary
        search on the sorted ``ts`` (the honest use of the sort, as DuckDB's zone
        maps and our partitions skip by time too)."""
        ts = self.events["ts"]
        lo = 0 if after is None else int(ts.search_sorted(after, side="right"))
        hi = int(ts.search_sorted(upto, side="right"))
        return self.events.slice(lo, max(0, hi - lo)).lazy()

    def last(self, t: Times, days: float) -> pl.LazyFrame:
        return self.window(t.ago(days), t.now)

    def upto_now(self, t: Times) -> pl.LazyFrame:
        return self.window(None, t.now)

    def universe(self, t: Times) -> pl.LazyFrame:
        c = self.contacts.lazy()
        return c.filter(pl.col("has_profile") | (pl.col("first_ts") <= t.now)).select("cid")


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    dsl: str
    sql: Callable[[Times], str]
    polars: Callable[[Frames, Times], pl.LazyFrame]
    # What any engine must read at least, for the bandwidth lower bound: the
    # widest window in days (None: all history), event columns besides ts and
    # contact, profile columns, and whether the universe is needed.
    window_days: float | None
    event_columns: tuple[str, ...]
    profile_columns: tuple[str, ...] = ()
    universe: bool = False
    reads_type: bool = True  # False for ``anything``


def _type(name: str) -> pl.Expr:
    return pl.col("type") == name


def _cids(lf: pl.LazyFrame) -> pl.LazyFrame:
    return lf.select("cid").unique()


def _minus(a: pl.LazyFrame, b: pl.LazyFrame) -> pl.LazyFrame:
    return a.join(b, on="cid", how="anti")


def _inter(a: pl.LazyFrame, b: pl.LazyFrame) -> pl.LazyFrame:
    return a.join(b, on="cid", how="semi")


def _union(*parts: pl.LazyFrame) -> pl.LazyFrame:
    return pl.concat([p.select("cid") for p in parts]).unique()


def _sum_gt(lf: pl.LazyFrame, etype: str, prop: str, op: str, value: float) -> pl.LazyFrame:
    """Contacts whose sum of ``prop`` over ``etype`` events compares true; only
    for comparisons that 0 fails (``> x``, ``>= x`` with x > 0), so contacts with
    no event need not be listed."""
    assert value > 0 and op in (">", ">=")
    total = pl.col(prop).sum()
    keep = total > value if op == ">" else total >= value
    rows = lf.filter(_type(etype) & pl.col(prop).is_not_null())
    return rows.group_by("cid").agg(keep.alias("ok")).filter(pl.col("ok")).select("cid")


def _count_cmp(lf: pl.LazyFrame, keep: pl.Expr) -> pl.LazyFrame:
    return lf.group_by("cid").agg(keep.alias("ok")).filter(pl.col("ok")).select("cid")


# --------------------------------------------------------------------------- 1
def _red_shoes_sql(t: Times) -> str:
    return f"""
SELECT DISTINCT cid FROM events
WHERE type = 'viewed_product' AND product_name = 'Red Shoes' AND {t.last(15)}
EXCEPT
SELECT cid FROM events WHERE type = 'purchased' AND {t.last(15)}"""


def _red_shoes_pl(f: Frames, t: Times) -> pl.LazyFrame:
    w = f.last(t, 15)
    red = _cids(w.filter(_type("viewed_product") & (pl.col("product_name") == "Red Shoes")))
    return _minus(red, w.filter(_type("purchased")).select("cid"))


# --------------------------------------------------------------------------- 2
def _shoes5_sql(t: Times) -> str:
    return f"""
SELECT cid FROM events
WHERE type = 'viewed_product' AND category = 'shoes' AND {t.last(30)}
GROUP BY cid HAVING count(*) >= 5"""


def _shoes5_pl(f: Frames, t: Times) -> pl.LazyFrame:
    rows = f.last(t, 30).filter(_type("viewed_product") & (pl.col("category") == "shoes"))
    return _count_cmp(rows, pl.len() >= 5)


# --------------------------------------------------------------------------- 3
def _milan_sql(t: Times) -> str:
    return f"""
SELECT cid FROM events
WHERE type = 'purchased' AND amount IS NOT NULL AND {t.last(90)}
  AND cid IN (SELECT cid FROM profiles WHERE city = 'Milan')
GROUP BY cid HAVING sum(amount) > 200"""


def _milan_pl(f: Frames, t: Times) -> pl.LazyFrame:
    milan = f.profiles.lazy().filter(pl.col("city") == "Milan").select("cid")
    return _inter(_sum_gt(f.last(t, 90), "purchased", "amount", ">", 200), milan)


# --------------------------------------------------------------------------- 4
def _lapsed_sql(t: Times) -> str:
    return f"""
SELECT cid FROM events WHERE type = 'purchased' AND ts <= {t.now_sql}
GROUP BY cid HAVING max(ts) < {t.lit(t.ago(60))}"""


def _lapsed_pl(f: Frames, t: Times) -> pl.LazyFrame:
    rows = f.upto_now(t).filter(_type("purchased"))
    return _count_cmp(rows, pl.col("ts").max() < t.ago(60))


# --------------------------------------------------------------------------- 5
def _mixed_or_sql(t: Times) -> str:
    return f"""
SELECT cid FROM events WHERE type = 'email_clicked' AND {t.last(7)}
UNION
SELECT cid FROM events WHERE type = 'purchased' AND amount IS NOT NULL AND {t.last(30)}
GROUP BY cid HAVING sum(amount) > 300
UNION
SELECT cid FROM profiles WHERE gender = 'female' AND city = 'Turin'"""


def _mixed_or_pl(f: Frames, t: Times) -> pl.LazyFrame:
    clicked = f.last(t, 7).filter(_type("email_clicked"))
    spent = _sum_gt(f.last(t, 30), "purchased", "amount", ">", 300)
    turin = f.profiles.lazy().filter((pl.col("gender") == "female") & (pl.col("city") == "Turin"))
    return _union(clicked, spent, turin)


# --------------------------------------------------------------------------- 6
def _active50_sql(t: Times) -> str:
    return f"""
SELECT cid FROM events WHERE ts <= {t.now_sql} GROUP BY cid HAVING count(*) >= 50"""


def _active50_pl(f: Frames, t: Times) -> pl.LazyFrame:
    return _count_cmp(f.upto_now(t), pl.len() >= 50)


# --------------------------------------------------------------------------- 7
def _cart_abandon_sql(t: Times) -> str:
    # The cart must be 2 days old to have had its chance; the next purchase
    # strictly after it (ASOF with >) decides, and purchases before now only.
    return f"""
WITH carts AS (
  SELECT cid, ts FROM events
  WHERE type = 'added_to_cart' AND ts > {t.lit(t.ago(30))} AND ts <= {t.lit(t.ago(2))}
), buys AS (
  SELECT cid, ts FROM events WHERE type = 'purchased' AND {t.last(30)}
)
SELECT DISTINCT c.cid FROM carts c ASOF LEFT JOIN buys b ON c.cid = b.cid AND b.ts > c.ts
WHERE b.ts IS NULL OR b.ts > c.ts + INTERVAL 2 DAY"""


def _cart_abandon_pl(f: Frames, t: Times) -> pl.LazyFrame:
    carts = f.window(t.ago(30), t.ago(2)).filter(_type("added_to_cart")).select("cid", "ts")
    buys = f.last(t, 30).filter(_type("purchased")).select("cid", pl.col("ts").alias("bts"))
    nxt = carts.join_asof(
        buys,
        left_on="ts",
        right_on="bts",
        by="cid",
        strategy="forward",
        allow_exact_matches=False,
        check_sortedness=False,  # both are time slices of the sorted table
    )
    late = pl.col("bts").is_null() | (pl.col("bts") > pl.col("ts") + pl.duration(days=2))
    return _cids(nxt.filter(late))


# --------------------------------------------------------------------------- 8
def _variety_sql(t: Times) -> str:
    return f"""
SELECT cid FROM events
WHERE type = 'viewed_product' AND product_id IS NOT NULL AND {t.last(30)}
GROUP BY cid HAVING count(DISTINCT product_id) >= 10"""


def _variety_pl(f: Frames, t: Times) -> pl.LazyFrame:
    rows = f.last(t, 30).filter(_type("viewed_product") & pl.col("product_id").is_not_null())
    return _count_cmp(rows, pl.col("product_id").n_unique() >= 10)


# --------------------------------------------------------------------------- 9
WINBACK_DSL = """segment "Shoe lovers to win back" {
  rule "Shoe views" (did viewed_product where category = "shoes" at least 3 times in last 30 days)
  and rule "Has an email" (email is set)
  and rule "Newsletter" (newsletter = true)
  and rule "Lives in Italy" (country = "IT")
  and rule "No purchase in 14 days" (not did purchased in last 14 days)
  and rule "Spent 100+ in 180 days" (sum(amount) of purchased in last 180 days >= 100)
  and rule "Not over-mailed" (did email_sent at most 10 times in last 30 days)
  and (
    rule "Clicked an email" (did email_clicked in last 60 days)
    or rule "Shoes in cart" (did added_to_cart where category = "shoes" in last 30 days)
    or rule "Loyal" (loyalty_points >= 2000)
  )
}"""


def _winback_sql(t: Times) -> str:
    return f"""
WITH u AS ({t.universe_sql}),
r1 AS (SELECT cid FROM events WHERE type = 'viewed_product' AND category = 'shoes'
       AND {t.last(30)} GROUP BY cid HAVING count(*) >= 3),
r2 AS (SELECT cid FROM profiles WHERE email IS NOT NULL),
r3 AS (SELECT cid FROM profiles WHERE newsletter = true),
r4 AS (SELECT cid FROM profiles WHERE country = 'IT'),
r5 AS (SELECT cid FROM u EXCEPT SELECT cid FROM events WHERE type = 'purchased' AND {t.last(14)}),
r6 AS (SELECT cid FROM events WHERE type = 'purchased' AND amount IS NOT NULL AND {t.last(180)}
       GROUP BY cid HAVING sum(amount) >= 100),
r7 AS (SELECT cid FROM u EXCEPT
       SELECT cid FROM events WHERE type = 'email_sent' AND {t.last(30)}
       GROUP BY cid HAVING count(*) > 10),
r8 AS (SELECT cid FROM events WHERE type = 'email_clicked' AND {t.last(60)}),
r9 AS (SELECT cid FROM events WHERE type = 'added_to_cart' AND category = 'shoes'
       AND {t.last(30)}),
r10 AS (SELECT cid FROM profiles WHERE loyalty_points >= 2000)
SELECT cid FROM r1 INTERSECT SELECT cid FROM r2 INTERSECT SELECT cid FROM r3
INTERSECT SELECT cid FROM r4 INTERSECT SELECT cid FROM r5 INTERSECT SELECT cid FROM r6
INTERSECT SELECT cid FROM r7
INTERSECT (SELECT cid FROM r8 UNION SELECT cid FROM r9 UNION SELECT cid FROM r10)"""


def _winback_pl(f: Frames, t: Times) -> pl.LazyFrame:
    prof = f.profiles.lazy()
    w30, w180 = f.last(t, 30), f.last(t, 180)
    u = f.universe(t)
    r1 = _count_cmp(
        w30.filter(_type("viewed_product") & (pl.col("category") == "shoes")), pl.len() >= 3
    )
    r2 = prof.filter(pl.col("email").is_not_null()).select("cid")
    r3 = prof.filter(pl.col("newsletter")).select("cid")
    r4 = prof.filter(pl.col("country") == "IT").select("cid")
    r5 = _minus(u, f.last(t, 14).filter(_type("purchased")).select("cid"))
    r6 = _sum_gt(w180, "purchased", "amount", ">=", 100)
    r7 = _minus(u, _count_cmp(w30.filter(_type("email_sent")), pl.len() > 10))
    r8 = f.last(t, 60).filter(_type("email_clicked")).select("cid")
    r9 = w30.filter(_type("added_to_cart") & (pl.col("category") == "shoes")).select("cid")
    r10 = prof.filter(pl.col("loyalty_points") >= 2000).select("cid")
    out = r1
    for r in (r2, r3, r4, r5, r6, r7, _union(r8, r9, r10)):
        out = _inter(out, r)
    return _cids(out)


# --------------------------------------------------------------------------- 10
def _dormant_sql(t: Times) -> str:
    return f"""
{t.universe_sql}
EXCEPT
SELECT cid FROM events WHERE {t.last(7)}"""


def _dormant_pl(f: Frames, t: Times) -> pl.LazyFrame:
    return _minus(f.universe(t), f.last(t, 7).select("cid"))


# --------------------------------------------------------------------------- 11
def _browsed_sql(t: Times) -> str:
    return f"""
SELECT DISTINCT cid FROM events WHERE type = 'viewed_product' AND {t.last(90)}"""


def _browsed_pl(f: Frames, t: Times) -> pl.LazyFrame:
    return _cids(f.last(t, 90).filter(_type("viewed_product")))


# --------------------------------------------------------------------------- 12
def _no_purchase_sql(t: Times) -> str:
    return f"""
{t.universe_sql}
EXCEPT
SELECT cid FROM events WHERE type = 'purchased' AND {t.last(30)}"""


def _no_purchase_pl(f: Frames, t: Times) -> pl.LazyFrame:
    return _minus(f.universe(t), f.last(t, 30).filter(_type("purchased")).select("cid"))


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "red_shoes",
        "viewed Red Shoes, no purchase (15 d)",
        'did viewed_product where product_name = "Red Shoes" in last 15 days'
        " and not did purchased in last 15 days",
        _red_shoes_sql,
        _red_shoes_pl,
        15,
        ("product_name",),
        universe=True,
    ),
    Workload(
        "shoes_5x",
        "count >= 5 over a category (30 d)",
        'did viewed_product where category = "shoes" at least 5 times in last 30 days',
        _shoes5_sql,
        _shoes5_pl,
        30,
        ("category",),
    ),
    Workload(
        "milan_spend",
        "sum(amount) > 200 (90 d) and a profile city",
        'sum(amount) of purchased in last 90 days > 200 and city = "Milan"',
        _milan_sql,
        _milan_pl,
        90,
        ("amount",),
        ("city",),
    ),
    Workload(
        "lapsed",
        "last purchase more than 60 d ago",
        "last purchased more than 60 days ago",
        _lapsed_sql,
        _lapsed_pl,
        None,
        (),
    ),
    Workload(
        "mixed_or",
        "event or aggregate or profile",
        "did email_clicked in last 7 days or sum(amount) of purchased in last 30 days > 300"
        ' or (gender = "female" and city = "Turin")',
        _mixed_or_sql,
        _mixed_or_pl,
        30,
        ("amount",),
        ("gender", "city"),
    ),
    Workload(
        "active_50",
        "full-history count >= 50",
        "did anything at least 50 times",
        _active50_sql,
        _active50_pl,
        None,
        (),
        reads_type=False,
    ),
    Workload(
        "cart_abandon",
        "cart then not purchase within 2 d (30 d)",
        "did added_to_cart then not purchased within 2 days in last 30 days",
        _cart_abandon_sql,
        _cart_abandon_pl,
        30,
        (),
    ),
    Workload(
        "variety",
        "count_distinct(product_id) >= 10 (30 d)",
        "count_distinct(product_id) of viewed_product in last 30 days >= 10",
        _variety_sql,
        _variety_pl,
        30,
        ("product_id",),
    ),
    Workload(
        "winback_10_rules",
        "a segment of ten labelled rules",
        WINBACK_DSL,
        _winback_sql,
        _winback_pl,
        180,
        ("category", "amount"),
        ("email", "newsletter", "country", "loyalty_points"),
        universe=True,
    ),
    Workload(
        "dormant",
        "not did anything in last 7 d (universe)",
        "not did anything in last 7 days",
        _dormant_sql,
        _dormant_pl,
        7,
        (),
        universe=True,
        reads_type=False,
    ),
    # Large audiences (a quarter of the contacts and more): the answer's size,
    # the member ids, weighs as much as finding it.
    Workload(
        "browsed_90d",
        "viewed a product in 90 d (large)",
        "did viewed_product in last 90 days",
        _browsed_sql,
        _browsed_pl,
        90,
        (),
    ),
    Workload(
        "no_purchase_30d",
        "no purchase in 30 d (universe, large)",
        "not did purchased in last 30 days",
        _no_purchase_sql,
        _no_purchase_pl,
        30,
        (),
        universe=True,
    ),
)

BY_KEY = {w.key: w for w in WORKLOADS}


def _fresh_sql(t: Times) -> str:
    return f"""
SELECT cid FROM events
WHERE type = 'viewed_product' AND category = 'accessories' AND price > 80 AND {t.last(21)}
  AND cid IN (SELECT cid FROM profiles WHERE country = 'FR')
GROUP BY cid HAVING count(*) >= 1
EXCEPT
SELECT cid FROM events WHERE type = 'purchased' AND {t.last(21)}"""


def _fresh_pl(f: Frames, t: Times) -> pl.LazyFrame:
    w = f.last(t, 21)
    fr = f.profiles.lazy().filter(pl.col("country") == "FR").select("cid")
    views = w.filter(
        _type("viewed_product") & (pl.col("category") == "accessories") & (pl.col("price") > 80)
    )
    return _minus(_inter(_count_cmp(views, pl.len() >= 1), fr), w.filter(_type("purchased")))


# Run only for the "first evaluation of a never-seen text" measurement, after
# the others, so that no cache of any engine has seen it.
FRESH = Workload(
    "fresh_text",
    "a never-seen segment text",
    'did viewed_product where (category = "accessories" and price > 80)'
    ' in last 21 days and not did purchased in last 21 days and country = "FR"',
    _fresh_sql,
    _fresh_pl,
    21,
    ("category", "price"),
    ("country",),
    universe=True,
)
