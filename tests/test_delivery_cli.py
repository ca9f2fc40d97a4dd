"""``audience worker`` and ``audience deliveries`` on a real store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
from click.testing import CliRunner

from audience.cli import delivery_cmds
from audience.runtime.delivery import DeliveryLog
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
