"""A custom audience sync of a big segment to the fake Graph server, then a diff sync.

A store of N contacts (all in the segment, all with consent and an email) is built;
the fake Graph server runs in a child process on loopback (so it does not share this
process's interpreter); a sync is created and run by the worker:

- full: the first run, from queueing to the job's success: evaluating the segment,
  normalizing and hashing N emails, and uploading them in batches of 10,000 in one
  session (target: under 30 s for 1,000,000 contacts);
- diff: 1% of the contacts change (half withdraw consent, as many new ones join) and
  the sync runs again: only those rows are uploaded (printed: rows sent).

The audience's size is read back from the fake (``approximate_count_lower_bound``)
after each run. Figures go to benchmarks/results/meta-sync-1m.json with ``--write``.

    python -m benchmarks.bench_meta_sync --n 1000000 --write
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pyarrow as pa

SCHEMA = '[profile]\nemail = "string"\ngender = "string"\nconsent = "bool"\n'
TOKEN = "EAAB-bench-token"
RESULTS = Path(__file__).resolve().parent / "results" / "meta-sync-1m.json"


def serve(conn: Connection) -> None:
    """The fake Graph server with custom audiences, until this process is terminated."""
    from audience.integrations.meta.fake import FakeGraph, running
    from audience.integrations.meta.fake.audiences import install

    fake = FakeGraph()
    install(fake)
    fake.add_token(TOKEN, expires_at=2**31 - 1)
    with running(fake) as url:
        conn.send(url)
        while True:
            time.sleep(3600)


def contacts(start: int, stop: int) -> pa.Table:
    n = stop - start
    return pa.table(
        {
            "contact_id": [f"c{i}" for i in range(start, stop)],
            "email": [f" User{i}@Example.com" for i in range(start, stop)],
            "gender": ["f"] * n,
            "consent": [True] * n,
        }
    )


def audience_size(url: str, audience_id: str) -> int:
    import requests

    from audience.integrations.meta.fake import VERSION

    r = requests.get(
        f"{url}/{VERSION}/{audience_id}",
        params={"fields": "approximate_count_lower_bound", "access_token": TOKEN},
        timeout=60,
    )
    return int(r.json()["approximate_count_lower_bound"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--write", action="store_true", help="write the results file")
    args = parser.parse_args()
    n = args.n
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(child,), daemon=True)
    server.start()
    url = parent.recv()
    load = os.getloadavg()[0]
    try:
        result = run(n, url)
    finally:
        server.terminate()
        server.join()
    result["measured"] = (
        f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%MZ}, {os.cpu_count()} shared cores "
        f"(load average {load:.1f} at the start)"
    )
    print(json.dumps(result, indent=1))
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=1) + "\n")


def run(n: int, url: str) -> dict[str, Any]:
    from audience.integrations.meta.fake import VERSION
    from audience.integrations.meta.graph import GraphConfig
    from audience.integrations.meta.sync.service import SyncService, SyncSpec
    from audience.integrations.meta.sync.worker import SyncWorker
    from audience.integrations.meta.tokens import Integrations
    from audience.runtime.plans.clock import wall_clock
    from audience.runtime.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        store = Store.init(Path(tmp) / "shop", SCHEMA)
        store.ingest_profiles(contacts(0, n))
        root = Path(tmp) / "shop"
        built = time.perf_counter() - t
        config = GraphConfig(base_url=url, version=VERSION)
        Integrations(root, config, wall_clock).connect("ads", "act_1", TOKEN)
        svc = SyncService(root, wall_clock)
        svc.create(
            SyncSpec(
                name="everyone",
                node="main",
                segment='gender = "f"',
                integration="ads",
                email_field="email",
                consent_field="consent",
                audience_name="Everyone",
            )
        )
        worker = SyncWorker(root, config, wall_clock)

        def timed_run() -> tuple[float, Any]:
            start = time.perf_counter()
            svc.run("everyone")
            [job] = worker.work_once()
            return time.perf_counter() - start, job

        full_s, full = timed_run()
        audience_id = svc.defs.get("everyone").audience_id or ""
        full_size = audience_size(url, audience_id)
        # 1% changes: half withdraw consent, as many new contacts join
        half = max(1, n // 200)
        store.ingest_profiles(
            pa.table(
                {
                    "contact_id": [f"c{i}" for i in range(0, n, n // half)][:half],
                    "consent": [False] * half,
                }
            )
        )
        store.ingest_profiles(contacts(n, n + half))
        diff_s, diff = timed_run()
        diff_size = audience_size(url, audience_id)
        print(f"diff sync: {diff.counts['sent']:,} rows sent (1% of {n:,} contacts changed)")
        return {
            "command": f"python -m benchmarks.bench_meta_sync --n {n} --write",
            "contacts": n,
            "store_built_s": round(built, 2),
            "full_sync_s": round(full_s, 2),
            "full_sync": {
                "state": full.state,
                "batches": full.batches_total,
                "rows_sent": full.counts["sent"],
                "audience_size": full_size,
            },
            "diff_sync_s": round(diff_s, 2),
            "diff_sync": {
                "state": diff.state,
                "changed_contacts": 2 * half,
                "rows_sent": diff.counts["sent"],
                "removes": diff.counts["to_remove"],
                "adds": diff.counts["to_add"],
                "batches": diff.batches_total,
                "audience_size": diff_size,
            },
        }


if __name__ == "__main__":
    main()
