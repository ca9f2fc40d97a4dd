"""One measurement in its own process, so that its peak memory is its own.

``python -m benchmarks.peers.worker JOB.json`` runs the job and prints one
JSON line.  The runner sets the thread-count variables (POLARS_MAX_THREADS,
NUMBA_NUM_THREADS) in the environment before the engine is imported.

Memory: Linux's VmRSS/VmHWM of this process (/proc/self/status), which count
native allocations (DuckDB, Polars, numba arrays) that tracemalloc cannot
see.  Writing 5 to /proc/self/clear_refs resets VmHWM, so each workload gets
its own peak: ``peak_bytes`` = VmHWM during its runs minus VmRSS before them.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchmarks.peers.workloads import BY_KEY, FRESH, Times, Workload


# --------------------------------------------------------------------------- memory
def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def rss() -> int:
    return _status()["VmRSS"]


def reset_peak() -> int:
    """Reset the high-water mark; the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # an old kernel: the peak is then the process's, still an upper bound
    return rss()


def peak() -> int:
    return _status()["VmHWM"]


# --------------------------------------------------------------------------- engines
def make_engine(name: str, threads: int, database: str = ":memory:") -> Any:
    if name == "duckdb":
        from benchmarks.peers.duck import DuckEngine

        return DuckEngine(threads, database)
    if name == "polars":
        from benchmarks.peers.polars_engine import PolarsEngine

        return PolarsEngine()
    if name == "ours":
        from benchmarks.peers.ours import OursEngine, unavailable

        if (why := unavailable()) is not None:  # also imports the engine's modules
            raise RuntimeError(f"our engine: {why}")
        return OursEngine()
    raise ValueError(f"unknown engine {name!r}")


def _write_ids(path: Path, ids: set[str]) -> None:
    path.write_text("\n".join(sorted(ids)), encoding="utf-8")


WARM_S = 1.0


def _time_workload(
    engine: Any, w: Workload, t: Times, repeat: int, ids_dir: Path, start: int
) -> dict[str, Any]:
    """``start``: the process's RSS before loading (after its imports)."""
    base = reset_peak()
    t0 = time.perf_counter()
    run: Callable[[], Any] = engine.prepare(w, t)
    prepare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = run()  # the warm-up, timed apart as the first evaluation
    first_s = time.perf_counter() - t0
    # Then untimed runs for at least WARM_S: this VM runs a thread at about
    # half speed for its first seconds of steady work (a millisecond query
    # repeated from idle: 0.8 ms, then 0.5 ms after 4 s), which would time a
    # fast engine's runs on a CPU a slow engine's runs never see.
    while time.perf_counter() - t0 < WARM_S:
        run()
    # What is alive after the warm-up (data, plans, loaded kernels) lives as
    # long as the process, as in a service: frozen, the collection before each
    # run (so that no run pays a collector pause) walks only what the runs made
    # instead of every object the process holds (tens of ms in our process,
    # which evicts the CPU caches the run then starts with).
    gc.collect()
    gc.freeze()
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        again = run()
        times.append(time.perf_counter() - t0)
        if len(again) != len(first):  # SPEC 3.2: same data, same now, same contacts
            raise RuntimeError(f"{engine.name} {w.key}: {len(again)} contacts, first {len(first)}")
    peak_bytes = max(0, peak() - base)
    ids = engine.ids(first)
    _write_ids(ids_dir / f"{w.key}.{engine.name}.txt", ids)
    return {
        "workload": w.key,
        "audience": len(ids),
        "prepare_s": prepare_s,
        "first_s": first_s,
        "times": times,
        "median_s": statistics.median(times),
        "peak_bytes": peak_bytes,
        # everything resident at the peak: the loaded data (or the pages of
        # our memory-mapped store the runs touched) plus the runs' own memory
        "peak_rss_bytes": max(0, peak() - start),
    }


