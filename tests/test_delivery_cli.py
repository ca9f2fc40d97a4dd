"""``audience worker`` and ``audience deliveries`` on a real store."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from audience.cli import delivery_cmds
from audience.runtime.delivery import DeliveryLog
from audience.runtime.delivery.model import wall_ms
from audience.runtime.delivery.smtp import SmtpConfig
from audience.runtime.delivery.worker import SmtpNotConfigured, run_worker
from audience.runtime.store import Store
from tests.helpers.delivery import HOUR, MAISON, email_req
from tests.helpers.mail_servers import SmtpSink, smtp_server

SCHEMA = Path(__file__).resolve().parents[1] / "audience" / "examples" / "maison.toml"


@click.group()
def cli() -> None:
    pass


delivery_cmds.register(cli)


def test_worker_and_deliveries_commands(tmp_path: Path) -> None:
    store = tmp_path / "shop"
    Store.init(store, SCHEMA)
    log = DeliveryLog.open(store)
    first = log.request(email_req(1))
    second = log.request(replace(email_req(1), key="again"))
    assert second.status == "suppressed"
    log.reserve_batch(
        "main",
        ["b1", "b2"],
        ["b1@x.com", None],
        MAISON,
        first.due_ms + HOUR,
        {"subject": "plan"},
        "plan:Weekly",
        "plan:1:",
    )
    runner = CliRunner()
    sink = SmtpSink()
    with smtp_server(sink) as port:
        env = {"AUDIENCE_SMTP_HOST": "127.0.0.1", "AUDIENCE_SMTP_PORT": str(port)}
        res = runner.invoke(cli, ["worker", str(store), "--once"], env=env)
    assert res.exit_code == 0, res.output
    assert "sent 1," in res.output  # the plan's deliveries are due in an hour
    assert sink.message_ids() == [log.message_id(first.id)]
    res = runner.invoke(cli, ["deliveries", str(store)])
    assert res.exit_code == 0, res.output
    assert "4 deliveries shown" in res.output
    assert "max 1 per day" in res.output and "plan:Weekly" in res.output
    res = runner.invoke(cli, ["deliveries", str(store), "--status", "sent", "--contact", "c1"])
    assert "1 delivery shown" in res.output and " sent " in res.output
    res = runner.invoke(cli, ["deliveries", str(store), "--since", "2999-01-01", "--limit", "5"])
    assert "0 deliveries shown" in res.output
    res = runner.invoke(cli, ["deliveries", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "not a store" in res.output
    res = runner.invoke(cli, ["deliveries", str(store), "--since", "yesterday"])
    assert res.exit_code == 2 and "--since" in res.output


# the runner's environment without any SMTP setting (the store has no smtp.toml)
NO_SMTP_ENV = {f"AUDIENCE_SMTP_{k}": None for k in ("HOST", "PORT", "USER", "PASSWORD", "FROM")}


def _shop(tmp_path: Path) -> tuple[Path, DeliveryLog]:
    store = tmp_path / "shop"
    Store.init(store, SCHEMA)
    return store, DeliveryLog.open(store)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_without_smtp_says_so_and_sends_nothing(tmp_path: Path) -> None:
    store, log = _shop(tmp_path)
    ds = [log.request(email_req(i)) for i in (1, 2)]
    res = CliRunner().invoke(cli, ["worker", str(store), "--once"], env=NO_SMTP_ENV)
    assert res.exit_code == 1
    assert "2 emails are due, but no SMTP server is configured" in res.stderr
    assert str(store / "smtp.toml") in res.stderr and "AUDIENCE_SMTP_HOST" in res.stderr
    assert "sent 0" not in res.output
    for d in ds:  # untouched: no attempt counted
        row = log.get(d.id)
        assert row is not None and (row.status, row.attempts, row.last_error) == (
            "reserved",
            0,
            None,
        )


def test_worker_without_smtp_stops_at_the_first_email_of_a_batch(tmp_path: Path) -> None:
    """Batch members become rows while the worker runs, after its first look at the queue."""
    store, log = _shop(tmp_path)
    log.reserve_batch(
        "main", ["b1"], ["b1@x.com"], None, wall_ms() - 1000, {"subject": "plan"}, "plan:W", "p:"
    )
    with pytest.raises(SmtpNotConfigured, match="no SMTP server is configured"):
        run_worker(store, once=True, smtp=SmtpConfig.load(store, env={}))
    (row,) = log.list()
    assert row.status == "reserved" and row.last_error == "not sent: no SMTP server is configured"
    assert log.claim(wall_ms(), 1000) is not None  # still due


def test_worker_says_why_nothing_went_and_exits_1(tmp_path: Path) -> None:
    store, log = _shop(tmp_path)
    d = log.request(email_req(1))
    port = _closed_port()
    (store / "smtp.toml").write_text(f'[smtp]\nhost = "127.0.0.1"\nport = {port}\ntimeout = 5\n')
    res = CliRunner().invoke(cli, ["worker", str(store), "--once"], env=NO_SMTP_ENV)
    assert res.exit_code == 1
    assert "sent 0, retried 1, failed 0" in res.stdout
    assert f"SMTP server 127.0.0.1:{port}, set in {store / 'smtp.toml'}" in res.stderr
    assert "1 delivery could not be sent and will be tried again from" in res.stderr
    assert "Connection" in res.stderr  # the error itself
    row = log.get(d.id)
    assert row is not None and row.status == "reserved" and row.attempts == 1
    (store / "smtp.toml").write_text("[smtp\n")
    res = CliRunner().invoke(cli, ["worker", str(store), "--once"], env=NO_SMTP_ENV)
    assert res.exit_code == 1 and "cannot read the SMTP settings" in res.stderr
    assert "smtp.toml" in res.stderr


def test_deliveries_show_recipient_subject_retry_sent_and_error_apart(tmp_path: Path) -> None:
    store, log = _shop(tmp_path)
    sent = log.request(email_req(1))
    sink = SmtpSink()
    with smtp_server(sink) as port:
        run_worker(store, once=True, smtp=SmtpConfig(host="127.0.0.1", port=port))
    again = log.request(email_req(3))
    run_worker(store, once=True, smtp=SmtpConfig(host="127.0.0.1", port=_closed_port()))
    failed = log.request(
        replace(email_req(4), key="bad", email=None, payload={"subject": "No one"})
    )
    run_worker(store, once=True, smtp=SmtpConfig(host="127.0.0.1", port=_closed_port()))
    res = CliRunner().invoke(cli, ["deliveries", str(store), "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in json.loads(res.stdout)}
    assert rows[sent.id]["to"] == "c1@example.com" and rows[sent.id]["subject"] == "Welcome 1"
    assert rows[sent.id]["status"] == "sent" and rows[sent.id]["sent"].endswith("Z")
    assert rows[sent.id]["next_retry"] is None and rows[sent.id]["error"] is None
    retry = rows[again.id]
    assert retry["status"] == "reserved" and retry["attempts"] == 1
    assert retry["next_retry"] > retry["due"] and "SMTP" in retry["error"]
    assert retry["policy"] == "Maison" and retry["cap"] is None
    assert rows[failed.id]["status"] == "failed"
    assert rows[failed.id]["error"] == "no recipient address"
    res = CliRunner().invoke(cli, ["deliveries", str(store)])
    header = next(ln for ln in res.stdout.splitlines() if " due " in ln)
    for column in ("to", "subject", "status", "policy / cap", "next retry", "sent", "error"):
        assert f" {column} " in header, column
    line = next(ln for ln in res.stdout.splitlines() if "no recipient address" in ln)
    assert "│ Maison " in line  # the policy, alone in its cell
    assert "3 deliveries shown" in res.stdout
