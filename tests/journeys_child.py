"""A process that advances a store's journeys (the process tests start it):
``python -m tests.journeys_child STORE AT_MS``.  The journeys were saved by
the test as ASTs: this process compiles the same ones (tests.journeys_support)
and runs one scheduler tick at AT_MS."""

from __future__ import annotations

import sys
from pathlib import Path

from audience.runtime.plans.clock import fixed_clock
from audience.runtime.plans.scheduler import Scheduler
from audience.runtime.store import open_store
from tests.journeys_process_support import JOURNEYS, remember


def main() -> None:
    root, at = Path(sys.argv[1]), int(sys.argv[2])
    remember(open_store(root), JOURNEYS)
    sched = Scheduler(root, clock=fixed_clock(at))
    try:
        report = sched.tick()
    finally:
        sched.close()
    print(report.journeys["main"].woken if "main" in report.journeys else 0)


if __name__ == "__main__":
    main()
