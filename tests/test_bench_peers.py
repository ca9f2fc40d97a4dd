"""The peer benchmark's workloads mean the same thing in every engine.

A small shop (20k events, every fifth profile dropped so that some contacts
are known only through their events) is evaluated at the shop's ``now`` and
20 days earlier (so that events after ``now`` exist and some contacts are not
known yet).  DuckDB, Polars and, when it is importable, our engine must
return the same contacts for every workload; a few semantics-heavy workloads
are also checked against a plain-Python reading of SPEC 3.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("duckdb")
pytest.importorskip("polars")

from audience.demo.shop import DEFAULT_NOW
from benchmarks.peers import bandwidth, ours, run
from benchmarks.peers.data import SHAPES, Dataset, dataset, parse_size, size_label
from benchmarks.peers.duck import DuckEngine
from benchmarks.peers.polars_engine import PolarsEngine
from benchmarks.peers.run import compare
from benchmarks.peers.workloads import BY_KEY, FRESH, WORKLOADS, Times, Workload

NOWS = (DEFAULT_NOW, DEFAULT_NOW - dt.timedelta(days=20))
DAY = 86_400_000
ALL = (*WORKLOADS, FRESH)


@pytest.fixture(scope="module", params=SHAPES)
def shop(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Dataset:
    """Both shapes of shop: string ids and event ids, and the wide one (many
    contacts with few events, int64 contact ids, no event id column)."""
    data = tmp_path_factory.mktemp("data")
    return dataset(20_000, seed=42, data_dir=data, profile_gap=5, shape=request.param)


@pytest.fixture(scope="module")
def engines(shop: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {"duckdb": DuckEngine(threads=2), "polars": PolarsEngine()}
    if ours.unavailable() is None:
        out["ours"] = ours.OursEngine()
    for e in out.values():
        e.load(shop.events, shop.profiles)
    return out


@pytest.fixture(scope="module")
def answers(engines: dict[str, Any]) -> dict[tuple[str, int, str], set[str]]:
    """(workload, index of now, engine) -> the audience's contact ids."""
    out = {}
    for i, now in enumerate(NOWS):
        t = Times(now)
        for w in ALL:
            for name, e in engines.items():
                out[w.key, i, name] = e.ids(e.prepare(w, t)())
    return out


@pytest.mark.parametrize("now_i", range(len(NOWS)))
@pytest.mark.parametrize("w", ALL, ids=lambda w: w.key)
def test_engines_agree(
    answers: dict[tuple[str, int, str], set[str]], engines: dict[str, Any], w: Workload, now_i: int
) -> None:
    ref = answers[w.key, now_i, "duckdb"]
    for name in engines:
        got = answers[w.key, now_i, name]
        assert got == ref, (
            f"{w.key} at {NOWS[now_i]}: {name} differs from duckdb: "
            f"only {name} {sorted(got - ref)[:5]}, only duckdb {sorted(ref - got)[:5]}"
        )


def test_workloads_are_not_trivial(answers: dict[tuple[str, int, str], set[str]]) -> None:
    """An empty audience would agree across engines and prove nothing."""
    for w in ALL:
        sizes = [len(answers[w.key, i, "duckdb"]) for i in range(len(NOWS))]
        assert max(sizes) > 0, f"{w.key} is empty at every now"


def test_some_workloads_have_large_audiences(
    shop: Dataset, answers: dict[tuple[str, int, str], set[str]]
) -> None:
    """The member ids weigh as much as finding them once an audience is big:
    the large workloads hold a quarter of the contacts and more."""
    for key in ("browsed_90d", "no_purchase_30d"):
        assert len(answers[key, 0, "duckdb"]) >= shop.n_contacts / 4, key


