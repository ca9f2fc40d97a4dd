"""Segments over contact shards on a local Dask cluster: what the cluster
costs and what it gains.

- strong scaling: the peer workloads over the same N events held as two
  shards, answered by 1 worker (both shards) and by 2 workers (a shard
  each), both clusters up at once and their queries taking turns; the same
  events as one shard on 1 worker, and the best of the two 1-worker
  configurations, which the 1.7x target (issue 17) reads; the one-store path
  (one shard, in this process, on as many kernel threads as a worker)
  beside them;
- the cluster's overhead: a query's time minus the time its busiest worker
  spent on its shards, minus the merge (the calls, the transfer), on each
  configuration's direct path (the workers called over their channels,
  plain sockets) and on the task path (a task per worker through the
  scheduler, the fallback when a call fails); and the empty
  round trip of each (an empty call, an empty task, per worker holding
  shards);
- weak scaling: the same events per shard, 1 to 8 shards: each shard's time
  inside its worker, the merge and the scheduling, and the projected time
  on a cluster of N machines with a shard each (slowest shard + merge +
  scheduling).

    python -m benchmarks.bench_dist --events 10M --per-shard 1M

writes benchmarks/results/dist.md, dist.json and dist.png (``--out`` elsewhere;
``--parts strong`` or ``weak`` for one part).  The machine may be shared:
the table says how loaded it was.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from audience.demo.shop import DEFAULT_NOW
from audience.dist import ClusterStore, LocalOptions, QueryTimes, connect
from audience.runtime.node import Node, ShardedNode
from audience.runtime.shards import open_shard
from audience.schema import Schema
from benchmarks.dist_plain import PlainProcesses
from benchmarks.dist_plot import PLAIN, plain_speed_ups, plot, speed_ups, weak_summary
from benchmarks.peers.data import DATA_DIR, dataset, parse_size, size_label
from benchmarks.peers.ours import SCHEMA_PATH, now_ms
from benchmarks.peers.workloads import WORKLOADS, Times

RESULTS = Path(__file__).resolve().parent / "results"
WEAK_SHARDS = (1, 2, 4, 8)


def _median_ms(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _build(root: Path, shards: int, n_events: int, data_dir: Path = DATA_DIR) -> ShardedNode:
    """The store kept in ``root``, or made there from the dataset (generated
    only then: a kept store needs no dataset)."""
    if root.is_dir():
        return ShardedNode.open(root)
    ds = dataset(n_events, data_dir=data_dir)
    store = ShardedNode.init(root, Schema.load(SCHEMA_PATH), shards=shards)
    store.ingest_profiles(ds.profiles)
    store.ingest_events(ds.events)  # read from the file in batches
    return store


@contextmanager
def _cluster(workers: int, memory: str, kernel_threads: int | None = None) -> Iterator[Any]:
    threads = kernel_threads or max(1, (os.cpu_count() or 1) // workers)
    options = LocalOptions(workers=workers, memory_limit=memory, kernel_threads=threads)
    client, local = connect("local", options)
    try:
        yield client
    finally:
        client.close()
        if local is not None:
            local.close()


def _queries(
    stores: dict[str, Any], at: int, reps: int, refs: Any = None
) -> dict[str, dict[str, Any]]:
    """Per store and workload: the median total, slowest shard, merge and
    overhead (ms), and how many queries had a direct call fail (0 on a
    healthy cluster).  Each repetition runs every workload once on every
    store, the stores taking turns: a workload's repetitions are spread over
    the whole run, and a load (or a slow core) coming and going on a shared
    machine weighs on every store alike."""
    programs = {
        w.key: {name: s.sharded.compile_program(w.dsl) for name, s in stores.items()}
        for w in WORKLOADS
    }
    for w in WORKLOADS:
        for name, store in stores.items():
            store.run(programs[w.key][name], at, refs)  # opens the shards, loads the tables
    runs: dict[str, dict[str, list[QueryTimes]]] = {
        name: {w.key: [] for w in WORKLOADS} for name in stores
    }
    for _ in range(reps):
        for w in WORKLOADS:
            for name, store in stores.items():
                runs[name][w.key].append(store.run(programs[w.key][name], at, refs)[1])
    return {name: {w.key: _summary(runs[name][w.key]) for w in WORKLOADS} for name in stores}


def _summary(runs: list[QueryTimes]) -> dict[str, Any]:
    return {
        "total_ms": statistics.median(r.total_ms for r in runs),
        "slowest_shard_ms": statistics.median(max(r.shards_ms) for r in runs),
        "busiest_worker_ms": statistics.median(r.busiest_worker_ms for r in runs),
        "shards_ms": [statistics.median(s) for s in zip(*(r.shards_ms for r in runs), strict=True)],
        "merge_ms": statistics.median(r.merge_ms for r in runs),
        "overhead_ms": statistics.median(r.overhead_ms for r in runs),
        "fallbacks": sum(1 for r in runs if r.failures),
    }


def _one_store_ms(
    one: ShardedNode, at: int, reps: int, threads: int | None = None
) -> dict[str, float]:
    """Per workload, the one-store path: the only shard evaluated in this
    process (on ``threads`` kernel threads, as a worker's, when given)."""
    if threads is not None:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    store = Node(open_shard(one.refs()[0]))
    snap = store.snapshot()
    out: dict[str, float] = {}
    for w in WORKLOADS:
        seg = store.compile(w.dsl).compiled
        seg.evaluate(snap, at)
        out[w.key] = _median_ms(partial(_ids, seg, snap, at), reps)
    return out


def _ids(seg: Any, snap: Any, at: int) -> Any:
    return seg.evaluate(snap, at).id_array()


def strong(args: argparse.Namespace, work: Path, t: Times, progress: Progress) -> dict[str, Any]:
    n_events = parse_size(args.events)
    task = progress.add_task(f"strong scaling, {size_label(n_events)} events: ingest", total=4)
    one = _build(work / f"one-{n_events}", 1, n_events, args.data_dir)
    two = _build(work / f"two-{n_events}", 2, n_events, args.data_dir)
    at = now_ms(t)
    progress.update(task, advance=1, description="strong scaling: the one-store path")
    local = _one_store_ms(one, at, args.reps, args.kernel_threads)
    out: dict[str, Any] = {"events": n_events, "one_store": local}
    progress.update(task, advance=1, description="strong scaling: 1 and 2 workers, in turn")
    # both clusters up at once (the idle one's workers only wait), their
    # queries taking turns: the ratio of 1 to 2 workers then holds when the
    # machine's load moves during the run
    threads = args.kernel_threads
    with (
        _cluster(1, args.memory, threads) as one_worker,
        _cluster(2, args.memory, threads) as two_workers,
        PlainProcesses(one, [[0]], threads) as plain_one,
        PlainProcesses(two, [[0, 1]], threads) as plain_1,
        PlainProcesses(two, [[0], [1]], threads) as plain_2,
    ):
        direct = ClusterStore(one, one_worker)
        stores: dict[str, Any] = {
            "workers_1": ClusterStore(two, one_worker),
            "workers_2": ClusterStore(two, two_workers),
            "one_shard_1_worker": direct,
            "one_shard_1_worker_tasks": ClusterStore(one, one_worker, direct=False),
            # the same shards' evaluation without a cluster (dist_plain.py)
            "plain_one_shard_1": plain_one,
            "plain_1": plain_1,
            "plain_2": plain_2,
        }
        out.update(_queries(stores, at, args.reps))
        out["round_trip_ms"] = _median_ms(direct.round_trip_ms, 20)
        out["task_round_trip_ms"] = _median_ms(direct.task_round_trip_ms, 20)
    progress.update(task, advance=2)
    out["ceiling"] = ceiling(gib=args.ceiling_gib)
    return out


def ceiling(rounds: int = 3, gib: float = 0.5) -> dict[str, float]:
    """What two processes gain over one on this machine now, before any
    cluster cost: the median ratio of their rates, over ``rounds``, for
    scans (memory) and for compute (cores alone); see
    benchmarks/bench_scaling_ceiling.py."""
    from benchmarks.bench_scaling_ceiling import KINDS, rates

    out = {}
    for kind in KINDS:
        ratios = [two / one for one, two in (rates(kind, gib) for _ in range(rounds))]
        out[kind] = statistics.median(ratios)
    return out


def weak(args: argparse.Namespace, work: Path, t: Times, progress: Progress) -> dict[str, Any]:
    per = parse_size(args.per_shard)
    top = max(WEAK_SHARDS)
    task = progress.add_task(
        f"weak scaling, {size_label(per)} events per shard: ingest", total=len(WEAK_SHARDS) + 1
    )
    sharded = _build(work / f"weak-{per}x{top}", top, per * top, args.data_dir)
    progress.update(task, advance=1)
    at = now_ms(t)
    out: dict[str, Any] = {"events_per_shard": per}
    with _cluster(2, args.memory, args.kernel_threads) as client:
        store = ClusterStore(sharded, client)
        for n in WEAK_SHARDS:
            progress.update(task, description=f"weak scaling: {n} shard(s)")
            refs = sharded.refs()[:n]
            out[f"shards_{n}"] = _queries({"q": store}, at, args.reps, refs)["q"]
            row = out[f"shards_{n}"]
            row["round_trip_ms"] = _median_ms(partial(store.round_trip_ms, refs), 20)
            row["task_round_trip_ms"] = _median_ms(partial(store.task_round_trip_ms, refs), 20)
            progress.update(task, advance=1)
    return out


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def best_one_worker(s: dict[str, Any], key: str) -> tuple[float, str]:
    """The faster of the two 1-worker configurations for a workload (ms) and its name."""
    one, two = s["one_shard_1_worker"][key]["total_ms"], s["workers_1"][key]["total_ms"]
    return (one, "1 shard") if one <= two else (two, "2 shards")


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else float("nan")


def strong_lines(s: dict[str, Any], threads: int | None) -> list[str]:
    """The strong-scaling table, its speed-ups and the cluster's cost per query."""
    threads_text = (
        f"A worker's kernels run on {threads} thread(s): each worker stands for a one-core "
        "machine; the one-store path runs on as many."
        if threads
        else "A worker's kernels run on (cores / workers) threads: one worker already "
        "uses every core of this machine, so two workers gain only what one worker's "
        "serial parts and scheduling leave on the table."
    )
    lines = [
        threads_text,
        "",
        f"## Strong scaling: {size_label(s['events'])} events",
        "",
        "| workload | one store, in process | 1 worker, 1 shard | 1 worker, 2 shards "
        "| best 1 worker | 2 workers, 2 shards | speed-up over 1 worker, 2 shards "
        "| **speed-up over the best 1 worker** |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ups = speed_ups(s)
    best = [ups[w.key][0] for w in WORKLOADS]
    same = [ups[w.key][1] for w in WORKLOADS]
    for w, b, m in zip(WORKLOADS, best, same, strict=True):
        one, w1, w2 = s["one_shard_1_worker"][w.key], s["workers_1"][w.key], s["workers_2"][w.key]
        top, which = best_one_worker(s, w.key)
        lines.append(
            f"| {w.key} | {s['one_store'][w.key]:.1f} | {one['total_ms']:.1f} "
            f"| {w1['total_ms']:.1f} | {top:.1f} ({which}) | {w2['total_ms']:.1f} "
            f"| {m:.2f}x | **{b:.2f}x** |"
        )
    lines += [
        "",
        "ms, the median of the repetitions; every configuration over the same events. "
        "The target of issue 17, 2 workers at least 1.7x faster than 1, reads the last "
        "column: 2 workers (a shard each) against the faster of the two 1-worker "
        "configurations (the events as one shard, or as the same 2 shards one after the "
        "other), so that splitting the data gains nothing by itself. "
        f"Geometric mean of the speed-ups: {_geomean(best):.2f}x over the best 1 worker "
        f"({sum(b >= 1.7 for b in best)} of {len(best)} workloads at 1.7x or more), "
        f"{_geomean(same):.2f}x over 1 worker with the same 2 shards "
        f"({sum(x >= 1.7 for x in same)} of {len(same)}).",
        "",
        *plain_lines(s, best),
        "### The cluster's own cost per query",
        "",
        "| workload | 1 worker, 1 shard | 1 worker, 2 shards | 2 workers, 2 shards "
        "| task path: 1 worker, 1 shard | task path: its cost |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for w in WORKLOADS:
        one, w1, w2 = s["one_shard_1_worker"][w.key], s["workers_1"][w.key], s["workers_2"][w.key]
        tasks = s["one_shard_1_worker_tasks"][w.key]
        lines.append(
            f"| {w.key} | {one['overhead_ms']:.1f} | {w1['overhead_ms']:.1f} "
            f"| {w2['overhead_ms']:.1f} | {tasks['total_ms']:.1f} | {tasks['overhead_ms']:.1f} |"
        )
    fallbacks = sum(
        row[w.key]["fallbacks"]
        for row in (s["one_shard_1_worker"], s["workers_1"], s["workers_2"])
        for w in WORKLOADS
    )
    lines += [
        "",
        "ms, the median of the repetitions: a query's time on the cluster minus the time "
        "its busiest worker spent on its shards (one after the other) minus the merge "
        "(the calls, the program out and the members' ids back). The queries call the "
        "workers directly, over their channels; the task path (a task per worker through "
        "the scheduler) is what a query falls back to when a call fails. "
        f"Empty round trip to one worker: {s['round_trip_ms']:.2f} ms direct, "
        f"{s['task_round_trip_ms']:.1f} ms by a task. "
        f"Queries that fell back to the task path: {fallbacks}.",
        "",
    ]
    if "ceiling" in s:
        lines += [
            "What two processes gained over one on this machine in this run, before any "
            "cluster cost (each alone, then both at once; median of 3 rounds): "
            f"{s['ceiling']['scan']:.2f}x on scans of memory, "
            f"{s['ceiling']['compute']:.2f}x on compute in cache "
            "(`python -m benchmarks.bench_scaling_ceiling`).",
            "",
        ]
    return lines


def plain_lines(s: dict[str, Any], cluster: list[float]) -> list[str]:
    """What two plain processes gained over one on each workload (the most
    a cluster of 2 workers could), beside what the cluster gained
    (``cluster``, in workload order)."""
    plain = plain_speed_ups(s)
    if not plain:
        return []
    lines = [
        "### What the machine allowed each workload: plain processes, no cluster",
        "",
        "| workload | 1 process, 1 shard | 1 process, 2 shards | 2 processes, a shard each "
        "| **their speed-up** | the cluster's speed-up | the cluster's share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    ups = [plain[w.key] for w in WORKLOADS]
    for w, up, got in zip(WORKLOADS, ups, cluster, strict=True):
        one, w1, w2 = (s[name][w.key]["busiest_worker_ms"] for name in PLAIN)
        lines.append(
            f"| {w.key} | {one:.1f} | {w1:.1f} | {w2:.1f} | **{up:.2f}x** | {got:.2f}x "
            f"| {got / up * 100:.0f}% |"
        )
    lines += [
        "",
        "ms, the median of the repetitions, taken in turn with the cluster's queries: the "
        "busiest process's evaluation of its shards, as a worker evaluates them (the same "
        "function, kernel threads and memory settings), its program sent over a pipe and "
        "nothing sent back but the times: no ids travel, nothing is merged. Two such "
        "processes against the faster one-process configuration is the most two workers "
        "could gain on that workload on this machine in this run. "
        f"Geometric mean: {_geomean(ups):.2f}x ({sum(u >= 1.7 for u in ups)} of {len(ups)} "
        "workloads at 1.7x or more). The cluster's share: its speed-up over theirs.",
        "",
    ]
    return lines


def weak_lines(weak: dict[str, Any]) -> list[str]:
    lines = [
        f"## Weak scaling: {size_label(weak['events_per_shard'])} events per shard, 2 workers",
        "",
        "| shards | slowest shard (median over workloads) | merge | overhead "
        "| empty round trip | empty task | total | projected on N machines |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, f in weak_summary(weak).items():
        lines.append(
            f"| {n} | {f['slowest_shard']:.1f} | {f['merge']:.2f} | {f['overhead']:.1f} "
            f"| {f['round_trip']:.2f} | {f['task_round_trip']:.1f} | {f['total']:.1f} "
            f"| {f['projected']:.1f} |"
        )
    lines += [
        "",
        "Projected: a cluster with a shard per machine answers in the slowest shard's time "
        "plus the merge plus one empty direct round trip to that many workers; on this 2-core "
        "machine the shards beyond two wait for a core, so the measured total grows "
        "while the projection does not.",
        "",
    ]
    return lines


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Segments over shards on a local Dask cluster",
        "",
        f"`{result['command']}`, {result['when']}; {result['load']} when it ended "
        "(the benchmark's own processes count in it).",
        "",
    ]
    if "strong" in result:
        lines += strong_lines(result["strong"], result.get("kernel_threads"))
    if "weak" in result:
        lines += weak_lines(result["weak"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", default="10M", help="strong scaling: events in all (e.g. 50M)")
    p.add_argument("--per-shard", default="1M", help="weak scaling: events per shard")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--memory", default="8GiB", help="memory limit per worker")
    p.add_argument(
        "--kernel-threads",
        type=int,
        help="numba threads per worker (default: cores / workers); 1 makes each "
        "worker stand for a one-core machine",
    )
    p.add_argument("--work", type=Path, help="where the stores are kept (default: a temp dir)")
    p.add_argument("--out", type=Path, default=RESULTS / "dist")
    p.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="where the generated events are kept"
    )
    p.add_argument(
        "--ceiling-gib",
        type=float,
        default=0.5,
        help="each scanning process's array when measuring what 2 processes gain over 1",
    )
    p.add_argument(
        "--plot-from",
        type=Path,
        help="only draw the picture of an earlier run's JSON (beside it, as .png)",
    )
    p.add_argument(
        "--parts",
        default="strong,weak",
        help="which parts to run: strong, weak or both (comma-separated)",
    )
    args = p.parse_args(argv)
    if args.plot_from is not None:
        result = json.loads(args.plot_from.read_text())
        print(plot(result, args.plot_from.with_suffix(".png")))
        return
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if not parts or set(parts) - {"strong", "weak"}:
        p.error(f"--parts: strong, weak or both, not {args.parts!r}")
    t = Times.from_iso(DEFAULT_NOW.isoformat())
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="audience-dist-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            result: dict[str, Any] = {
                "command": "python -m benchmarks.bench_dist "
                f"--events {args.events} --per-shard {args.per_shard} --reps {args.reps}"
                + (f" --kernel-threads {args.kernel_threads}" if args.kernel_threads else "")
                + (f" --parts {args.parts}" if parts != ["strong", "weak"] else ""),
                "kernel_threads": args.kernel_threads,
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
            for part, run in (("strong", strong), ("weak", weak)):
                if part in parts:
                    result[part] = run(args, work, t, progress)
            result["load"] = _load()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    args.out.with_suffix(".md").write_text(text)
    plot(result, args.out.with_suffix(".png"))
    console.print(text)


if __name__ == "__main__":
    main()
