"""``audience inbound`` (docs/bounces.md): the SMTP receiver of bounces and
feedback reports, the import of saved reports, and the list of rejected
messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from audience.cli.delivery_cmds import _iso, _store
from audience.cli.output import console, echo_json, format_option, plural


class _InboundGroup(click.Group):
    """``audience inbound STORE`` is ``audience inbound serve STORE``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["serve", *args]
        return super().parse_args(ctx, args)


@click.group("inbound", cls=_InboundGroup)
def inbound_group() -> None:
    """Receive bounces and spam complaints (SMTP receiver, file import)."""


@inbound_group.command("serve")
@click.argument("store", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2525, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--max-size",
    default=10 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(1024),
    help="bytes; a bigger message is refused (552)",
)
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="seconds a client may stay idle, or in DATA, before it is disconnected",
)
def serve_cmd(store: str, host: str, port: int, max_size: int, timeout: float) -> None:
    """Receive delivery-status and feedback reports by SMTP until stopped.

    \b
    audience inbound shop --host 0.0.0.0 --port 25

    Mail is taken for bounces@ and bounces+TOKEN@ the store's
    tracking.return_path_domain; each report becomes email_bounced or
    email_complained for its delivery, or is listed by 'audience inbound
    rejected'."""
    import asyncio

    from audience.runtime.bounces.receiver import serve
    from audience.runtime.tracking.config import TrackingConfig, TrackingConfigError

    root = _store(store)
    try:
        domain = TrackingConfig.load(root).return_path_domain
    except TrackingConfigError as exc:
        raise click.ClickException(str(exc)) from None

    def ready(h: str, p: int) -> None:
        click.echo(f"audience inbound: listening on smtp://{h}:{p}", nl=True)
        if domain is None:
            click.echo(
                "note: no tracking.return_path_domain is set: mail to bounces@ any domain "
                "is taken, and sent messages carry no VERP return path",
                err=True,
            )

    try:
        asyncio.run(serve(root, host, port, max_bytes=max_size, timeout=timeout, ready=ready))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@inbound_group.command("import")
@click.argument("store", type=click.Path())
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@format_option()
def import_cmd(store: str, files: tuple[Path, ...], fmt: str) -> None:
    """Record the reports in FILES (.eml: one message; mbox: several)."""
    from audience.runtime.bounces.files import FileError, import_files
    from audience.runtime.bounces.record import Inbound, signer_for
    from audience.runtime.delivery.log import DeliveryLog
    from audience.runtime.tracking.outbox import drain_all, node_stores

    root = _store(store)
    with DeliveryLog.open(root) as log:
        try:
            outcomes = import_files(Inbound(log, signer_for(root)), list(files))
        except FileError as exc:
            raise click.ClickException(f"{exc}; nothing imported") from None
        drain_all(log, node_stores(root))
    counts = {k: sum(o.kind == k for o in outcomes) for k in ("bounce", "complaint", "rejected")}
    if fmt == "json":
        echo_json({**counts, "messages": [o.to_dict() for o in outcomes]})
        return
    click.echo(
        f"{plural(len(outcomes), 'message')}: {plural(counts['bounce'], 'bounce')}, "
        f"{plural(counts['complaint'], 'complaint')}, {counts['rejected']} rejected"
    )
    for o in outcomes:
        if o.kind == "rejected":
            click.echo(f"  rejected ({o.reason}): {o.detail}")


@inbound_group.command("rejected")
@click.argument("store", type=click.Path())
@click.option("--limit", type=click.IntRange(1), help="only the latest N")
@format_option()
def rejected_cmd(store: str, limit: int | None, fmt: str) -> None:
    """The messages the receiver or an import could not use, newest first, and why."""
    from audience.runtime.bounces.record import rejected
    from audience.runtime.delivery.log import DeliveryLog

    with DeliveryLog.open(_store(store)) as log:
        rows = rejected(log, limit)
    if fmt == "json":
        echo_json({"rejected": [_json(r) for r in rows]})
        return
    if not rows:
        click.echo("no rejected message")
        return
    table = Table("received", "origin", "reason", "detail", "from", "size")
    for r in rows:
        table.add_row(
            _iso(r["received_ms"]),
            escape(r["origin"]),
            r["reason"],
            escape(r["detail"]),
            escape(r["mail_from"] or ""),
            str(r["size"]),
        )
    console().print(table)
    click.echo(plural(len(rows), "message"))


def _json(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "received": _iso(r["received_ms"])}


def register(group: click.Group) -> None:
    group.add_command(inbound_group)
