"""What two workers can gain over one on this machine, before any cluster cost:
``python -m benchmarks.bench_scaling_ceiling [--rounds 3] [--gib 1]``.

Two kinds of work, each run by one process alone and then by two processes at
once (the strong-scaling benchmark's 1 and 2 workers, one kernel thread each):

- *scan*: each process sums its own array much larger than the caches, the
  access pattern of a segment's scans over a shard's columns;
- *compute*: each process sums a small array that stays in its core's L1
  cache, so only the cores count.

The ratio of the two processes' combined rate to one process's rate is the
best speed-up from 1 to 2 workers that work of that kind can show here.  The
rounds alternate one and two processes so that a change in the host's load
touches both; each round prints its figures, and the medians come last.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable

import numpy as np

SCAN_PASSES = 5
COMPUTE_PASSES = 200_000


def _scan(gib: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    a = np.ones(int(gib * 2**30) // 8, dtype=np.float64)
    a.sum()  # the pages are touched before the clock starts
    t0 = time.perf_counter()
    for _ in range(SCAN_PASSES):
        a.sum()
    out.put(SCAN_PASSES * a.nbytes / (time.perf_counter() - t0) / 1e9)


def _compute(gib: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    a = np.ones(4096, dtype=np.float64)  # 32 KiB
    t0 = time.perf_counter()
    for _ in range(COMPUTE_PASSES):
        a.sum()
    out.put(COMPUTE_PASSES / (time.perf_counter() - t0) / 1e6)


def _together(work: Callable[[float, mp.Queue], None], n: int, gib: float) -> float:  # type: ignore[type-arg]
    """The summed rate of ``n`` processes doing ``work`` at the same time."""
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [mp.Process(target=work, args=(gib, out)) for _ in range(n)]
    for p in procs:
        p.start()
    rates = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


# each kind of work, its function and its rate's unit
KINDS: dict[str, tuple[Callable[[float, mp.Queue], None], str]] = {  # type: ignore[type-arg]
    "scan": (_scan, "GB/s"),
    "compute": (_compute, "M sums/s"),
}


def rates(kind: str, gib: float) -> tuple[float, float]:
    """One round of ``kind``: the rate of one process alone, then of two at once."""
    work = KINDS[kind][0]
    return _together(work, 1, gib), _together(work, 2, gib)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_scaling_ceiling", description=__doc__
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--gib", type=float, default=1.0, help="each scanning process's array")
    args = p.parse_args(argv)
    for name, (_, unit) in KINDS.items():
        ratios = []
        for r in range(args.rounds):
            one, two = rates(name, args.gib)
            ratios.append(two / one)
            print(
                f"{name} round {r + 1}: 1 process {one:.2f} {unit}, 2 processes {two:.2f} {unit}, "
                f"ratio {two / one:.2f}x",
                flush=True,
            )
        print(f"{name}: median ratio {statistics.median(ratios):.2f}x over {args.rounds} rounds")


if __name__ == "__main__":
    main()
