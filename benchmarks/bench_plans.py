"""A plan run over a big audience, with a long-running scheduler on the wall clock.

A store of N contacts (2% without an email) is built in a child process;
the delivery log already holds a batch to a third of them 12 hours before
(so the policy's "max 1 per day" holds those back).  This process then
makes a one-shot plan ready for the next whole minute (a delivery with a
``first_name`` field, under a two-cap DND policy), starts the scheduler in a
thread (polling every second), and reports:

- start: how long after the due instant the run began (target: within 1 s);
- done: how long after the due instant every delivery was recorded
  (target: within 5 s for 1,000,000 contacts);
- the peak memory of this process (target: under 1 GB), which did no more
  than a scheduler does: open the store, warm the kernels up, run the plan.

    python -m benchmarks.bench_plans --n 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DAY = 86_400_000
HOUR = 3_600_000
EXAMPLES = Path(__file__).resolve().parents[1] / "audience" / "examples"
NAMES = [f"Name{i}" for i in range(50)]
RULES = """dnd "Two caps" {{
  max 1 per day
  max 3 per week
}}

delivery "Big news" {{
  template "news"
  subject "News for you, {{{{ first_name }}}}"
  fields {{ first_name: profile.first_name }}
}}

plan "Everyone" {{
  who (country = "IT")
  when once at {when}
  dnd "Two caps"
  send "Big news"
}}
"""


def build(root: Path, n: int) -> None:
    """The store and the delivery history (run in a child process)."""
    import pyarrow as pa

    from audience.runtime.delivery import DeliveryLog
    from audience.runtime.node import Node

    st = Node.init(root, EXAMPLES / "maison.toml")
    ids = [f"c{i}" for i in range(n)]
    emails = [None if i % 50 == 0 else f"user{i}@example.com" for i in range(n)]
    st.ingest_profiles(
        pa.table(
            {
                "contact_id": ids,
                "email": emails,
                "first_name": [NAMES[i % 50] for i in range(n)],
                "country": ["IT"] * n,
            }
        )
    )
    st.triggers.add_template("news", "News", "<p>Hi {{ first_name }}</p>", "Hi {{ first_name }}")
    now = time.time_ns() // 1_000_000
    third = slice(0, n, 3)
    with DeliveryLog.open(root) as log:
        log.reserve_batch(
            "main", ids[third], emails[third], None, now - 12 * HOUR, {"subject": "flash"},
            "plan:Flash", "plan:flash:1:", now_ms=now - 12 * HOUR,
        )  # fmt: skip


def _warm_up(tmp: Path) -> None:
    """Load the kernels (numba's cache) as a running scheduler has them."""
    from audience.runtime.node import open_node
    from audience.runtime.plans.clock import ManualClock
    from audience.runtime.plans.scheduler import Scheduler
    from audience.runtime.plans.service import PlanService

    root = tmp / "warm"
    build(root, 100)
    due = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.UTC)
    clock = ManualClock(int(due.timestamp() * 1000) - DAY)
    svc = PlanService(open_node(root), clock)
    svc.add(RULES.format(when="2030-01-01 09:00"), "warm.rules")
    svc.make_ready("Everyone")
    clock.ms += DAY
    Scheduler(root, clock=clock).tick()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="contacts")
    ap.add_argument("--build", help=argparse.SUPPRESS)  # the child's part
    args = ap.parse_args(argv)
    if args.build:
        build(Path(args.build), args.n)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "big"
        t0 = time.perf_counter()
        child = ["-m", "benchmarks.bench_plans", "--n", str(args.n), "--build", str(root)]
        subprocess.run([sys.executable, *child], check=True)
        built = time.perf_counter() - t0
        _warm_up(Path(tmp))
        report = measure(root)
    report["contacts"] = args.n
    report["store_built_s"] = round(built, 1)
    print(json.dumps(report, indent=1))


def measure(root: Path) -> dict[str, object]:
    from audience.runtime.node import open_node
    from audience.runtime.plans.definitions import PlanDefinitions
    from audience.runtime.plans.scheduler import run_scheduler
    from audience.runtime.plans.service import PlanService

    now = dt.datetime.now(dt.UTC)
    due = (now + dt.timedelta(seconds=65)).replace(second=0, microsecond=0)
    svc = PlanService(open_node(root))
    svc.add(RULES.format(when=due.strftime("%Y-%m-%d %H:%M")), "big.rules")
    svc.make_ready("Everyone")
    stop = threading.Event()
    thread = threading.Thread(target=run_scheduler, args=(root,), kwargs={"stop": stop})
    thread.start()
    defs = PlanDefinitions.for_store(root)
    try:
        while True:
            found = [r for r in defs.list_runs("main", "Everyone") if r.state == "done"]
            if found:
                run = found[0]
                break
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    due_ms = run.occurrence_ms
    assert run.started_ms is not None and run.finished_ms is not None
    return {
        "due": due.isoformat(),
        "run_started_after_due_s": round((run.started_ms - due_ms) / 1000, 3),
        "all_recorded_after_due_s": round((run.finished_ms - due_ms) / 1000, 3),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "counts": run.counts,
    }


if __name__ == "__main__":
    main()
