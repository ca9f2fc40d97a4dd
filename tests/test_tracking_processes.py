"""``audience serve`` and its ingesting process, as real processes: what a
killed server left in the tracking outbox is ingested when one starts again,
a click recorded over HTTP reaches the store, and kill -9 of the server takes
its ingesting process with it."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
from pathlib import Path

from audience.runtime.delivery import DeliveryLog, DeliveryRequest
from audience.runtime.delivery.model import wall_ms
from audience.runtime.node import Node
from audience.runtime.tracking.config import write_setting
from audience.runtime.tracking.outbox import pending, to_outbox
from audience.runtime.tracking.sending import Tracker
from tests.helpers.mail_servers import free_port
from tests.helpers.processes import alive, children, cmdline, server_up, until
from tests.helpers.tracking import SCHEMA

ROOT = Path(__file__).resolve().parents[1]


def _count(root: Path, text: str) -> int:
    return len(Node.open(root).compile(text).evaluate(as_of=wall_ms() + 86_400_000))


def test_a_server_ingests_what_a_killed_one_left_and_its_ingester_dies_with_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "shop"
    Node.init(root, SCHEMA).ingest_profiles([{"contact_id": "a", "email": "a@x.example"}])
    port = free_port()
    write_setting(root, "tracking.base_url", f"http://127.0.0.1:{port}")
    with DeliveryLog.open(root) as log:
        d = log.request(
            DeliveryRequest(
                "plan:main:P:1:0:a",
                "main",
                "a",
                "a@x.example",
                "email",
                "send_email",
                {"html": '<a href="https://shop.example/">Shop</a>'},
                wall_ms() - 3_600_000,
                source="plan:P",
            )
        )
        tracker = Tracker.for_store(log, root)
        assert tracker is not None
        payload, _ = tracker.prepare(d)
        click = payload["html"].split('href="', 1)[1].split('"', 1)[0].split(str(port), 1)[1]
        # what a server killed before its ingest left behind
        with log.transaction() as conn:
            for i in range(3):
                ev = {"id": f"left-{i}", "contact_id": "a", "type": "email_opened", "ts": wall_ms()}
                to_outbox(conn, "main", ev)
        code = "from audience.cli import main\nmain()\n"
        cmd = [sys.executable, "-c", code, "serve", str(root), "--port", str(port)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        try:
            until("the server answers", lambda: server_up(port, proc))
            until("the outbox is drained", lambda: pending(log) == 0)
            assert _count(root, "did email_opened exactly 3 times") == 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", click)
            resp = conn.getresponse()
            assert (resp.status, resp.getheader("Location")) == (302, "https://shop.example/")
            until("the click is stored", lambda: _count(root, "did email_clicked") == 1)
            [ingester] = [c for c in children(proc.pid) if b"outbox" in cmdline(c)]
            assert alive(ingester)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            until("the ingester exits with its server", lambda: not alive(ingester))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
