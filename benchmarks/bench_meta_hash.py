"""Normalizing and SHA-256 hashing custom-audience match keys (``integrations.meta.normalize``).

A million emails (mixed case, stray spaces, 2% missing, 1% malformed) and a million phones
(national and international forms) are normalized and hashed from Arrow string arrays; the
figure is the best of ``--repeat`` runs, building the input excluded. Target: under 2 s each.

    python -m benchmarks.bench_meta_hash --n 1000000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import pyarrow as pa

from audience.integrations.meta.normalize import Hashed, hash_emails, hash_phones


def emails(n: int) -> pa.StringArray:
    def one(i: int) -> str | None:
        if i % 50 == 0:
            return None
        if i % 100 == 1:
            return f"user{i} at example.com"
        return f" User{i}@Example.com" if i % 7 else f"user.{i}@mail.example.org\t"

    return pa.array([one(i) for i in range(n)], pa.string())


def phones(n: int) -> pa.StringArray:
    forms = ("+1 (555) {:03d}-{:04d}", "555.{:03d}.{:04d}", "0044 20 7{:03d} {:04d}")
    return pa.array([forms[i % 3].format(i % 1000, i % 10_000) for i in range(n)], pa.string())


def best(
    hasher: Callable[[pa.StringArray], Hashed], column: pa.StringArray, repeat: int
) -> tuple[float, Hashed]:
    times = []
    result = hasher(column)
    for _ in range(repeat):
        start = time.perf_counter()
        result = hasher(column)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cases: list[tuple[str, pa.StringArray, Callable[[pa.StringArray], Hashed]]] = [
        ("emails", emails(args.n), hash_emails),
        ("phones", phones(args.n), hash_phones),
    ]
    for name, column, hasher in cases:
        seconds, result = best(hasher, column, args.repeat)
        print(
            f"{name}: {args.n:,} normalized and hashed in {seconds:.3f} s"
            f" (valid {result.valid:,}, invalid {dict(result.invalid)}, nulls {result.nulls:,})"
        )


if __name__ == "__main__":
    main()
