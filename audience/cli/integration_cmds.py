"""``audience integrations``: connected ads accounts and their access tokens
(docs/integrations/meta.md)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from audience.cli.output import console, echo_json, format_option, instant_ms

if TYPE_CHECKING:
    from audience.integrations.meta.tokens import Integration, Integrations


@click.group("integrations")
def integrations_group() -> None:
    """Ads accounts (Meta) connected with an access token: connect, list, check,
    re-authorize, and the reminders before a token ends.

    The Graph API is reached at AUDIENCE_META_GRAPH_URL (default
    https://graph.facebook.com), version AUDIENCE_META_GRAPH_VERSION; with
    AUDIENCE_META_APP_ID and AUDIENCE_META_APP_SECRET, tokens are checked with the
    app token and short-lived ones are exchanged for long-lived ones."""


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--at", metavar="T", help="the time to judge expiry at (ISO 8601); default now"
    )(fn)
    return click.argument("store", type=click.Path())(fn)


def _token_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--token-file",
        type=click.File("r"),
        default="-",
        show_default=True,
        help="read the access token from this file ('-': standard input), never the command line",
    )(fn)


def _integrations(store: str, at: str | None) -> Integrations:
    from audience.cli.delivery_cmds import _store
    from audience.integrations.meta.graph import graph_config_from_env
    from audience.integrations.meta.tokens import Integrations
    from audience.runtime.plans.clock import fixed_clock, wall_clock

    at_ms = instant_ms(at, "--at")
    clock = wall_clock if at_ms is None else fixed_clock(at_ms)
    return Integrations(_store(store), graph_config_from_env(), clock)


def _run(fn: Callable[[], Any]) -> Any:
    from audience.integrations.meta.graph import GraphError
    from audience.integrations.meta.tokens import IntegrationError

    try:
        return fn()
    except (IntegrationError, GraphError) as exc:
        raise click.ClickException(str(exc)) from None


def _show(items: list[Integration], ints: Integrations, fmt: str, one: bool = True) -> None:
    from rich.markup import escape
    from rich.table import Table

    from audience.integrations.meta.tokens import integration_json

    now = ints.clock()
    rows = [integration_json(i, now) for i in items]
    if fmt == "json":
        echo_json(rows[0] if one else rows)
        return
    table = Table("name", "account", "token", "status", "ends", "note")
    for r in rows:
        note = r["refused"] or ""
        table.add_row(
            *(escape(str(r[k] or "")) for k in ("name", "account_id", "token", "status", "ends")),
            escape(note),
        )
    console().print(table)


@integrations_group.command("connect")
@_common
@click.argument("name")
@click.option("--account", "account_id", required=True, help="the ads account id (act_N or N)")
@_token_option
@format_option()
def connect_cmd(
    store: str, at: str | None, name: str, account_id: str, token_file: Any, fmt: str
) -> None:
    """Connect an ads account under NAME with an access token (checked first).

    \b
    audience integrations connect shop ads --account act_123 < token.txt"""
    ints = _integrations(store, at)
    i = _run(lambda: ints.connect(name, account_id, token_file.read()))
    _show([i], ints, fmt)


@integrations_group.command("list")
@_common
@format_option()
def list_cmd(store: str, at: str | None, fmt: str) -> None:
    """The connected accounts, their status (active, expiring, inactive) and when
    their token ends; then the reminders."""
    ints = _integrations(store, at)
    _show(ints.all(), ints, fmt, one=False)
    if fmt != "json":
        for r in ints.reminders():
            click.echo(f"reminder: {r.message}", err=True)


@integrations_group.command("check")
@_common
@click.argument("name", required=False)
@format_option()
def check_cmd(store: str, at: str | None, name: str | None, fmt: str) -> None:
    """Ask the platform whether NAME's token (without NAME: every one) is still
    valid, record the answer, and raise the reminders now due as webhook
    deliveries (once each; `audience worker` sends them).  Exits 1 when one is
    inactive."""
    from audience.integrations.meta.reminders import raise_due
    from audience.runtime.delivery.log import DeliveryLog

    ints = _integrations(store, at)
    names = [name] if name is not None else [i.name for i in ints.all()]
    checked = [_run(functools.partial(ints.check, n)) for n in names]
    log = DeliveryLog.open(ints.path.parent)
    try:
        raised = raise_due(ints, log, only=name)
    finally:
        log.close()
    _show(checked, ints, fmt, one=name is not None)
    for r in raised:
        if r.new:
            click.echo(
                f"reminder raised: {r.reminder.message} (webhook delivery {r.delivery_id})",
                err=True,
            )
    if any(i.status(ints.clock()) == "inactive" for i in checked):
        sys.exit(1)


@integrations_group.command("delete")
@click.argument("store", type=click.Path())
@click.argument("name")
def delete_cmd(store: str, name: str) -> None:
    """Forget NAME and its token (nothing changes on the platform's side)."""
    ints = _integrations(store, None)
    _run(lambda: ints.delete(name))
    click.echo(f"deleted integration {name!r}")


@integrations_group.command("reminders")
@_common
@format_option()
def reminders_cmd(store: str, at: str | None, fmt: str) -> None:
    """The reminders due: tokens that end within the reminder days (7 and 1 unless
    set) or are inactive, and where each one's webhook goes."""
    from rich.markup import escape
    from rich.table import Table

    from audience.integrations.meta.reminders import body, due, load_settings

    ints = _integrations(store, at)
    settings = load_settings(ints)
    now = ints.clock()
    rows = [{**body(r, now), "url": r.url} for r in due(ints, settings)]
    if fmt == "json":
        echo_json(
            {"reminders": rows, "webhook": {"url": settings.url, "days": list(settings.days)}}
        )
        return
    days = ", ".join(str(d) for d in settings.days)
    click.echo(f"reminder webhook: {settings.url or '(none)'}; days before the end: {days}")
    if not rows:
        click.echo("no reminder is due")
        return
    table = Table("integration", "status", "reminder", "ends", "days left", "webhook")
    for r in rows:
        cells = ("integration", "status", "reminder", "ends", "days_left", "url")
        table.add_row(*(escape(str(r[k] if r[k] is not None else "")) for k in cells))
    console().print(table)
    for r in rows:
        click.echo(r["message"])


@integrations_group.command("reminder-webhook")
@click.argument("store", type=click.Path())
@click.option("--url", help="post reminders to this http(s) URL")
@click.option("--clear", is_flag=True, help="post none (they are still listed)")
@click.option(
    "--days",
    type=int,
    multiple=True,
    help="remind this many days before a token ends (repeatable; default 7 and 1)",
)
@click.option("--integration", "name", help="set this integration's own URL instead of the store's")
def reminder_webhook_cmd(
    store: str, url: str | None, clear: bool, days: tuple[int, ...], name: str | None
) -> None:
    """Where reminders are posted: the store's webhook (and the days before a token
    ends that it is told), or one integration's own.

    \b
    audience integrations reminder-webhook shop --url https://ops.example/hooks/ads --days 14
    audience integrations reminder-webhook shop --integration ads --clear"""
    from audience.integrations.meta.reminders import save_settings

    if clear == (url is not None):
        raise click.UsageError("give --url or --clear")
    ints = _integrations(store, None)
    if name is not None:
        if days:
            raise click.UsageError("--days is the store's: give it without --integration")
        i = _run(lambda: ints.set_reminder_url(name, url))
        click.echo(f"integration {name!r}: reminders to {i.reminder_url or 'the store webhook'}")
        return
    s = _run(lambda: save_settings(ints, url, days or None))
    shown = ", ".join(str(d) for d in s.days)
    click.echo(f"reminders to {s.url or '(none)'}, {shown} day(s) before a token ends")


@integrations_group.command("reauthorize")
@_common
@click.argument("name")
@_token_option
@format_option()
def reauthorize_cmd(store: str, at: str | None, name: str, token_file: Any, fmt: str) -> None:
    """Give NAME a new access token (a short-lived one is exchanged for a long-lived
    one when the app id and secret are configured).

    \b
    audience integrations reauthorize shop ads < new-token.txt"""
    ints = _integrations(store, at)
    i = _run(lambda: ints.reauthorize(name, token_file.read()))
    _show([i], ints, fmt)


def register(group: click.Group) -> None:
    group.add_command(integrations_group)
