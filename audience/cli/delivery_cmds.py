"""Delivery commands: ``audience worker`` (send what is due) and
``audience deliveries`` (read the delivery log)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from audience.cli.output import console, echo_json, format_option, plural
from audience.timecalc import iso_utc

if TYPE_CHECKING:
    from audience.runtime.delivery import Delivery
    from audience.runtime.delivery.smtp import SmtpConfig
    from audience.runtime.delivery.worker import WorkerStats


def _store(path: str) -> Path:
    from audience.runtime.store.layout import STORE_FILE

    root = Path(path)
    if not (root / STORE_FILE).is_file():
        raise click.ClickException(f"{path}: not a store (no {STORE_FILE}); see 'audience init'")
    return root


def _iso(ms: int | None) -> str:
    return "" if ms is None else iso_utc(ms, "seconds")


def _catch_up_triggers(root: Path) -> None:
    """Match the events whose trigger processing an interrupted ingest left undone,
    so their deliveries exist before the worker starts sending."""
    from audience.runtime.node import open_node
    from audience.runtime.store.layout import list_nodes

    for node in list_nodes(root):
        report = open_node(root, node).triggers.catch_up()
        if report.fired:
            fired = plural(report.fired, "trigger firing")
            click.echo(f"node {node}: {fired} caught up after a crash")


@click.command("worker")
@click.argument("store", type=click.Path())
@click.option(
    "--once", is_flag=True, help="send what is due now, then exit (1 if any could not be sent)"
)
@click.option("--poll", "poll", type=float, default=1.0, show_default=True, help="seconds")
def worker_cmd(store: str, once: bool, poll: float) -> None:
    """Send the due deliveries (SMTP from STORE/smtp.toml or AUDIENCE_SMTP_*)."""
    from audience.runtime.delivery.smtp import SmtpConfig, SmtpConfigError
    from audience.runtime.delivery.worker import SmtpNotConfigured, run_worker

    root = _store(store)
    try:
        smtp = SmtpConfig.load(root)
    except SmtpConfigError as exc:
        raise click.ClickException(f"cannot read the SMTP settings: {exc}") from None
    _catch_up_triggers(root)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()  # finish the delivery in hand, then exit

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        stats = run_worker(root, once=once, poll_s=poll, stop=stop, smtp=smtp)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return
    except SmtpNotConfigured as exc:
        done = exc.stats
        due = f"{plural(exc.due, 'email is', 'emails are')} due, but " if exc.due else ""
        if done.handled:
            click.echo(_summary(done))
        raise click.ClickException(f"{due}{exc}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(_summary(stats))
    _explain_trouble(store, stats, smtp)
    if once and (stats.retried or stats.failed):
        sys.exit(1)


def _summary(stats: WorkerStats) -> str:
    text = f"sent {stats.sent}, retried {stats.retried}, failed {stats.failed}"
    if stats.resent:
        text += f", resent after a crash {stats.resent}"
    return text


def _explain_trouble(store: str, stats: WorkerStats, smtp: SmtpConfig) -> None:
    """Say in words why deliveries did not go, and what happens to them."""
    if not (stats.retried or stats.failed):
        return
    where = ""
    if stats.last_error_kind == "send_email":
        where = f" (SMTP server {smtp.server}, set in {smtp.origin})"
    lines = [f"the last error: {stats.last_error}{where}"]
    if stats.retried:
        lines.append(
            f"{plural(stats.retried, 'delivery', 'deliveries')} could not be sent and will be "
            f"tried again from {_iso(stats.next_retry_ms)} by the next 'audience worker {store}'"
        )
    if stats.failed:
        lines.append(
            f"{plural(stats.failed, 'delivery', 'deliveries')} failed for good (not retried): "
            f"see 'audience deliveries {store} --status failed'"
        )
    for line in lines:
        click.echo(line, err=True)


@click.command("deliveries")
@click.argument("store", type=click.Path())
@click.option("--contact", help="only this contact id")
@click.option(
    "--status",
    type=click.Choice(["reserved", "deferred", "suppressed", "sending", "sent", "failed"]),
)
@click.option("--since", help="due at or after T (ISO 8601, or epoch ms)")
@click.option("--limit", type=int, default=50, show_default=True, help="the latest N")
@format_option()
def deliveries_cmd(
    store: str, contact: str | None, status: str | None, since: str | None, limit: int, fmt: str
) -> None:
    """List deliveries from the delivery log: recipient, subject, status, next retry,
    sent time and the last error of each."""
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
    if fmt == "json":
        echo_json([_delivery_json(d) for d in rows])
        return
    table = Table(
        "id",
        "due",
        "node",
        "contact",
        "to",
        "subject",
        "status",
        "policy / cap",
        "next retry",
        "sent",
        "error",
        "source",
    )
    for d in rows:
        table.add_row(
            str(d.id),
            _iso(d.due_ms),
            escape(d.node),
            escape(d.contact_id),
            escape(_short(_recipient(d))),
            escape(_short(_subject(d))),
            d.status + (" (test)" if d.test else ""),
            escape(f"{d.policy}: {d.cap}" if d.cap else (d.policy or "")),
            _iso(_next_retry(d)),
            _iso(d.sent_ms),
            escape(_short(d.last_error or "", 80)),
            escape(d.source),
        )
    console().print(table)
    click.echo(f"{plural(len(rows), 'delivery', 'deliveries')} shown")


def _recipient(d: Delivery) -> str:
    to = d.payload.get("to") or d.payload.get("url") or d.email
    return "" if to is None else str(to)


def _subject(d: Delivery) -> str:
    subject = d.payload.get("subject")
    return "" if subject is None else " ".join(str(subject).splitlines())


def _next_retry(d: Delivery) -> int | None:
    """When a delivery that failed an attempt is tried again (None: not waiting on one)."""
    waiting = d.status in ("reserved", "deferred") and d.attempts > 0
    return max(d.next_attempt_ms, d.due_ms) if waiting else None


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "node": d.node,
        "contact_id": d.contact_id,
        "email": d.email,
        "to": _recipient(d) or None,
        "subject": d.payload.get("subject"),
        "channel": d.channel,
        "kind": d.kind,
        "status": d.status,
        "policy": d.policy,
        "cap": d.cap,
        "requested": _iso(d.requested_ms),
        "due": _iso(d.due_ms),
        "next_retry": _iso(_next_retry(d)) or None,
        "sent": _iso(d.sent_ms) or None,
        "attempts": d.attempts,
        "error": d.last_error,
        "test": d.test,
        "source": d.source,
        "payload": d.payload,
    }


def register(group: click.Group) -> None:
    for cmd in (worker_cmd, deliveries_cmd):
        group.add_command(cmd)
