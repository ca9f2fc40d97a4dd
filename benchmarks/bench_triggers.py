"""Trigger benchmarks on the demo shop's data.

1. Throughput: a batch of new events ingested into a store with 1,000 enabled
   triggers (selective ``where`` predicates, some ``if`` conditions, options);
   reported as events per second of the trigger work (journal + matching +
   ``if`` + firing), of that work without the time spent inside the delivery
   log (its ``request`` calls and the transactions grouping them, up to 500
   deliveries each), and of the whole ingest.
2. Latency: single-event ingests that fire the seed's trigger ("Thank
   newsletter subscribers": ``if``, template, global DND policy), from the
   ``ingest_events`` call to the delivery recorded in the log; p50 / p99, with
   the part spent in the trigger engine.

In the test suite both run on a small store.  The figures:

    python -m benchmarks.bench_triggers --events 1000000 --singles 300
    python -m benchmarks.bench_triggers --events 10000000
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from audience.demo import shop
from audience.engine.subset import warm
from audience.runtime.node import Node
from audience.runtime.triggers.engine import Pending, TriggerEngine

EXAMPLES = Path(__file__).resolve().parents[1] / "audience" / "examples"
SEED = "Thank newsletter subscribers"
NOW = shop.DEFAULT_NOW
# the triggers react to all of the bench's events, which are dated before the wall clock
VALID_FROM_MS = 0
DAY = 86_400_000


def trigger_texts(n: int = 1000) -> str:
    """``n`` triggers over the shop's event types, with realistic selectivity."""
    cat = shop.catalogue()
    rare = np.argsort(cat.popularity)  # the least viewed products first
    out: list[str] = []

    def add(name: str, body: str) -> None:
        out.append(f'trigger "{name}" {{\n{body}\n}}\n')

    hook = 'do webhook(url: "https://hooks.example/t", body: {contact: event.contact_id})'
    k = 0
    while len(out) < n:
        kind = k % 10
        i = k // 10
        if kind < 6:  # a rarely viewed product, on the web
            pid = cat.ids[rare[i % len(rare)]]
            add(
                f"view {k}",
                f'on viewed_product where (product_id = "{pid}" and context = "WEB")\n{hook}',
            )
        elif kind < 8:  # a big purchase in one store
            store = shop.STORES[i % len(shop.STORES)]
            amount = 250 + (i % 50) * 5
            add(
                f"buy {k}",
                f'on purchased where (amount > {amount} and store = "{store}")\n'
                f"if profile.email is set\n{hook}\nat most once per 1 day per contact",
            )
        elif kind == 8:  # a campaign click from a returning buyer
            campaign = shop.CAMPAIGNS[i % len(shop.CAMPAIGNS)]
            add(
                f"click {k}",
                f'on email_clicked where (campaign = "{campaign}" and url contains "P0000")\n'
                f"if did purchased in last 30 days\n{hook}",
            )
        else:  # a form from one city
            form = shop.FORMS[i % len(shop.FORMS)]
            city = shop.CITIES[i % len(shop.CITIES)]
            add(
                f"form {k}",
                f'on form_compiled where (form_name = "{form}" and profile.city = "{city}" '
                f'and profile.gender = "x")\n{hook}\nonce per contact',
            )
        k += 1
    return "".join(out)


SEED_TEMPLATE = ("Welcome {{ first_name }}", "<p>Hi {{ first_name }} ({{ form }})</p>", "Hi")


def build_store(path: Path, n_events: int, n_contacts: int) -> Node:
    st = Node.init(path, EXAMPLES / "maison.toml")
    st.ingest_profiles(shop.profiles(n_contacts))
    for chunk in shop.events(n_events, n_contacts):
        st.ingest_events(chunk)
    return st


def new_events(n: int, n_contacts: int, seed: int, prefix: str) -> Iterator[pa.Table]:
    """Events after the store's, with ids of their own."""
    later = NOW + dt.timedelta(days=1)
    for chunk in shop.events(n, n_contacts, days=1, now=later, seed=seed):
        ids = pc.binary_join_element_wise(prefix, chunk.column("id"), "")
        yield chunk.set_column(0, "id", ids)


@dataclasses.dataclass
class Timer:
    """Wraps the engine's hooks to time the trigger part of each ingest."""

    engine: TriggerEngine
    spent: list[float] = dataclasses.field(default_factory=list)
    log_spent: float = 0.0  # inside the delivery log's request (part of ``spent``)

    def install(self) -> None:
        before, after = self.engine.before_commit, self.engine.after_commit
        log = self.engine.log
        request = log.request

        def timed_request(req: Any) -> Any:
            t0 = time.perf_counter()
            out = request(req)
            self.log_spent += time.perf_counter() - t0
            return out

        log.request = timed_request  # type: ignore[method-assign]
        grouped = log.grouped

        @contextlib.contextmanager
        def timed_grouped() -> Iterator[None]:
            # the group's BEGIN and COMMIT are the log's time too
            t0 = time.perf_counter()
            with contextlib.ExitStack() as stack:
                stack.enter_context(grouped())
                self.log_spent += time.perf_counter() - t0
                yield
                t0 = time.perf_counter()
            self.log_spent += time.perf_counter() - t0

        log.grouped = timed_grouped  # type: ignore[method-assign]

        def timed_before(version: int, new: list[tuple[pa.Array, pa.Table]]) -> Pending | None:
            t0 = time.perf_counter()
            out = before(version, new)
            self.spent.append(time.perf_counter() - t0)
            return out

        def timed_after(p: Pending) -> Any:
            t0 = time.perf_counter()
            out = after(p)
            self.spent[-1] += time.perf_counter() - t0
            return out

        self.engine.before_commit = timed_before  # type: ignore[method-assign,assignment]
        self.engine.after_commit = timed_after  # type: ignore[method-assign,assignment]


