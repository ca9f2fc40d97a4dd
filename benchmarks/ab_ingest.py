"""Profile ingest A/B: two checkouts and DuckDB, each run in a new process, interleaved.

    python -m benchmarks.ab_ingest --data benchmarks/.data/shop-10000000-seed42-wide \\
        --roots /work/main,/path/to/branch --rounds 5

Each run is the peer harness's ingest step (benchmarks/peers/worker.py,
``run_ingest``) for the profiles file alone: the clock starts before the
engine is imported, as there, and stops once the store (or DuckDB's
``CREATE TABLE AS`` plus ``CHECKPOINT``) is on disk.  The process's CPU time
is reported beside the wall time: on a machine other work shares, it moves
less.  Rounds alternate the runs, so a slower minute of the machine falls on
all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# One run, in its own process: ROOT KIND PROFILES TARGET -> one JSON line.
_RUN = """
import json, resource, sys, time
root, kind, profiles, target = sys.argv[1:5]
sys.path.insert(0, root)
import benchmarks.peers.worker  # what the worker imports before its clock starts
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
if kind == "ours":
    from audience.runtime.store import Store
    from audience.schema import Schema
    from benchmarks.peers.ours import SCHEMA_PATH
    Store.init(target, Schema.load(SCHEMA_PATH)).ingest_profiles(profiles)
else:
    import duckdb
    con = duckdb.connect(target + ".duckdb")
    con.execute("PRAGMA threads=2")
    con.execute("CREATE TABLE profiles AS SELECT * FROM read_parquet(?)", [profiles])
    con.execute("CHECKPOINT")
    con.close()
wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
print(json.dumps({"wall_s": wall, "cpu_s": cpu}))
"""


def _run(root: str, kind: str, profiles: Path) -> dict[str, float]:
    env = dict(os.environ, NUMBA_NUM_THREADS="2", POLARS_MAX_THREADS="2", OMP_NUM_THREADS="2")
    with tempfile.TemporaryDirectory(prefix="ab-ingest-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", _RUN, root, kind, str(profiles), str(Path(tmp) / "store")],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} from {root} failed:\n{proc.stderr[-2000:]}")
    out: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab_ingest", description=__doc__)
    p.add_argument("--data", type=Path, required=True, help="a dataset folder (profiles.parquet)")
    p.add_argument("--roots", required=True, help="checkouts to compare, comma-separated")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    runs = [(root, "ours") for root in args.roots.split(",")]
    runs.append((runs[0][0], "duckdb"))  # DuckDB from the first checkout's environment
    times: dict[tuple[str, str], list[dict[str, float]]] = {r: [] for r in runs}
    for i in range(args.rounds):
        for root, kind in runs:
            got = _run(root, kind, args.data / "profiles.parquet")
            times[(root, kind)].append(got)
            print(f"round {i + 1}: {kind} {root}: {got['wall_s']:.3f} s, cpu {got['cpu_s']:.3f} s")
    for (root, kind), results in times.items():
        wall = sorted(r["wall_s"] for r in results)
        cpu = statistics.median(r["cpu_s"] for r in results)
        print(
            f"{kind:7s} {root}: wall median {statistics.median(wall):.3f} s "
            f"[{wall[0]:.3f}-{wall[-1]:.3f}], cpu median {cpu:.3f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