def test_the_shapes_differ_as_described(shop: Dataset) -> None:
    schema = pq.read_schema(shop.events)
    if shop.shape == "wide":
        assert "id" not in schema.names and schema.field("contact_id").type == "int64"
        assert shop.n_contacts == 20_000 // 4 and shop.label == "20k-wide"
    else:
        assert "id" in schema.names and schema.field("contact_id").type == "string"
        assert shop.n_contacts == 20_000 // 60 and shop.label == "20k"


def test_every_engine_answers_with_arrow_ids(engines: dict[str, Any]) -> None:
    """A run's result is the whole answer: the member ids as an Arrow table."""
    t = Times(NOWS[0])
    for name, e in engines.items():
        table = e.prepare(BY_KEY["red_shoes"], t)()
        assert isinstance(table, pa.Table), name
        assert table.num_columns == 1 and len(table) == len(e.ids(table)) > 0, name


# --------------------------------------------------------------------------- oracle
def _rows(shop: Dataset) -> tuple[list[dict[str, Any]], set[str]]:
    ev = pq.read_table(shop.events)
    ts = ev.column("ts").cast("int64").to_pylist()
    rows = ev.drop_columns(["ts"]).to_pylist()
    for r, t in zip(rows, ts, strict=True):
        r["ts"] = t
        r["contact_id"] = str(r["contact_id"])  # the wide shop's are integers
    profiled = pq.read_table(shop.profiles, columns=["contact_id"]).column(0).to_pylist()
    return rows, {str(c) for c in profiled}


def _oracle(shop: Dataset, now: dt.datetime) -> dict[str, set[str]]:
    """SPEC 3 read literally, one contact at a time."""
    n = int(now.timestamp() * 1000)
    rows, profiled = _rows(shop)
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["ts"] <= n:  # events after now do not exist
            by[r["contact_id"]].append(r)
    universe = profiled | set(by)

    def last(r: dict[str, Any], days: int) -> bool:
        return bool(n - days * DAY < r["ts"] <= n)

    out: dict[str, set[str]] = defaultdict(set)
    for c in universe:
        evs = by.get(c, [])
        red = any(
            r["type"] == "viewed_product" and r["product_name"] == "Red Shoes" and last(r, 15)
            for r in evs
        )
        if red and not any(r["type"] == "purchased" and last(r, 15) for r in evs):
            out["red_shoes"].add(c)
        buys = [r["ts"] for r in evs if r["type"] == "purchased"]
        if buys and max(buys) < n - 60 * DAY:
            out["lapsed"].add(c)
        for r in evs:
            old_cart = r["type"] == "added_to_cart" and last(r, 30) and r["ts"] <= n - 2 * DAY
            if old_cart and not any(r["ts"] < b <= r["ts"] + 2 * DAY for b in buys):
                out["cart_abandon"].add(c)
        if not any(last(r, 7) for r in evs):
            out["dormant"].add(c)
        if sum(1 for _ in evs) >= 50:
            out["active_50"].add(c)
    return out


@pytest.mark.parametrize("now_i", range(len(NOWS)))
def test_oracle_agrees(
    shop: Dataset, answers: dict[tuple[str, int, str], set[str]], now_i: int
) -> None:
    expected = _oracle(shop, NOWS[now_i])
    for key in ("red_shoes", "lapsed", "cart_abandon", "dormant", "active_50"):
        assert answers[key, now_i, "duckdb"] == expected[key], key


def test_data_exercises_the_universe(shop: Dataset) -> None:
    """Some contacts have no profile, and some of those only events after the
    earlier now: they are outside its universe, which ``dormant`` must see."""
    rows, profiled = _rows(shop)
    early = int(NOWS[1].timestamp() * 1000)
    first: dict[str, int] = {}
    for r in rows:
        first[r["contact_id"]] = min(first.get(r["contact_id"], r["ts"]), r["ts"])
    unprofiled = set(first) - profiled
    assert unprofiled
    assert any(first[c] > early for c in unprofiled)


