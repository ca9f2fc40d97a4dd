"""Click endpoint benchmark: p50/p99 latency of ``GET /t/c/TOKEN`` at a fixed
rate on loopback against a real ``audience serve`` (waitress).

Each click verifies the token, reads the delivery and its link, applies the
bot rules, records the hit and ingests an ``email_clicked`` event into the
contact's node (as a small ingest: the store's write-ahead log), then answers
302.  The load is open-loop: request i is due at ``start + i / rate`` whatever
the answers before it, so a slow answer shows in the latencies instead of
lowering the rate; client threads hold keep-alive connections.

    python -m benchmarks.bench_tracking [--rate 200] [--seconds 10] [--deliveries 1000]

builds a store in a temporary directory with ``--deliveries`` messages whose
links were rewritten as the worker does, serves it from a separate process
and prints the figures.  Under pytest, a small in-process run checks that it
all works.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import threading
import time
from pathlib import Path

from audience.demo.run import EXAMPLES
from audience.runtime.delivery import DeliveryLog, DeliveryRequest
from audience.runtime.delivery.model import wall_ms
from audience.runtime.node import Node
from audience.runtime.tracking.config import write_setting
from audience.runtime.tracking.outbox import pending
from audience.runtime.tracking.sending import Tracker
from audience.server.app import create_app
from audience.server.serve import ServerThread
from benchmarks.bench_http import Stats, _free_port, _serve, _wait_up, percentile

HTML = (
    '<p><a href="https://shop.example/profile">Complete your profile</a> '
    '<a href="https://shop.example/sale">Sale</a></p>'
)


def build_store(path: Path, base_url: str, deliveries: int) -> list[str]:
    """A store whose ``deliveries`` messages were prepared for sending; their click paths."""
    store = Node.init(path, EXAMPLES / "maison.toml")
    store.ingest_profiles(
        [{"contact_id": f"c{i}", "email": f"c{i}@shop.example"} for i in range(deliveries)]
    )
    write_setting(path, "tracking.base_url", base_url)
    paths: list[str] = []
    with DeliveryLog.open(path) as log:
        tracker = Tracker.for_store(log, path)
        assert tracker is not None
        sent = wall_ms() - 3_600_000  # an hour ago: no click is a bot's for being early
        reqs = [
            DeliveryRequest(
                f"bench:{i}",
                "main",
                f"c{i}",
                f"c{i}@shop.example",
                "email",
                "send_email",
                {"to": f"c{i}@shop.example", "html": HTML, "delivery": "Bench"},
                sent,
                source="plan:Bench",
            )
            for i in range(deliveries)
        ]
        for d in log.request_many(reqs):
            payload, _ = tracker.prepare(d)
            paths += [u.split(base_url, 1)[1] for u in _hrefs(payload["html"])]
    return paths


def _hrefs(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('href="')[1:]]


def run_clicks(url: str, paths: list[str], rate: float, seconds: float, clients: int) -> Stats:
    """Open-loop load: click ``i`` is due at ``start + i / rate``, for ``seconds``."""
    host, port = url.removeprefix("http://").split(":")
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    nxt = [0]
    start = time.perf_counter() + 0.2

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= total:
                    return
                wait = start + i / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                # paths alternate between a message's two links, a minute apart
                path = paths[(i * 2 + (i // len(paths)) % 2) % len(paths)]
                t0 = time.perf_counter()
                conn.request("GET", path, headers={"User-Agent": "bench"})
                resp = conn.getresponse()
                resp.read()
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(ms)
                    errors[0] += resp.status != 302
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return Stats(
        f"click GET /t/c/TOKEN at {rate:g} req/s",
        clients,
        len(latencies),
        errors[0],
        time.perf_counter() - start,
        statistics.median(latencies) if latencies else 0.0,
        percentile(latencies, 0.99),
        max(latencies, default=0.0),
    )


# ------------------------------------------------------------------ pytest (small)
def test_click_load_small(tmp_path: Path) -> None:
    root = tmp_path / "s"
    port = _free_port()
    paths = build_store(root, f"http://127.0.0.1:{port}", 20)
    with ServerThread(create_app(root), port=port, threads=4) as srv:
        stats = run_clicks(srv.url, paths, rate=50, seconds=0.5, clients=2)
    assert (stats.requests, stats.errors) == (25, 0)
    got = Node.open(root).compile("did email_clicked").evaluate(as_of=wall_ms() + 60_000)
    assert len(got) > 0


# ------------------------------------------------------------------ full run
def _ingested(path: Path) -> str:
    """How long after the last answer the server's ingester had every click stored."""
    t0 = time.perf_counter()
    with DeliveryLog.open(path) as log:
        while pending(log):
            time.sleep(0.01)
    lag = time.perf_counter() - t0
    n = Node.open(path).snapshot().n_events
    return f"events stored: {n} (outbox empty {lag * 1000:.0f} ms after the last answer)"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--deliveries", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4, help="client threads")
    ap.add_argument("--threads", type=int, default=4, help="server threads")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="audience-bench-") as tmp:
        path = Path(tmp) / "shop"
        port = _free_port()
        paths = build_store(path, f"http://127.0.0.1:{port}", args.deliveries)
        proc = _serve(path, port, args.threads)
        try:
            _wait_up(port, proc)
            url = f"http://127.0.0.1:{port}"
            run_clicks(url, paths, min(args.rate, 50), 1.0, args.clients)  # warm up
            print(run_clicks(url, paths, args.rate, args.seconds, args.clients).line())
            print(_ingested(path))
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
