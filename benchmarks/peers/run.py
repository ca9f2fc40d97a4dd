"""The peer benchmark: ``python -m benchmarks.peers.run --sizes 1M,10M --repeat 5 --threads 2``.

Every run of every engine is the whole answer a user gets: the audience's
contact ids as an Arrow table.  For each size and shape of shop (data.py:
``shop``, few contacts with many events and string ids; ``wide``, millions of
contacts with few events, integer ids, no event ids): generate (or reuse)
the shop, run every engine in its own process (load, then each workload: a
warm-up and ``--repeat`` timed runs), check that all engines returned the
same contacts for every workload (a mismatch stops the run before any time is
reported), then measure ingest from
Parquet and the first evaluation of a never-seen text in a new process.
Results go to ``benchmarks/results/peers.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from audience.demo.shop import DEFAULT_NOW
from benchmarks.peers import bandwidth, report
from benchmarks.peers.data import DATA_DIR, SHAPES, Dataset, dataset, parse_size
from benchmarks.peers.ours import unavailable
from benchmarks.peers.workloads import BY_KEY, FRESH, WORKLOADS, Times

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
ENGINES = ("ours", "duckdb", "polars")


class Mismatch(Exception):
    """Engines disagree on an audience: no time is worth reporting."""


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers.run", description=__doc__)
    p.add_argument("--sizes", default="1M", help="event counts, e.g. 1M,10M,50M (default 1M)")
    p.add_argument(
        "--shapes", default=",".join(SHAPES), help=f"shapes of shop (default {','.join(SHAPES)})"
    )
    p.add_argument("--repeat", type=int, default=5, help="timed runs after the warm-up (>= 5)")
    p.add_argument("--threads", type=int, default=2, help="threads per engine (default 2)")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--workloads", default=",".join(w.key for w in WORKLOADS))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--now", default=DEFAULT_NOW.isoformat(), help="evaluation time (ISO 8601)")
    p.add_argument("--no-ingest", action="store_true", help="skip ingest and new-process runs")
    p.add_argument("--bandwidth-gb", type=float, default=2.0)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--data-dir", type=Path, default=DATA_DIR, help="the Parquet cache")
    args = p.parse_args(argv)
    if args.repeat < 5:
        p.error("--repeat must be at least 5")
    for what, given, known in (
        ("workloads", args.workloads, BY_KEY),
        ("engines", args.engines, ENGINES),
        ("shapes", args.shapes, SHAPES),
    ):
        unknown = set(given.split(",")) - set(known)
        if unknown:
            p.error(f"unknown {what}: {', '.join(sorted(unknown))}")
    return args


# --------------------------------------------------------------------------- subprocesses
def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    n = str(threads)
    env.update(POLARS_MAX_THREADS=n, NUMBA_NUM_THREADS=n, OMP_NUM_THREADS=n)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _worker(job: dict[str, Any], threads: int, scratch: Path) -> dict[str, Any]:
    path = scratch / f"job-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(job))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.peers.worker", str(path)],
        cwd=ROOT,
        env=_env(threads),
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise RuntimeError(
            f"worker {job.get('mode')}/{job.get('engine', job.get('kind'))} "
            f"failed (exit {proc.returncode}):\n{tail}"
        )
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


def _precompile_ours() -> None:
    """Our package's bytecode, written before a new-process measurement.  A
    user's process finds it (written by a pip install, or by a first run),
    while with PYTHONDONTWRITEBYTECODE set and an editable install every
    process would compile ~95 of our modules from source (~0.3 s): not what a
    user pays."""
    import audience

    pkg = Path(audience.__file__).resolve().parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(pkg)], check=True)


# --------------------------------------------------------------------------- checks
def _read_ids(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return set(text.split("\n")) if text else set()


def _diff(key: str, name_a: str, a: set[str], name_b: str, b: set[str]) -> str:
    only_a, only_b = sorted(a - b), sorted(b - a)
    return (
        f"{key}: {name_a} has {len(a)}, {name_b} has {len(b)}; "
        f"only in {name_a}: {len(only_a)} {only_a[:5]}; "
        f"only in {name_b}: {len(only_b)} {only_b[:5]}"
    )


def compare(ids_dir: Path, keys: list[str], engines: list[str]) -> list[str]:
    """A line per disagreement with DuckDB (or the first engine): workload,
    engines, counts and a few of the differing contact ids."""
    ref = "duckdb" if "duckdb" in engines else engines[0]
    problems = []
    for key in keys:
        sets = {e: _read_ids(ids_dir / f"{key}.{e}.txt") for e in engines}
        problems += [
            _diff(key, ref, sets[ref], e, sets[e]) for e in engines if sets[e] != sets[ref]
        ]
    return problems


# --------------------------------------------------------------------------- one size
def _bounds(ds: Dataset, now_ms: int, bps: float, keys: list[str]) -> dict[str, Any]:
    ts = pq.read_table(ds.events, columns=["ts"]).column("ts").cast("int64").to_numpy()
    if not np.all(ts[1:] >= ts[:-1]):
        raise ValueError(f"{ds.events}: events are not in time order")
    out = {}
    for key in [*keys, FRESH.key]:
        w = FRESH if key == FRESH.key else BY_KEY[key]
        b = bandwidth.lower_bound(w, ts, now_ms, ds.n_contacts, bps)
        out[key] = {"bytes": b.bytes, "seconds": b.seconds}
    return out


def run_size(
    ds: Dataset,
    args: argparse.Namespace,
    engines: list[str],
    keys: list[str],
    scratch: Path,
    progress: Progress,
    bps: float,
) -> dict[str, Any]:
    ids_dir = scratch / f"ids-{ds.label}"
    ids_dir.mkdir()
    base = {
        "events": str(ds.events),
        "profiles": str(ds.profiles),
        "now": args.now,
        "threads": args.threads,
        "ids_dir": str(ids_dir),
    }
    now_ms = int(Times.from_iso(args.now).now.timestamp() * 1000)
    out: dict[str, Any] = {
        "label": ds.label,
        "shape": ds.shape,
        "n_events": ds.n_events,
        "n_contacts": ds.n_contacts,
        "engines": {},
    }
    out["bounds"] = _bounds(ds, now_ms, bps, keys)
    for e in engines:
        task = progress.add_task(f"{ds.label}: {e} (load + {len(keys)} workloads)", total=None)
        job = {**base, "mode": "engine", "engine": e, "repeat": args.repeat, "workloads": keys}
        out["engines"][e] = _worker(job, args.threads, scratch)
        progress.update(task, total=1, completed=1)
    problems = compare(ids_dir, [*keys, FRESH.key], engines)
    if problems:
        raise Mismatch(f"size {ds.label}: engines disagree:\n" + "\n".join(problems))
    if not args.no_ingest:
        out["ingest"], out["cold"] = _ingest_and_cold(ds, args, engines, base, scratch, progress)
    return out


def _ingest_and_cold(
    ds: Dataset,
    args: argparse.Namespace,
    engines: list[str],
    base: dict[str, Any],
    scratch: Path,
    progress: Progress,
) -> tuple[dict[str, Any], dict[str, Any]]:
    kinds = [k for k in ("ours", "duckdb_ctas", "duckdb_load") if k.split("_")[0] in engines]
    ingest: dict[str, Any] = {}
    targets = {}
    for kind in kinds:
        task = progress.add_task(f"{ds.label}: ingest {kind}", total=None)
        target = scratch / f"{kind}-{ds.label}" / ("store" if kind == "ours" else "db.duckdb")
        target.parent.mkdir()
        ingest[kind] = _worker(
            {**base, "mode": "ingest", "kind": kind, "target": str(target)}, args.threads, scratch
        )
        targets[kind] = target
        progress.update(task, total=1, completed=1)
    cold: dict[str, Any] = {}
    for engine, kind in (("ours", "ours"), ("duckdb", "duckdb_load")):
        if kind not in targets:
            continue
        if engine == "ours":
            _precompile_ours()
        task = progress.add_task(f"{ds.label}: new process, never-seen text ({engine})", total=None)
        job = {**base, "mode": "cold", "engine": engine, "store": str(targets[kind])}
        cold[engine] = _worker(job, args.threads, scratch)
        progress.update(task, total=1, completed=1)
        cold_ids = _read_ids(Path(base["ids_dir"]) / f"{FRESH.key}.{engine}.cold.txt")
        warm_ids = _read_ids(Path(base["ids_dir"]) / f"{FRESH.key}.{engine}.txt")
        if cold_ids != warm_ids:
            diff = _diff(FRESH.key, f"{engine} (new process)", cold_ids, engine, warm_ids)
            raise Mismatch(f"size {ds.label}: {diff}")
    for target in targets.values():
        shutil.rmtree(target.parent, ignore_errors=True)
    return ingest, cold


def _meta(args: argparse.Namespace, bps: float, ours_note: str | None) -> dict[str, Any]:
    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "n/a"

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(),
        "versions": {p: version(p) for p in ("audience", "duckdb", "polars", "numpy", "numba")},
        "threads": args.threads,
        "repeat": args.repeat,
        "seed": args.seed,
        "now": args.now,
        "bandwidth_Bps": bps,
        "ours": "ok" if ours_note is None else f"n/a: {ours_note}",
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    console = Console(stderr=True)
    engines = [e for e in args.engines.split(",") if e]
    ours_note = unavailable() if "ours" in engines else None
    if ours_note is not None:
        console.print(f"[yellow]our engine is n/a ({ours_note}); peers only[/]")
        engines.remove("ours")
    keys = args.workloads.split(",")
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    args.data_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="tmp-run-", dir=args.data_dir))
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(f"memory bandwidth ({args.bandwidth_gb:g} GB)", total=None)
            bps = bandwidth.measure(args.threads, args.bandwidth_gb)
            progress.update(task, total=1, completed=1)
            results: dict[str, Any] = {"meta": _meta(args, bps, ours_note), "sizes": []}
            if ours_note is None and "ours" not in engines:
                results["meta"]["ours"] = "not run (--engines)"
            for n in sizes:
                for shape in args.shapes.split(","):
                    what = f"{shape} with {n:,} events (cached Parquet)"
                    task = progress.add_task(what, total=None)
                    ds = dataset(n, args.seed, args.data_dir, shape=shape)
                    progress.update(task, total=1, completed=1)
                    results["sizes"].append(
                        run_size(ds, args, engines, keys, scratch, progress, bps)
                    )
    except Mismatch as exc:
        console.print(f"[bold red]RESULTS DIFFER, nothing reported[/]\n{exc}")
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    paths = report.write(results, args.out)
    console.print(report.summary(results))
    console.print("written: " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
