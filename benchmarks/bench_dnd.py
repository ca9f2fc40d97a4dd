"""DND check-and-reserve for a whole audience (``DeliveryLog.reserve_batch``).

The log holds a realistic history for the same audience: last week's plan (as
rows, already sent out by the worker), a plan 12 hours ago for a third of it
(still a batch) and a thousand single deliveries; the measured step checks
the "max 1 per day, max 3 per week, global" policy for every recipient
against that history and records the result.

    python -m benchmarks.bench_dnd --n 1000000     # the full figure
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from audience.dsl.ast import DndPolicy
from audience.dsl.parser import parse
from audience.runtime.delivery import DeliveryLog, DeliveryRequest, Policy

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_ast = parse('dnd "Maison" {\n max 1 per day\n max 3 per week\n global\n}').definitions[0]
assert isinstance(_ast, DndPolicy)
POLICY = Policy.from_ast(_ast)


def audience(n: int) -> tuple[list[str], list[str | None]]:
    ids = [f"c{i}" for i in range(n)]
    emails: list[str | None] = [
        None if i % 50 == 0 else (f"User{i}@Example.com" if i % 7 else f" user{i}@example.com")
        for i in range(n)
    ]
    return ids, emails


def build(root: Path, n: int) -> None:
    """The history the measured batch is checked against."""
    ids, emails = audience(n)
    with DeliveryLog.open(root) as log:
        log.reserve_batch(
            "main",
            ids,
            emails,
            POLICY,
            T0 - 3 * DAY,
            {"subject": "last week"},
            "plan:Weekly",
            "plan:weekly:1:",
            now_ms=T0 - 3 * DAY,
        )
        log.materialize_all()  # sent out since: rows now
        third = slice(0, n, 3)
        log.reserve_batch(
            "eu",
            ids[third],
            emails[third],
            POLICY,
            T0 - 12 * HOUR,
            {"subject": "flash"},
            "plan:Flash",
            "plan:flash:1:",
            now_ms=T0 - 12 * HOUR,
        )
        for i in range(1, min(n, 2000), 2):
            at = T0 - (i % 96) * HOUR
            log.request(
                DeliveryRequest(
                    f"trigger:e{i}:0",
                    "main",
                    ids[i],
                    emails[i],
                    "email",
                    "send_email",
                    {"subject": "thanks"},
                    at,
                    POLICY,
                    now_ms=at,
                )
            )


def reserve(
    log: DeliveryLog, who: tuple[list[str], list[str | None]], key_prefix: str = "plan:daily:1:"
) -> dict[str, Any]:
    ids, emails = who
    return log.reserve_batch(
        "main", ids, emails, POLICY, T0, {"subject": "today"}, "plan:Daily", key_prefix, now_ms=T0
    )


def test_reserve_batch_50k(benchmark: Any, tmp_path: Path) -> None:
    n = 50_000
    template = tmp_path / "template"
    template.mkdir()
    build(template, n)
    logs: list[DeliveryLog] = []
    who = audience(n)

    def setup() -> tuple[tuple[DeliveryLog, tuple[list[str], list[str | None]]], dict[str, Any]]:
        fresh = tmp_path / f"round{len(logs)}"
        shutil.copytree(template, fresh)
        logs.append(DeliveryLog.open(fresh))
        return (logs[-1], who), {}

    counts = benchmark.pedantic(reserve, setup=setup, rounds=3, iterations=1)
    for log in logs:
        log.close()
    assert counts["requested"] == n
    # a third got the flash sale 12 hours ago (max 1 per day) in another node, so
    # those with an email are stopped; the rest had at most two this week
    assert counts["by_cap"] == {"max 1 per day": counts["suppressed"]}
    assert counts["suppressed"] >= n // 3 * 49 // 50


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="recipients")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        build(root, args.n)
        built = time.perf_counter() - t0
        with DeliveryLog.open(None) as warm:
            reserve(warm, audience(1000))  # JIT/cache load outside the figure
        with DeliveryLog.open(root) as log:
            who = audience(args.n)
            t0, c0 = time.perf_counter(), time.process_time()
            counts = reserve(log, who)
            took, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"history built in {built:.1f} s")
    print(
        f"reserve_batch: {args.n:,} recipients checked and reserved in {took:.2f} s "
        f"({cpu:.2f} s CPU; {args.n / took:,.0f}/s): reserved {counts['reserved']:,}, "
        f"suppressed {counts['suppressed']:,} {counts['by_cap']}"
    )


if __name__ == "__main__":
    main()
