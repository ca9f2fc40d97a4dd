"""``audience integrations``: connected ads accounts and their access tokens
(docs/integrations/meta.md)."""

from __future__ import annotations

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
    re-authorize.

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
    from audience.integrations.meta.tokens import Integrations, graph_config_from_env
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
@click.argument("name")
@format_option()
def check_cmd(store: str, at: str | None, name: str, fmt: str) -> None:
    """Ask the platform whether NAME's token is still valid and record the answer."""
    ints = _integrations(store, at)
    i = _run(lambda: ints.check(name))
    _show([i], ints, fmt)
    if i.status(ints.clock()) == "inactive":
        sys.exit(1)


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
