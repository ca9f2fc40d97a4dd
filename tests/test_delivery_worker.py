"""The worker against real SMTP and HTTP servers on loopback, crashes included."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from audience.runtime.delivery import DeliveryLog, DeliveryRequest
from audience.runtime.delivery.model import wall_ms
from audience.runtime.delivery.smtp import SmtpConfig
from audience.runtime.delivery.worker import WorkerStats, run_worker
from tests.helpers.delivery import MAISON, email_req
from tests.helpers.mail_servers import HttpSink, SmtpSink, http_server, smtp_server

ROOT = Path(__file__).resolve().parents[1]


def _part(msg: EmailMessage, kind: str) -> str:
    body = msg.get_body((kind,))
    assert body is not None
    return str(body.get_content())


def test_emails_reach_the_smtp_server(tmp_path: Path) -> None:
    sink = SmtpSink()
    log = DeliveryLog.open(tmp_path)
    ds = [log.request(email_req(i)) for i in range(3)]
    later = log.request(
        DeliveryRequest(
            "later",
            "main",
            "z",
            "z@x.com",
            "email",
            "send_email",
            {"to": "z@x.com"},
            wall_ms() + 3_600_000,
            None,
        )
    )
    with smtp_server(sink) as port:
        cfg = SmtpConfig(host="127.0.0.1", port=port, from_addr="shop@maison.example")
        stats = run_worker(tmp_path, once=True, smtp=cfg)
    assert stats.sent == 3
    by_id = {str(m["Message-ID"]): m for m in sink.received}
    assert len(by_id) == 3
    for d in ds:
        msg = by_id[log.message_id(d.id)]
        assert msg["Subject"] == f"Welcome {d.contact_id[1:]}"
        assert msg["To"] == d.email and msg["From"] == "shop@maison.example"
        assert msg["X-Audience-Campaign"] == "C-1234"
        assert _part(msg, "plain").strip() == f"Hello {d.contact_id[1:]}"
        assert _part(msg, "html").strip() == f"<p>Hello {d.contact_id[1:]}</p>"
        row = log.get(d.id)
        assert row is not None and row.status == "sent" and row.message_id == log.message_id(d.id)
    assert log.get(later.id).status == "reserved"  # type: ignore[union-attr]  # not due yet


def test_smtp_config_file_and_env(tmp_path: Path) -> None:
    (tmp_path / "smtp.toml").write_text(
        '[smtp]\nhost = "mail.example"\nport = 587\nstarttls = true\nuser = "u"\n'
        'password = "p"\nfrom = "a@b.c"\n'
    )
    cfg = SmtpConfig.load(tmp_path, env={"AUDIENCE_SMTP_PORT": "2525", "AUDIENCE_SMTP_USER": "v"})
    assert (cfg.host, cfg.port, cfg.starttls, cfg.user, cfg.password, cfg.from_addr) == (
        "mail.example",
        2525,
        True,
        "v",
        "p",
        "a@b.c",
    )
    assert SmtpConfig.load(None, env={"AUDIENCE_SMTP_STARTTLS": "0"}).starttls is False


def test_refused_recipient_fails_and_an_unreachable_server_retries(tmp_path: Path) -> None:
    sink = SmtpSink(refuse_rcpt={"bad@example.com"})
    log = DeliveryLog.open(tmp_path)
    bad = log.request(email_req(1, to="bad@example.com"))
    with smtp_server(sink) as port:
        run_worker(tmp_path, once=True, smtp=SmtpConfig(host="127.0.0.1", port=port))
    row = log.get(bad.id)
    assert row is not None and row.status == "failed" and "550" in (row.last_error or "")
    # nothing listens: a transient error goes back to the queue with a backoff
    d = log.request(email_req(2))
    closed = SmtpConfig(host="127.0.0.1", port=1, timeout=2)
    stats = run_worker(tmp_path, once=True, smtp=closed, backoff_s=60)
    assert stats.retried == 1
    row = log.get(d.id)
    assert row is not None and (row.status, row.attempts) == ("reserved", 1)
    assert log.claim(wall_ms(), 1000) is None  # not before the backoff
    assert log.claim(wall_ms() + 61_000, 1000) is not None


def test_webhook_retried_after_a_500(tmp_path: Path) -> None:
    sink = HttpSink(statuses=[500])
    log = DeliveryLog.open(tmp_path)
    with http_server(sink) as base:
        d = log.request(
            DeliveryRequest(
                "wh:1",
                "main",
                "c1",
                None,
                "webhook",
                "webhook",
                {"url": base + "/hook", "body": {"contact": "c1", "n": 1}},
                wall_ms() - 1,
                MAISON,
            )
        )
        gone = log.request(
            DeliveryRequest(
                "wh:2",
                "main",
                "c2",
                None,
                "webhook",
                "webhook",
                {"url": base + "/missing", "body": {}},
                wall_ms() - 1,
                None,
            )
        )
        sink.statuses = [500, 200, 404]
        stats = run_worker(tmp_path, once=True, webhook_timeout=5, webhook_retries=2)
    assert (stats.sent, stats.failed) == (1, 1)
    hooks = [r for r in sink.requests if r[0] == "/hook"]
    assert len(hooks) == 2  # the 500, then the retry
    assert all(body == {"contact": "c1", "n": 1} for _, _, body in hooks)
    keys = {h["Idempotency-Key"] for _, h, _ in hooks}
    assert keys == {log.message_id(d.id)}
    assert log.get(d.id).status == "sent"  # type: ignore[union-attr]
    assert log.get(gone.id).status == "failed"  # type: ignore[union-attr]


WORKER = (
    "import sys\n"
    "from audience.runtime.delivery.worker import run_worker\n"
    "run_worker(sys.argv[1], once=True, lease_s=1, webhook_timeout=0.2, webhook_retries=0)\n"
)


def _spawn(store: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        AUDIENCE_SMTP_HOST="127.0.0.1",
        AUDIENCE_SMTP_PORT=str(port),
        AUDIENCE_SMTP_TIMEOUT="1.5",
        PYTHONPATH=str(ROOT),
    )
    return subprocess.Popen([sys.executable, "-c", WORKER, str(store)], env=env)


@pytest.mark.parametrize("slow_step", ["rcpt", "data"])
def test_killed_worker_resumes_without_losing_a_delivery(tmp_path: Path, slow_step: str) -> None:
    """kill -9 while the server is inside one step of message 4.  Killed in RCPT,
    the server never had it: every message arrives exactly once.  Killed in DATA,
    the server accepted the message but the worker never learned it: that one
    (and only that one) arrives twice, with the same Message-ID (at-least-once)."""
    n = 8
    log = DeliveryLog.open(tmp_path)
    for i in range(n // 2):
        log.request(email_req(i))
    plan = [f"p{i}" for i in range(n // 2)]  # and a plan's batch, made rows by the worker
    log.reserve_batch(
        "main",
        plan,
        [f"{c}@example.com" for c in plan],
        MAISON,
        wall_ms() - 1,
        {"subject": "Plan"},
        "plan:Weekly",
        "plan:1:",
    )
    sink = SmtpSink(slow_step=slow_step, delay=0.3)
    with smtp_server(sink) as port:
        proc = _spawn(tmp_path, port)
        deadline = time.monotonic() + 30
        while sink.entered.count(slow_step) < 4:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)  # let the server finish the step it was in
        with sqlite3.connect(tmp_path / "deliveries.sqlite") as db:
            stuck = db.execute(
                "select id, phase, lease_until from deliveries where status = 'sending'"
            ).fetchall()
        assert len(stuck) == 1
        assert stuck[0][1] == ("data" if slow_step == "data" else "claimed")
        time.sleep(max(0.0, (stuck[0][2] - wall_ms()) / 1000) + 0.1)  # the lease runs out
        proc = _spawn(tmp_path, port)
        assert proc.wait(timeout=60) == 0
    received = sink.message_ids()
    rows = log.list()
    assert len(rows) == n and all(d.status == "sent" for d in rows)
    assert set(received) == {log.message_id(d.id) for d in rows}  # nothing lost
    again = log.get(stuck[0][0])
    assert again is not None
    if slow_step == "rcpt":
        assert len(received) == n and again.resends == 0  # exactly once
    else:
        assert len(received) == n + 1 and again.resends == 1
        assert received.count(log.message_id(again.id)) == 2  # the one uncertain message


def test_polling_worker_sends_a_batch_and_stops(tmp_path: Path) -> None:
    sink = SmtpSink()
    log = DeliveryLog.open(tmp_path)
    stop = threading.Event()
    stats: list[WorkerStats] = []
    with smtp_server(sink) as port:
        cfg = SmtpConfig(host="127.0.0.1", port=port)
        thread = threading.Thread(
            target=lambda: stats.append(run_worker(tmp_path, poll_s=0.05, stop=stop, smtp=cfg))
        )
        thread.start()
        time.sleep(0.2)  # the worker is idle, polling
        counts = log.reserve_batch(
            "main",
            ["a", "b", "c"],
            ["A@x.com", "b@x.com", None],
            MAISON,
            wall_ms() - 1,
            {"subject": "Plan"},
            "plan:Weekly",
            "plan:1:",
        )
        assert counts["reserved"] == 3
        deadline = time.monotonic() + 20
        while len(log.list(status="failed")) + len(log.list(status="sent")) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert sorted(str(m["To"]) for m in sink.received) == ["A@x.com", "b@x.com"]
    assert {str(m["Subject"]) for m in sink.received} == {"Plan"}
    c = log.get_by_key("plan:1:c")
    assert c is not None and c.status == "failed" and c.last_error == "no recipient address"
    assert stats[0].sent == 2 and stats[0].failed == 1 and stats[0].materialized == 3