def throughput(st: Node, n_batch: int, n_triggers: int, n_contacts: int) -> dict[str, Any]:
    eng = st.triggers
    t0 = time.perf_counter()
    eng.add(trigger_texts(n_triggers), "bench.rules", valid_from_ms=VALID_FROM_MS)
    t_add = time.perf_counter() - t0
    t0 = time.perf_counter()
    active = len(eng.active())
    t_compile = time.perf_counter() - t0
    warm(st.snapshot())
    timer = Timer(eng)
    timer.install()
    batch = pa.concat_tables(new_events(n_batch, n_contacts, seed=5, prefix="t"))
    t0 = time.perf_counter()
    report = st.ingest_events(batch)
    total = time.perf_counter() - t0
    trig = sum(timer.spent)
    assert report.accepted == n_batch and not eng.errors, eng.errors
    fired = len(eng.state.firings().list(limit=10**9))
    return {
        "triggers": active,
        "batch_events": n_batch,
        "fired": fired,
        "add_s": round(t_add, 2),
        "compile_s": round(t_compile, 2),
        "trigger_s": round(trig, 3),
        "delivery_log_s": round(timer.log_spent, 3),
        "trigger_events_per_s": round(n_batch / trig),
        "matching_events_per_s": round(n_batch / (trig - timer.log_spent)),
        "ingest_events_per_s": round(n_batch / total),
    }


def latency(st: Node, n: int, n_contacts: int) -> dict[str, Any]:
    eng = st.triggers
    eng.add_template("C-1234", *SEED_TEMPLATE)
    eng.add((EXAMPLES / "maison.rules").read_text(), "maison.rules", valid_from_ms=VALID_FROM_MS)
    eng.active()
    warm(st.snapshot())
    timer = Timer(eng)
    timer.install()
    rng = np.random.default_rng(3)
    snap = st.snapshot()
    emails = snap.profile["email"].valid
    have = np.flatnonzero(emails[:n_contacts]) if emails is not None else np.arange(n_contacts)
    start = int((NOW + dt.timedelta(days=2)).timestamp() * 1000)
    times: list[float] = []
    for k in range(n):
        contact = snap.contact_ids[int(rng.choice(have))]
        rec = {
            "id": f"lat{k}",
            "contact_id": contact,
            "type": "form_compiled",
            "ts": start + k * 1000,
            "context": "WEB",
            "form_name": "addUser",
        }
        t0 = time.perf_counter()
        st.ingest_events([rec])
        times.append(time.perf_counter() - t0)
        assert eng.log.get_by_key(f"{st.node}:{SEED}:1:lat{k}:0") is not None
    ms = np.array(times) * 1000
    trig = np.array(timer.spent) * 1000
    return {
        "single_events": n,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "trigger_p50_ms": round(float(np.percentile(trig, 50)), 2),
        "trigger_p99_ms": round(float(np.percentile(trig, 99)), 2),
    }


def run(
    root: Path, n_events: int, n_contacts: int, batch: int, n_triggers: int, singles: int
) -> dict[str, Any]:
    t0 = time.perf_counter()
    st = build_store(root / "shop", n_events, n_contacts)
    built = time.perf_counter() - t0
    out: dict[str, Any] = {"events": n_events, "contacts": n_contacts, "build_s": round(built, 1)}
    out["throughput"] = throughput(st, batch, n_triggers, n_contacts)
    out["latency"] = latency(st, singles, n_contacts)  # with the 1,000 triggers enabled
    return out


# ------------------------------------------------------------------ in the suite


def test_trigger_benchmark_small_store(tmp_path: Path) -> None:
    res = run(tmp_path, 20_000, 2_000, batch=10_000, n_triggers=100, singles=10)
    assert res["throughput"]["triggers"] == 100
    assert res["throughput"]["fired"] > 0
    assert res["latency"]["p50_ms"] > 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--contacts", type=int, default=0, help="default: events / 20")
    ap.add_argument("--batch", type=int, default=200_000)
    ap.add_argument("--triggers", type=int, default=1000)
    ap.add_argument("--singles", type=int, default=300)
    args = ap.parse_args()
    contacts = args.contacts or max(1000, args.events // 20)
    with tempfile.TemporaryDirectory() as tmp:
        res = run(Path(tmp), args.events, contacts, args.batch, args.triggers, args.singles)
    import json

    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
