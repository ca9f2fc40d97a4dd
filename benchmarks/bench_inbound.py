"""Inbound receiver benchmark: reports per second through a real
``audience inbound`` process, sent over SMTP from client threads on loopback.

Each report is an RFC 3464 delivery-status notification (Gmail style, a
5.1.1 hard bounce) to the VERP address of its own delivery: the receiver
parses it, finds the delivery, records ``email_bounced`` and the
suppression in one synced transaction, and answers 250; a thread of the
receiver ingests the events into the node.

    python -m benchmarks.bench_inbound [--reports 2000] [--clients 4]

prints the rate at which reports were accepted, and how long after the last
answer every event was stored.
"""

from __future__ import annotations

import argparse
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from string import Template

from audience.runtime.bounces.record import rejected
from audience.runtime.bounces.verp import return_path
from audience.runtime.delivery import DeliveryLog, DeliveryRequest
from audience.runtime.delivery.model import wall_ms
from audience.runtime.node import Node
from audience.runtime.tracking.config import secret, write_setting
from audience.runtime.tracking.outbox import pending
from audience.runtime.tracking.tokens import Signer
from benchmarks.bench_http import _free_port

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "audience" / "examples" / "maison.toml"
REPORT = ROOT / "tests" / "corpus" / "feedback" / "gmail_hard.eml"
DOMAIN = "bounces.shop.example"


def build(root: Path, n: int) -> list[tuple[str, bytes]]:
    """A store with ``n`` sent deliveries; (VERP address, report) for each."""
    store = Node.init(root, SCHEMA)
    store.ingest_profiles([{"contact_id": f"c{i}", "email": f"c{i}@gmail.com"} for i in range(n)])
    write_setting(root, "tracking.return_path_domain", DOMAIN)
    signer = Signer(secret(root))
    template = Template(REPORT.read_text(encoding="utf-8"))
    out = []
    with DeliveryLog.open(root) as log, log.grouped():
        for i in range(n):
            d = log.request(
                DeliveryRequest(
                    f"bench:{i}",
                    "main",
                    f"c{i}",
                    f"c{i}@gmail.com",
                    "email",
                    "send_email",
                    {"to": f"c{i}@gmail.com"},
                    wall_ms(),
                    source="plan:Bench",
                )
            )
            verp = return_path(signer, DOMAIN, d.id)
            text = template.safe_substitute(
                VERP=verp,
                TOKEN=signer.sign("b", d.id),
                RCPT=d.email,
                MESSAGE_ID=log.message_id(d.id),
                DELIVERY_KEY=d.key,
            )
            out.append((verp, text.replace("\n", "\r\n").encode()))
    return out


def run(n: int, clients: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "s"
        reports = build(root, n)
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "audience", "inbound", str(root), "--port", str(port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and "listening" in proc.stdout.readline()
            errors: list[str] = []

            def client(part: list[tuple[str, bytes]]) -> None:
                with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
                    for verp, raw in part:
                        c.sendmail("mailer-daemon@googlemail.com", [verp], raw)

            def guarded(part: list[tuple[str, bytes]]) -> None:
                try:
                    client(part)
                except Exception as exc:  # reported, and the figure is not printed
                    errors.append(repr(exc))

            threads = [
                threading.Thread(target=guarded, args=(reports[k::clients],))
                for k in range(clients)
            ]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            sent_s = time.perf_counter() - t0
            if errors:
                raise RuntimeError(errors[0])
            with DeliveryLog.open(root) as log:
                while pending(log):
                    time.sleep(0.01)
                stored_s = time.perf_counter() - t0 - sent_s
                if rejected(log):  # every report names its delivery: none may be rejected
                    raise RuntimeError(f"rejected: {rejected(log)[0]}")
            found = Node.open(root).compile("did email_bounced in last 1 days")
            if len(found.evaluate(as_of=wall_ms() + 60_000)) != n:
                raise RuntimeError("not every report became an email_bounced event")
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return {"reports": n, "per_s": n / sent_s, "seconds": sent_s, "ingest_lag_s": stored_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    r = run(args.reports, args.clients)
    print(
        f"{r['reports']} reports in {r['seconds']:.2f} s: {r['per_s']:.0f} reports/s "
        f"(target 200/s); every event stored {r['ingest_lag_s']:.2f} s after the last answer"
    )


if __name__ == "__main__":
    main()