def run_engine(job: dict[str, Any]) -> dict[str, Any]:
    """Load, then every workload: one warm-up and ``repeat`` timed runs each;
    last the never-seen text, once (its first evaluation in a warm process)."""
    engine = make_engine(job["engine"], job["threads"])
    base = rss()  # after the engine's imports: "data in RAM" is the data
    t = Times.from_iso(job["now"])
    ids_dir = Path(job["ids_dir"])
    t0 = time.perf_counter()
    engine.load(Path(job["events"]), Path(job["profiles"]))
    load_s = time.perf_counter() - t0
    gc.collect()
    # Arrow's allocator keeps freed buffers (the Parquet read) for reuse; give
    # them back so that "data in RAM" is the engine's data, not the read's.
    pa.default_memory_pool().release_unused()
    rss_bytes = rss() - base
    load_peak = peak() - base
    results = [
        _time_workload(engine, BY_KEY[k], t, job["repeat"], ids_dir, base) for k in job["workloads"]
    ]
    t0 = time.perf_counter()
    fresh = engine.prepare(FRESH, t)()
    fresh_s = time.perf_counter() - t0
    _write_ids(ids_dir / f"{FRESH.key}.{engine.name}.txt", engine.ids(fresh))
    return {
        "engine": engine.name,
        "load_s": load_s,
        "rss_bytes": rss_bytes,
        "data_bytes": engine.data_bytes(),
        "load_peak_bytes": load_peak,
        "workloads": results,
        "fresh_warm_s": fresh_s,
    }


# --------------------------------------------------------------------------- ingest
def run_ingest(job: dict[str, Any]) -> dict[str, Any]:
    """Parquet -> a durable on-disk store (ours, or a DuckDB database file)."""
    base = rss()
    out = Path(job["target"])
    events, profiles = Path(job["events"]), Path(job["profiles"])
    t0 = time.perf_counter()
    if job["kind"] == "ours":
        from benchmarks.peers.ours import ingest

        n = ingest(out, events, profiles)
    elif job["kind"] == "duckdb_ctas":
        import duckdb

        con = duckdb.connect(str(out))
        con.execute(f"PRAGMA threads={int(job['threads'])}")
        for name, src in (("events", events), ("profiles", profiles)):
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet(?)", [str(src)])
        con.execute("CHECKPOINT")
        row = con.execute("SELECT count(*) FROM events").fetchone()
        n = int(row[0]) if row else 0
        con.close()
    elif job["kind"] == "duckdb_load":
        engine = make_engine("duckdb", job["threads"], str(out))
        engine.load(events, profiles)
        engine.con.execute("CHECKPOINT")
        row = engine.con.execute("SELECT count(*) FROM events").fetchone()
        n = int(row[0]) if row else 0
        engine.close()
    else:
        raise ValueError(f"unknown ingest kind {job['kind']!r}")
    return {
        "kind": job["kind"],
        "seconds": time.perf_counter() - t0,
        "events": n,
        "peak_bytes": peak() - base,
    }


def run_cold(job: dict[str, Any]) -> dict[str, Any]:
    """A new process: open the on-disk store and evaluate the never-seen text."""
    t = Times.from_iso(job["now"])
    t0 = time.perf_counter()
    if job["engine"] == "ours":
        engine = make_engine("ours", job["threads"])
        engine.open(Path(job["store"]))
    else:
        engine = make_engine("duckdb", job["threads"], job["store"])
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = engine.prepare(FRESH, t)()
    eval_s = time.perf_counter() - t0
    ids = engine.ids(result)
    _write_ids(Path(job["ids_dir"]) / f"{FRESH.key}.{engine.name}.cold.txt", ids)
    return {"engine": job["engine"], "open_s": open_s, "first_eval_s": eval_s}


def main(argv: list[str]) -> int:
    t_start = time.perf_counter()
    job = json.loads(Path(argv[0]).read_text())
    mode = job["mode"]
    run = {"engine": run_engine, "ingest": run_ingest, "cold": run_cold}[mode]
    out = run(job)
    out["process_s"] = time.perf_counter() - t_start
    out["pid"] = os.getpid()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
