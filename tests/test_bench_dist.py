"""benchmarks.bench_dist end to end at a tiny size (the structure and the
arithmetic of its tables and picture, never the timings): real local
clusters of worker processes, as the benchmark starts them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("distributed")
pytest.importorskip("matplotlib")

from benchmarks import bench_dist
from benchmarks.dist_plot import plain_speed_ups, speed_ups
from benchmarks.peers.workloads import WORKLOADS

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_tiny_run_writes_its_tables_and_its_picture(tmp_path: Path) -> None:
    out = tmp_path / "results" / "dist"
    bench_dist.main(
        [
            "--events", "20k", "--per-shard", "4k", "--reps", "2", "--kernel-threads", "1",
            "--work", str(tmp_path / "stores"), "--data-dir", str(tmp_path / "data"),
            "--out", str(out), "--ceiling-gib", "0.01",
        ]
    )  # fmt: skip
    result = json.loads(out.with_suffix(".json").read_text())
    strong, weak = result["strong"], result["weak"]
    keys = [w.key for w in WORKLOADS]
    configs = ("workers_1", "workers_2", "one_shard_1_worker", "one_shard_1_worker_tasks")
    for config in configs:
        assert list(strong[config]) == keys
        for row in strong[config].values():
            assert row["fallbacks"] == 0  # every query answered the way it was asked
            assert row["total_ms"] >= row["busiest_worker_ms"] > 0
    # 2 shards on each 2-shard configuration, 1 on the others
    assert all(len(r["shards_ms"]) == 2 for r in strong["workers_2"].values())
    assert all(len(r["shards_ms"]) == 1 for r in strong["one_shard_1_worker"].values())
    assert set(strong["ceiling"]) == {"scan", "compute"}
    assert [k for k in weak if k.startswith("shards_")] == [
        "shards_1",
        "shards_2",
        "shards_4",
        "shards_8",
    ]

    # the speed-ups: 2 workers over the faster 1-worker configuration, and
    # over the same 2 shards on 1 worker; the geometric mean the table prints
    ups = speed_ups(strong)
    for key, (best, same) in ups.items():
        two = strong["workers_2"][key]["total_ms"]
        one = min(
            strong["workers_1"][key]["total_ms"], strong["one_shard_1_worker"][key]["total_ms"]
        )
        assert best == pytest.approx(one / two)
        assert same == pytest.approx(strong["workers_1"][key]["total_ms"] / two)
        assert best <= same
    text = out.with_suffix(".md").read_text()
    geomean = math.exp(sum(math.log(b) for b, _ in ups.values()) / len(ups))
    assert f"Geometric mean of the speed-ups: {geomean:.2f}x over the best 1 worker" in text
    assert "## Weak scaling: 4k events per shard, 2 workers" in text
    assert "What two processes gained over one" in text

    # the plain processes: every shard evaluated, by as many processes as
    # asked (with 2 repetitions a median is a mean: one process's busiest
    # time is the sum of its shards', two processes' at least the slower's)
    for config, shards in (("plain_one_shard_1", 1), ("plain_1", 2), ("plain_2", 2)):
        for row in strong[config].values():
            assert len(row["shards_ms"]) == shards
            if config == "plain_2":
                assert row["busiest_worker_ms"] >= max(row["shards_ms"]) - 1e-9
                assert row["busiest_worker_ms"] < sum(row["shards_ms"])
            else:
                assert row["busiest_worker_ms"] == pytest.approx(sum(row["shards_ms"]))
    plain = plain_speed_ups(strong)
    assert list(plain) == keys
    for key, up in plain.items():
        one = min(
            strong["plain_one_shard_1"][key]["busiest_worker_ms"],
            strong["plain_1"][key]["busiest_worker_ms"],
        )
        assert up == pytest.approx(one / strong["plain_2"][key]["busiest_worker_ms"])
    geomean = math.exp(sum(math.log(u) for u in plain.values()) / len(plain))
    assert "### What the machine allowed each workload" in text
    assert f"Geometric mean: {geomean:.2f}x" in text

    picture = out.with_suffix(".png")
    assert picture.read_bytes()[:8] == PNG
    # redrawn from the JSON alone
    picture.unlink()
    bench_dist.main(["--plot-from", str(out.with_suffix(".json"))])
    assert picture.read_bytes()[:8] == PNG
