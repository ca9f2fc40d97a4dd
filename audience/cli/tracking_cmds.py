"""Tracking commands (docs/tracking.md): ``audience config`` (the store's
settings: tracking.base_url, tracking.bot_seconds) and ``audience
suppressions`` (the addresses that get no marketing email)."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from audience.cli.delivery_cmds import _iso, _store
from audience.cli.output import console, echo_json, format_option, plural


@click.command("config")
@click.argument("store", type=click.Path())
@click.argument("key", required=False)
@click.argument("value", required=False)
@click.option("--unset", is_flag=True, help="remove KEY's setting (back to its default)")
@format_option()
def config_cmd(store: str, key: str | None, value: str | None, unset: bool, fmt: str) -> None:
    """Show the store's settings, or set KEY to VALUE.

    \b
    audience config shop                                   # every setting
    audience config shop tracking.base_url https://t.shop.example
    audience config shop tracking.bot_seconds 5
    audience config shop tracking.base_url --unset         # links are not tracked

    The secret tracking links are signed with is never shown."""
    from audience.runtime.tracking.config import (
        KEYS,
        TrackingConfigError,
        read_settings,
        write_setting,
    )

    root = _store(store)
    try:
        if key is not None and (value is not None or unset):
            if value is not None and unset:
                raise click.UsageError("give a VALUE or --unset, not both")
            write_setting(root, key, None if unset else value)
        elif key is not None and key not in KEYS:
            raise TrackingConfigError(f"unknown setting {key!r}; settings: {', '.join(KEYS)}")
        settings = read_settings(root)
    except TrackingConfigError as exc:
        raise click.ClickException(str(exc)) from None
    shown = {
        k: settings.get(k.split(".", 1)[1], default)
        for k, (_, default) in KEYS.items()
        if key is None or k == key
    }
    if fmt == "json":
        echo_json(shown)
        return
    for k, v in shown.items():
        click.echo(f"{k} = {'(not set)' if v is None else v}")


@click.group("suppressions")
def suppressions_group() -> None:
    """Addresses that get no marketing email (unsubscribed, bounced, complained)."""


@suppressions_group.command("list")
@click.argument("store", type=click.Path())
@format_option()
def list_cmd(store: str, fmt: str) -> None:
    """Every suppressed address, oldest first."""
    from audience.runtime.tracking.suppression import entries

    found = entries(_store(store))
    if fmt == "json":
        echo_json({"suppressions": [_json(e) for e in found]})
        return
    if not found:
        click.echo("no suppressed address")
        return
    table = Table("email", "reason", "source", "since")
    for e in found:
        table.add_row(escape(e.email), e.reason, escape(e.source or ""), _iso(e.created_ms))
    console().print(table)
    click.echo(plural(len(found), "address", "addresses"))


@suppressions_group.command("add")
@click.argument("store", type=click.Path())
@click.argument("emails", nargs=-1, required=True)
@click.option("--note", help="why (kept as the entry's source)")
def add_cmd(store: str, emails: tuple[str, ...], note: str | None) -> None:
    """Suppress EMAILS: no marketing email is sent to them from now on."""
    from audience.runtime.tracking.suppression import SuppressionError, add

    root = _store(store)
    added = 0
    for email in emails:
        try:
            added += add(root, email, source=note)
        except SuppressionError as exc:
            raise click.ClickException(
                f"{exc}; {plural(added, 'address', 'addresses')} added"
            ) from None
    click.echo(
        f"{plural(added, 'address', 'addresses')} added, {len(emails) - added} already there"
    )


@suppressions_group.command("remove")
@click.argument("store", type=click.Path())
@click.argument("emails", nargs=-1, required=True)
def remove_cmd(store: str, emails: tuple[str, ...]) -> None:
    """Take EMAILS off the list (they get marketing email again)."""
    from audience.runtime.tracking.suppression import remove

    root = _store(store)
    missing = [e for e in emails if not remove(root, e)]
    click.echo(f"{plural(len(emails) - len(missing), 'address', 'addresses')} removed")
    if missing:
        raise click.ClickException(f"not on the list: {', '.join(missing)}")


def _json(e: object) -> dict[str, object]:
    from audience.runtime.tracking.suppression import Suppression

    assert isinstance(e, Suppression)
    return {**e.to_dict(), "created": _iso(e.created_ms)}


def register(group: click.Group) -> None:
    group.add_command(config_cmd)
    group.add_command(suppressions_group)
