"""Delivery commands: ``audience worker`` (send what is due) and
``audience deliveries`` (read the delivery log)."""

from __future__ import annotations

import datetime as dt
import signal
import threading
from pathlib import Path
from types import FrameType

import click
from rich.console import Console
from rich.table import Table


def _store(path: str) -> Path:
    from audience.runtime.store.layout import STORE_FILE

    root = Path(path)
    if not (root / STORE_FILE).is_file():
        raise click.ClickException(f"{path}: not a store (no {STORE_FILE}); see 'audience init'")
    return root


def _iso(ms: int | None) -> str:
    if ms is None:
        return ""
    t = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def _catch_up_triggers(root: Path) -> None:
    """Match the events whose trigger processing an interrupted ingest left undone,
    so their deliveries exist before the worker starts sending."""
    from audience.runtime.store import open_store
    from audience.runtime.store.layout import list_nodes

    for node in list_nodes(root):
        report = open_store(root, node).triggers.catch_up()
        if report.fired:
            click.echo(f"node {node}: {report.fired} trigger firing(s) caught up after a crash")


@click.command("worker")
@click.argument("store", type=click.Path())
@click.option("--once", is_flag=True, help="send what is due now, then exit")
@click.option("--poll", "poll", type=float, default=1.0, show_default=True, help="seconds")
def worker_cmd(store: str, once: bool, poll: float) -> None:
    """Send the due deliveries (SMTP from STORE/smtp.toml or AUDIENCE_SMTP_*)."""
    from audience.runtime.delivery.worker import run_worker

    root = _store(store)
    _catch_up_triggers(root)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()  # finish the delivery in hand, then exit

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        stats = run_worker(root, once=once, poll_s=poll, stop=stop)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(
        f"sent {stats.sent}, retried {stats.retried}, failed {stats.failed}, "
        f"resent after a crash {stats.resent}"
    )


@click.command("deliveries")
@click.argument("store", type=click.Path())
@click.option("--contact", help="only this contact id")
@click.option(
    "--status",
    type=click.Choice(["reserved", "deferred", "suppressed", "sending", "sent", "failed"]),
)
@click.option("--since", help="due at or after T (ISO 8601, or epoch ms)")
@click.option("--limit", type=int, default=50, show_default=True, help="the latest N")
def deliveries_cmd(
    store: str, contact: str | None, status: str | None, since: str | None, limit: int
) -> None:
    """List deliveries from the delivery log."""
    from audience.runtime.delivery import DeliveryLog
    from audience.runtime.evaluate import parse_as_of

    since_ms = None
    if since is not None:
        try:
            since_ms = parse_as_of(int(since) if since.strip().isdigit() else since)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    with DeliveryLog.open(_store(store)) as log:
        log.materialize_all()  # batch members show as rows
        rows = log.list(contact=contact, status=status, since_ms=since_ms, limit=limit)
    table = Table("id", "due", "node", "contact", "channel", "status", "policy / cap", "source")
    for d in rows:
        why = f"{d.policy}: {d.cap}" if d.cap else (d.policy or "")
        if d.last_error and d.status != "sent":
            why = f"{why} ({d.last_error})" if why else d.last_error
        state = d.status + (" (test)" if d.test else "")
        table.add_row(
            str(d.id), _iso(d.due_ms), d.node, d.contact_id, d.channel, state, why, d.source
        )
    Console(width=200).print(table)
    click.echo(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'} shown")


def register(group: click.Group) -> None:
    for cmd in (worker_cmd, deliveries_cmd):
        group.add_command(cmd)
