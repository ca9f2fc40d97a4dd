"""The picture of a bench_dist run (benchmarks/bench_dist.py): the 2-worker
speed-ups per workload against the 1.7x target and against what two plain
processes gained over one on the machine in the same run (on scans of
memory, and on each workload's own evaluation); and weak scaling's measured
and projected times by shard count."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

TARGET = 1.7  # issue 17: 2 workers at least this much faster than 1


def speed_ups(strong: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Per workload: 2 workers over the best 1-worker configuration, and
    over 1 worker with the same 2 shards."""
    out = {}
    for key, two in strong["workers_2"].items():
        one_shard = strong["one_shard_1_worker"][key]["total_ms"]
        same = strong["workers_1"][key]["total_ms"]
        out[key] = (min(one_shard, same) / two["total_ms"], same / two["total_ms"])
    return out


PLAIN = ("plain_one_shard_1", "plain_1", "plain_2")


def plain_speed_ups(strong: dict[str, Any]) -> dict[str, float]:
    """Per workload: what two plain processes, a shard each, gained over the
    faster of one plain process with the events as one shard or as the same
    2 shards (the busiest process's evaluation alone; dist_plain.py); empty
    for a run without them."""
    if not all(name in strong for name in PLAIN):
        return {}
    out = {}
    for key, two in strong["plain_2"].items():
        one = min(strong[name][key]["busiest_worker_ms"] for name in PLAIN[:2])
        out[key] = one / two["busiest_worker_ms"]
    return out


def weak_summary(weak: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Per shard count: the medians over the workloads of the slowest shard,
    the merge, the overhead and the total (ms), the empty round trips, and
    the projection on a machine a shard (slowest shard + merge + one empty
    direct round trip)."""
    out = {}
    for name, row in weak.items():
        if not name.startswith("shards_"):
            continue
        per = [v for v in row.values() if isinstance(v, dict)]
        fig = {f: statistics.median(p[f"{f}_ms"] for p in per) for f in FIELDS}
        fig["round_trip"], fig["task_round_trip"] = row["round_trip_ms"], row["task_round_trip_ms"]
        fig["projected"] = fig["slowest_shard"] + fig["merge"] + fig["round_trip"]
        out[int(name.split("_")[1])] = fig
    return dict(sorted(out.items()))


FIELDS = ("slowest_shard", "merge", "overhead", "total")


def plot(result: dict[str, Any], path: Path) -> Path:
    """Draw ``result`` (bench_dist's JSON) into ``path`` (a PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strong, weak = result.get("strong"), result.get("weak")
    panels = [p for p in (strong, weak) if p is not None]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6.5 * len(panels), 5.8))
    axes = list(axes) if len(panels) > 1 else [axes]
    at = 0
    if strong is not None:
        ax = axes[at]
        at += 1
        ups = speed_ups(strong)
        keys = list(ups)
        ys = range(len(keys))
        ax.barh(
            [y + 0.2 for y in ys], [ups[k][0] for k in keys], 0.4, label="over the best 1 worker"
        )
        ax.barh(
            [y - 0.2 for y in ys],
            [ups[k][1] for k in keys],
            0.4,
            label="over 1 worker, same 2 shards",
        )
        plain = plain_speed_ups(strong)
        if plain:
            ax.scatter(
                [plain[k] for k in keys],
                list(ys),
                marker="|",
                s=160,
                color="black",
                zorder=3,
                label="2 plain processes, no cluster (this run)",
            )
        ax.axvline(TARGET, color="black", linestyle="-", linewidth=1, label=f"target {TARGET}x")
        ceiling = strong.get("ceiling")
        if ceiling:
            ax.axvline(
                ceiling["scan"],
                color="grey",
                linestyle="--",
                linewidth=1,
                label=f"2 processes on scans, this run ({ceiling['scan']:.2f}x)",
            )
        ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_yticks(list(ys), keys, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("speed-up of 2 workers (higher is better)")
        ax.set_title(f"Strong scaling, {strong['events'] / 1e6:.0f}M events", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2)
    if weak is not None:
        ax = axes[at]
        summary = weak_summary(weak)
        shards = list(summary)
        total = [f["total"] for f in summary.values()]
        slow = [f["slowest_shard"] for f in summary.values()]
        projected = [f["projected"] for f in summary.values()]
        ax.plot(shards, total, marker="o", label="measured total (2 cores)")
        ax.plot(shards, projected, marker="o", label="projected: a machine a shard")
        ax.plot(shards, slow, marker="o", linestyle="--", label="slowest shard")
        ax.set_xscale("log", base=2)
        ax.set_xticks(shards, [str(n) for n in shards])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("shards")
        ax.set_ylabel("ms a query, median over the workloads (lower is better)")
        per = weak["events_per_shard"] / 1e6
        ax.set_title(f"Weak scaling, {per:g}M events a shard", fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(f"Segments over shards on a local Dask cluster ({result.get('when', '')})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
