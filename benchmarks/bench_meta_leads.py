"""Storing lead ads leads (``integrations.meta.leads``) against the fake Graph
server on loopback, into a real store: a backfill of ``--n`` leads (paged
fetch, inbox, profiles and ``lead_received`` events), then ``--n`` leads
arriving by webhook (the notification kept in the inbox, then each lead
fetched on its own and stored).  Figures: wall seconds and leads per second.

    python -m benchmarks.bench_meta_leads --n 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from audience.integrations.meta.fake import APP_ID, APP_SECRET, VERSION, FakeGraph, running
from audience.integrations.meta.fake.leads import install
from audience.integrations.meta.graph import GraphConfig
from audience.integrations.meta.leads.backfill import backfill
from audience.integrations.meta.leads.mapping import FieldMap
from audience.integrations.meta.leads.webhook import leads_of
from audience.integrations.meta.leads.worker import LeadWorker
from audience.integrations.meta.tokens import Integrations
from audience.runtime.plans.clock import ManualClock
from audience.runtime.store import Store

EXAMPLES = Path(__file__).resolve().parents[1] / "audience" / "examples"
T0 = 1_780_000_000_000
FORM, PAGE = "4000000001", "5000000001"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    clock = ManualClock(T0)
    fake = FakeGraph(now=lambda: clock() // 1000)
    fake.add_token("tok")
    leads = install(fake)
    leads.add_form(FORM, PAGE)
    with tempfile.TemporaryDirectory() as tmp, running(fake) as url:
        root = Path(tmp) / "shop"
        store = Store.init(root, EXAMPLES / "maison.toml")
        config = GraphConfig(base_url=url, version=VERSION, app_id=APP_ID, app_secret=APP_SECRET)
        Integrations(root, config, clock).connect("ads", "act_1", "tok")
        worker = LeadWorker.of(root, clock, config=config)
        fields = (FieldMap("email", "email"), FieldMap("first_name", "first_name"),
                  FieldMap("interests", "tags"))  # fmt: skip
        worker.forms.connect("spring", node="main", schema=store.schema, integration="ads",
                             page_id=PAGE, form_id=FORM, fields=fields, source="bench")  # fmt: skip
        answers: dict[str, str | list[str]] = {"first_name": "Ann", "interests": ["shoes", "bags"]}
        for i in range(n):
            leads.add_lead(FORM, {"email": f"b{i}@example.com", **answers}, T0 // 1000 + i)
        t = time.perf_counter()
        result = backfill(worker, "spring")
        s = time.perf_counter() - t
        assert result.stored == n, result
        print(f"backfill: {n} leads in {s:.2f} s ({n / s:.0f} leads/s)")
        notified = [
            leads.add_lead(FORM, {"email": f"w{i}@example.com", **answers}, T0 // 1000 + n + i)
            for i in range(n)
        ]
        body = leads.notification(notified)
        t = time.perf_counter()
        kept = worker.inbox.add(leads_of(body), "webhook", clock())
        k = time.perf_counter() - t
        t = time.perf_counter()
        stored = worker.drain()
        s = time.perf_counter() - t
        assert kept == stored == n, (kept, stored)
        print(f"webhook: a {n}-lead notification kept in {k * 1000:.0f} ms; "
              f"stored in {s:.2f} s ({n / s:.0f} leads/s, one fetch each)")  # fmt: skip


if __name__ == "__main__":
    main()