def test_compare_names_the_workload_and_ids(tmp_path: Path) -> None:
    (tmp_path / "w.ours.txt").write_text("a\nc\nd")
    (tmp_path / "w.duckdb.txt").write_text("a\nb\nc")
    (tmp_path / "w.polars.txt").write_text("a\nb\nc")
    (tmp_path / "v.ours.txt").write_text("")
    (tmp_path / "v.duckdb.txt").write_text("")
    (tmp_path / "v.polars.txt").write_text("")
    problems = compare(tmp_path, ["w", "v"], ["ours", "duckdb", "polars"])
    assert problems == [
        "w: duckdb has 3, ours has 3; only in duckdb: 1 ['b']; only in ours: 1 ['d']"
    ]


def test_engines_count_their_data(engines: dict[str, Any]) -> None:
    sizes = {name: e.data_bytes() for name, e in engines.items()}
    # 20k events of at least ts + contact + type each; well under 100 MB
    assert all(20_000 * 16 <= n < 100 * 2**20 for n in sizes.values()), sizes


def test_run_end_to_end(tmp_path: Path) -> None:
    """The CLI: worker processes, the equality check, the report files."""
    out = tmp_path / "out"
    argv = ["--sizes", "20k", "--engines", "duckdb,polars", "--workloads", "red_shoes,dormant"]
    argv += [
        "--no-ingest",
        "--bandwidth-gb",
        "0.05",
        "--data-dir",
        str(tmp_path),
        "--out",
        str(out),
    ]
    assert run.main(argv) == 0
    results = json.loads((out / "peers.json").read_text())
    assert [(s["label"], s["shape"]) for s in results["sizes"]] == [
        ("20k", "shop"),
        ("20k-wide", "wide"),
    ]
    for size in results["sizes"]:
        for name in ("duckdb", "polars"):
            timed = size["engines"][name]["workloads"]
            assert [w["workload"] for w in timed] == ["red_shoes", "dormant"]
            assert all(len(w["times"]) == 5 and w["median_s"] > 0 for w in timed)
        assert size["bounds"]["dormant"]["bytes"] > 0
    md = (out / "peers.md").read_text()
    assert "| red_shoes |" in md and "| dormant |" in md and "n/a" in md
    assert "## 20k-wide events" in md
    assert (out / "peers.png").stat().st_size > 10_000


def test_the_report_states_the_targets_figures() -> None:
    from benchmarks.peers import report

    def timed(**medians: float) -> dict[str, Any]:
        return {"workloads": [{"workload": k, "median_s": v} for k, v in medians.items()]}

    size = {
        "engines": {
            "ours": timed(a=0.01, b=0.04),
            "duckdb": timed(a=0.1, b=0.1),
            "polars": timed(a=0.05, b=0.2),
        },
        "bounds": {"a": {"seconds": 0.005}, "b": {"seconds": 0.001}},
    }
    # ratios 0.2 and 0.4: geometric mean sqrt(0.08); floors 2x and 40x
    assert report._verdict(size) == [
        "",
        "Ours over the best peer: geometric mean 0.28 (3.5x faster); the closest is b at"
        " 0.40x. Ours over the floor at most 40.0x (b).",
    ]


def test_lower_bound_counts_the_window() -> None:
    day = 86_400_000
    ts = np.arange(0, 100 * day, day // 10, dtype=np.int64)  # 10 events a day for 100 days
    now = 100 * day - 1
    w = BY_KEY["red_shoes"]  # 15 days; ts, contact, type and product_name
    b = bandwidth.lower_bound(w, ts, now, n_contacts=1000, bps=1e9)
    assert b.bytes == 150 * (8 + 4 + 4 + 4) + 1000 * 9  # + the universe per contact
    assert b.seconds == pytest.approx(b.bytes / 1e9)


def test_sizes() -> None:
    assert parse_size("20k") == 20_000
    assert parse_size("1M") == 1_000_000
    assert parse_size("1.5M") == 1_500_000
    assert size_label(50_000_000) == "50M"
    with pytest.raises(ValueError):
        parse_size("lots")
