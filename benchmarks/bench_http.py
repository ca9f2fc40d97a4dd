"""HTTP load benchmark: throughput and p50/p99 latency of the API on loopback.

Real HTTP: client threads each hold a keep-alive ``http.client`` connection
to the waitress server and send requests back to back; every request's wall
time is recorded.  Two workloads: ``POST /v1/evaluate`` of the Red Shoes
segment (DSL text) over the Maison store, and ``POST /v1/events`` of one event
per request.  Every run is bounded by a request count and a time budget.

    python -m benchmarks.bench_http [--events 1000000] [--contacts 50000]
                                    [--requests 2000] [--seconds 30]

builds the store in a temporary directory, serves it from a separate process
(``audience serve``, 4 threads) and prints the figures.  Under pytest, a
small store, an in-process server and a few requests check that it all runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audience.demo import shop
from audience.demo.run import EXAMPLES, seed_segments
from audience.dsl.formatter import format_text
from audience.runtime.store import Store
from audience.server.app import create_app
from audience.server.auth import Sources
from audience.server.serve import ServerThread

ROOT = Path(__file__).resolve().parent.parent
NOW_ISO = shop.DEFAULT_NOW.isoformat().replace("+00:00", "Z")
RED_SHOES = format_text(seed_segments()[0])

# (method, path, body) for request number i of a client thread
RequestFn = Callable[[int, int], tuple[str, str, bytes]]


@dataclass
class Stats:
    name: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (
            f"{self.name:<32} c={self.concurrency:<2} {self.requests:>6} req "
            f"{self.throughput:>8.1f} req/s  p50 {self.p50_ms:>7.2f} ms  "
            f"p99 {self.p99_ms:>7.2f} ms  max {self.max_ms:>7.2f} ms  errors {self.errors}"
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def run_load(
    url: str,
    token: str,
    name: str,
    make: RequestFn,
    requests: int,
    concurrency: int,
    max_seconds: float,
) -> Stats:
    """``requests`` requests over ``concurrency`` keep-alive connections, or
    fewer if ``max_seconds`` runs out first."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop_at = time.perf_counter() + max_seconds
    per_thread = [
        requests // concurrency + (t < requests % concurrency) for t in range(concurrency)
    ]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def client(t: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            for i in range(per_thread[t]):
                if time.perf_counter() > stop_at:
                    return
                method, path, body = make(t, i)
                t0 = time.perf_counter()
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                latencies[t].append((time.perf_counter() - t0) * 1000)
                if resp.status != 200:
                    errors[t] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(t,)) for t in range(concurrency)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seconds = time.perf_counter() - t0
    flat = [x for lat in latencies for x in lat]
    return Stats(
        name,
        concurrency,
        len(flat),
        sum(errors),
        seconds,
        statistics.median(flat) if flat else 0.0,
        percentile(flat, 0.99),
        max(flat, default=0.0),
    )


def evaluate_request(_t: int, _i: int) -> tuple[str, str, bytes]:
    body = {"segment": RED_SHOES, "as_of": NOW_ISO, "limit": 100}
    return "POST", "/v1/evaluate", json.dumps(body).encode()


def event_request(run: str, with_id: bool = True) -> RequestFn:
    def make(t: int, i: int) -> tuple[str, str, bytes]:
        ev: dict[str, object] = {
            "contact_id": f"c{(t * 7919 + i) % 1000:07d}",
            "type": "viewed_product",
            "ts": NOW_ISO,
            "context": "WEB",
            "product_name": "Red Shoes",
            "price": 129.0,
        }
        if with_id:  # an id makes the store check it against every id it holds
            ev["id"] = f"bench-{run}-{t}-{i}"
        return "POST", "/v1/events", json.dumps([ev]).encode()

    return make


def build_store(path: Path, n_events: int, n_contacts: int) -> Store:
    store = Store.init(path, EXAMPLES / "maison.toml")
    store.ingest_profiles(shop.profiles(n_contacts))
    for chunk in shop.events(n_events, n_contacts, chunk=500_000):
        store.ingest_events(chunk)
    events, profile = shop.angela()
    store.ingest_profiles(profile)
    store.ingest_events(events)
    return store


def run_workloads(
    url: str, token: str, requests: int, seconds: float, concurrency: tuple[int, ...]
) -> list[Stats]:
    out: list[Stats] = []
    # warm up: compile the segment, build the snapshot, open the connections' paths
    run_load(url, token, "warm-up", evaluate_request, 20, 1, seconds)
    run_load(url, token, "warm-up", event_request("warm"), 5, 1, seconds)
    for c in concurrency:
        out.append(
            run_load(url, token, "evaluate Red Shoes", evaluate_request, requests, c, seconds)
        )
    for with_id in (True, False):
        name = "ingest one event" + ("" if with_id else " (no id)")
        for c in concurrency:
            make = event_request(f"c{c}", with_id)
            out.append(run_load(url, token, name, make, requests, c, seconds))
    return out


# ------------------------------------------------------------------ pytest (small)
def test_http_load_small(tmp_path: Path) -> None:
    build_store(tmp_path / "s", 5_000, 1_000)
    _, token = Sources(tmp_path / "s").create("main", "bench", "write")
    with ServerThread(create_app(tmp_path / "s"), threads=4) as srv:
        stats = run_workloads(srv.url, token, requests=10, seconds=20, concurrency=(1, 2))
    assert [s.errors for s in stats] == [0] * 6
    assert all(s.requests == 10 and 0 < s.p50_ms <= s.p99_ms <= s.max_ms for s in stats)


# ------------------------------------------------------------------ full run
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(store: Path, port: int, threads: int) -> subprocess.Popen[bytes]:
    code = (
        "import click, sys\n"
        "from audience.cli.server_cmds import register\n"
        "g = click.Group('audience')\n"
        "register(g)\n"
        "g(sys.argv[1:])\n"
    )
    cmd = [sys.executable, "-c", code, "serve", str(store), "--port", str(port)]
    cmd += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env=env)


def _wait_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--contacts", type=int, default=50_000)
    ap.add_argument("--requests", type=int, default=2000, help="per workload and concurrency")
    ap.add_argument("--seconds", type=float, default=30.0, help="time budget per run")
    ap.add_argument("--threads", type=int, default=4, help="server threads")
    ap.add_argument("--concurrency", default="1,4", help="client threads, comma-separated")
    ap.add_argument("--store", help="use (or build) the store here instead of a temporary one")
    args = ap.parse_args(argv)
    concurrency = tuple(int(c) for c in args.concurrency.split(","))
    with tempfile.TemporaryDirectory(prefix="audience-bench-") as tmp:
        path = Path(args.store) if args.store else Path(tmp) / "maison"
        if not (path / "store.json").exists():
            t0 = time.perf_counter()
            build_store(path, args.events, args.contacts)
            print(f"built {path}: {args.events:,} events in {time.perf_counter() - t0:.1f} s")
        snap = Store.open(path).snapshot()
        print(f"store: {snap.n_events:,} events, {snap.n_contacts:,} contacts")
        _, token = Sources(path).create("main", "bench", "write")
        port = _free_port()
        proc = _serve(path, port, args.threads)
        try:
            _wait_up(port, proc)
            url = f"http://127.0.0.1:{port}"
            for s in run_workloads(url, token, args.requests, args.seconds, concurrency):
                print(s.line())
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
