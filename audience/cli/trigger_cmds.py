"""``audience triggers|dnd|templates ...``: saved triggers, DND policies and
email templates of a store, and the triggers' dry run."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from audience.cli.output import echo_json, instant_ms, plural
from audience.dsl.errors import DslError
from audience.runtime.node import Node, open_node
from audience.runtime.store import StoreError
from audience.runtime.triggers import SavedTrigger, TemplateError, TriggerEngine, dry_run
from audience.runtime.triggers.dryrun import outcome


def _engine(store: str, node: str) -> TriggerEngine:
    try:
        st: Node = open_node(store, node)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    return st.triggers


def _text(file: str | None, expr: str | None) -> tuple[str, str]:
    if bool(file) == bool(expr):
        raise click.UsageError("give -f FILE or -e TEXT")
    if expr is not None:
        return expr, "<-e>"
    assert file is not None
    if file == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(file).read_text(encoding="utf-8"), file
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read {file}: {exc}") from None


def _fail_dsl(err: DslError) -> NoReturn:
    click.echo(err.render(), err=True)
    sys.exit(1)


_store = click.argument("store", type=click.Path())
_node = click.option("--node", default="main", show_default=True)
_format = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON document, for scripts",
)
_source = [
    click.option("-f", "--file", "file", type=click.Path(), help="rules file ('-': stdin)"),
    click.option("-e", "expr", help="rules text"),
]


F = TypeVar("F", bound=Callable[..., Any])


def _with_source(fn: F) -> F:
    for opt in reversed(_source):
        fn = opt(fn)
    return fn


# ---------------------------------------------------------------------------- triggers
@click.group("triggers")
def triggers() -> None:
    """Triggers: react to one incoming event."""


@triggers.command("add")
@_store
@_with_source
@click.option("--disabled", is_flag=True, help="save it disabled")
@click.option(
    "--valid-from",
    help="fires only for events at or after T (ISO 8601 or epoch ms; default: now, or the "
    "one a saved trigger has; an earlier T replays history)",
)
@click.option("--valid-until", help="fires only for events before T (ISO 8601)")
@_node
def trigger_add(
    store: str,
    file: str | None,
    expr: str | None,
    disabled: bool,
    valid_from: str | None,
    valid_until: str | None,
    node: str,
) -> None:
    """Check and save the triggers of a text (and the DND policies beside them)."""
    text, name = _text(file, expr)
    eng = _engine(store, node)
    try:
        saved, policies = eng.add(
            text,
            name,
            enabled=not disabled,
            valid_from_ms=instant_ms(valid_from, "--valid-from"),
            valid_until_ms=instant_ms(valid_until, "--valid-until"),
        )
    except DslError as err:
        _fail_dsl(err)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    for p in policies:
        click.echo(f"saved dnd policy {p.name!r} (version {p.version})")
    for t in saved:
        state = "enabled" if t.enabled else "disabled"
        click.echo(
            f"saved trigger {t.name!r} (version {t.version}, {state}, "
            f"fires for events from {_valid_from(t)})"
        )
    if not saved:
        click.echo("no trigger in the text", err=True)
        sys.exit(1)


@triggers.command("list")
@_store
@_format
@_node
def trigger_list(store: str, fmt: str, node: str) -> None:
    """The saved triggers."""
    found = _engine(store, node).defs.list_triggers()
    if fmt == "json":
        echo_json({"triggers": [t.to_dict() for t in found]})
        return
    for t in found:
        state = "enabled" if t.enabled else "disabled"
        click.echo(
            f"{t.name}\tversion {t.version}\t{state}\tvalid from {_valid_from(t)}"
            f"\tupdated {t.updated}"
        )


def _valid_from(t: SavedTrigger) -> str:
    return str(t.to_dict()["valid_from"] or "any time")


def _history(eng: TriggerEngine, kind: str, name: str, fmt: str) -> None:
    versions = eng.defs.history(kind, name)
    if fmt == "json":
        echo_json({"name": name, "versions": [v.to_dict() for v in versions]})
        return
    for v in versions:
        click.echo(f"# version {v.version}, saved {v.saved}\n{v.body}")


@triggers.command("show")
@_store
@click.argument("name")
@click.option("--history", is_flag=True, help="every saved version")
@_format
@_node
def trigger_show(store: str, name: str, history: bool, fmt: str, node: str) -> None:
    """A saved trigger's text."""
    eng = _engine(store, node)
    t = eng.defs.get_trigger(name)
    if t is None:
        raise click.ClickException(f"no trigger named {name!r}")
    if history:
        _history(eng, "triggers", name, fmt)
        return
    if fmt == "json":
        echo_json(t.to_dict())
        return
    state = "enabled" if t.enabled else "disabled"
    click.echo(f"# version {t.version}, {state}, valid from {_valid_from(t)}, updated {t.updated}")
    click.echo(t.text, nl=False)


def _set_enabled(store: str, name: str, node: str, enabled: bool) -> None:
    t = _engine(store, node).defs.set_enabled(name, enabled)
    if t is None:
        raise click.ClickException(f"no trigger named {name!r}")
    click.echo(f"trigger {name!r} {'enabled' if enabled else 'disabled'}")


@triggers.command("enable")
@_store
@click.argument("name")
@_node
def trigger_enable(store: str, name: str, node: str) -> None:
    """Enable a trigger."""
    _set_enabled(store, name, node, True)


@triggers.command("disable")
@_store
@click.argument("name")
@_node
def trigger_disable(store: str, name: str, node: str) -> None:
    """Disable a trigger (it fires nothing until enabled)."""
    _set_enabled(store, name, node, False)


@triggers.command("delete")
@_store
@click.argument("name")
@_node
def trigger_delete(store: str, name: str, node: str) -> None:
    """Delete a trigger (its history stays)."""
    if not _engine(store, node).defs.delete_trigger(name):
        raise click.ClickException(f"no trigger named {name!r}")
    click.echo(f"deleted trigger {name!r}")


@triggers.command("dry-run")
@_store
@click.option("--since", help="first event time (ISO 8601 or epoch ms)")
@click.option("--until", help="last event time (ISO 8601 or epoch ms)")
@_format
@click.option("--limit", type=int, default=20, show_default=True, help="deliveries listed")
@_node
def trigger_dry_run(
    store: str, since: str | None, until: str | None, fmt: str, limit: int, node: str
) -> None:
    """Replay stored events through the current triggers, as if they had existed
    then (valid-from included): what would have happened and why, and apart,
    what the delivery log already holds for those events.  Writes nothing."""
    st = _engine(store, node).store
    try:
        report = dry_run(st, instant_ms(since, "--since"), instant_ms(until, "--until"))
    except StoreError as exc:  # e.g. a sharded node
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        echo_json(report.to_dict(limit=max(limit, 0)))
        return
    click.echo(
        f"{plural(report.events, 'event')}, {report.matched} matched, {report.fired} would fire"
    )
    for name, n in sorted(report.too_old.items()):
        click.echo(f"  {n} before the valid-from of {name!r} (replayed; live they fire nothing)")
    for why, n in sorted(report.skipped.items()):
        click.echo(f"  would not fire ({why}): {n}")
    would = report.by_outcome()
    click.echo(
        "would: " + (", ".join(f"{what} {n}" for what, n in sorted(would.items())) or "nothing")
    )
    for why, n in sorted(report.held_by().items()):
        click.echo(f"  held by {why}: {n}")
    for d in report.deliveries[: max(limit, 0)]:
        what, why = outcome(d)
        click.echo(f"  {what}\t{d.contact_id}\t{d.source}" + (f"\t{why}" if why else ""))
    held = Counter(d.status for d in report.in_log)
    click.echo(
        "already in the delivery log for these events: "
        + (", ".join(f"{st_} {n}" for st_, n in sorted(held.items())) or "nothing")
    )


@triggers.command("catch-up")
@_store
@_node
def trigger_catch_up(store: str, node: str) -> None:
    """Match the ingests an interrupted process left unmatched."""
    report = _engine(store, node).catch_up()
    click.echo(f"{plural(report.events, 'event')} matched again, {report.fired} fired")


# ---------------------------------------------------------------------------- dnd
@click.group("dnd")
def dnd() -> None:
    """DND policies: frequency caps."""


@dnd.command("add")
@_store
@_with_source
@_node
def dnd_add(store: str, file: str | None, expr: str | None, node: str) -> None:
    """Check and save the DND policies of a text."""
    text, name = _text(file, expr)
    try:
        saved = _engine(store, node).add_policies(text, name)
    except DslError as err:
        _fail_dsl(err)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    for p in saved:
        click.echo(f"saved dnd policy {p.name!r} (version {p.version})")
    if not saved:
        click.echo("no dnd policy in the text", err=True)
        sys.exit(1)


@dnd.command("list")
@_store
@_format
@_node
def dnd_list(store: str, fmt: str, node: str) -> None:
    """The saved DND policies."""
    found = _engine(store, node).defs.list_policies()
    if fmt == "json":
        echo_json({"policies": [p.to_dict() for p in found]})
        return
    for p in found:
        click.echo(f"{p.name}\tversion {p.version}\tupdated {p.updated}")


@dnd.command("show")
@_store
@click.argument("name")
@click.option("--history", is_flag=True, help="every saved version")
@_format
@_node
def dnd_show(store: str, name: str, history: bool, fmt: str, node: str) -> None:
    """A saved DND policy's text."""
    eng = _engine(store, node)
    p = eng.defs.get_policy(name)
    if p is None:
        raise click.ClickException(f"no dnd policy named {name!r}")
    if history:
        _history(eng, "dnd_policies", name, fmt)
        return
    if fmt == "json":
        echo_json(p.to_dict())
        return
    click.echo(f"# version {p.version}, updated {p.updated}")
    click.echo(p.text, nl=False)


@dnd.command("delete")
@_store
@click.argument("name")
@_node
def dnd_delete(store: str, name: str, node: str) -> None:
    """Delete a DND policy (a trigger that names it then sends nothing)."""
    if not _engine(store, node).defs.delete_policy(name):
        raise click.ClickException(f"no dnd policy named {name!r}")
    click.echo(f"deleted dnd policy {name!r}")


# ---------------------------------------------------------------------------- templates
@click.group("templates")
def templates() -> None:
    """Email templates (subject, HTML and text with {{ fields }})."""


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read {path}: {exc}") from None


@templates.command("add")
@_store
@click.argument("name")
@click.option("--subject", required=True)
@click.option("--html", "html_file", required=True, type=click.Path(), help="HTML body file")
@click.option("--text", "text_file", required=True, type=click.Path(), help="text body file")
@_node
def template_add(
    store: str, name: str, subject: str, html_file: str, text_file: str, node: str
) -> None:
    """Save a template (a new version when the name exists)."""
    eng = _engine(store, node)
    try:
        t = eng.add_template(name, subject, _read(html_file), _read(text_file))
    except (TemplateError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"saved template {t.name!r} (version {t.version})")


@templates.command("list")
@_store
@_format
@_node
def template_list(store: str, fmt: str, node: str) -> None:
    """The saved templates."""
    found = _engine(store, node).defs.list_templates()
    if fmt == "json":
        echo_json({"templates": [t.to_dict() for t in found]})
        return
    for t in found:
        click.echo(f"{t.name}\tversion {t.version}\tupdated {t.updated}")


@templates.command("show")
@_store
@click.argument("name")
@click.option("--history", is_flag=True, help="every saved version")
@_format
@_node
def template_show(store: str, name: str, history: bool, fmt: str, node: str) -> None:
    """A saved template."""
    eng = _engine(store, node)
    t = eng.defs.get_template(name)
    if t is None:
        raise click.ClickException(f"no template named {name!r}")
    if history:
        _history(eng, "templates", name, fmt)
        return
    if fmt == "json":
        echo_json(t.to_dict())
        return
    click.echo(f"# version {t.version}, updated {t.updated}")
    click.echo(f"subject: {t.subject}\n--- html\n{t.html}\n--- text\n{t.text}")


@templates.command("delete")
@_store
@click.argument("name")
@_node
def template_delete(store: str, name: str, node: str) -> None:
    """Delete a template (its history stays)."""
    if not _engine(store, node).defs.delete_template(name):
        raise click.ClickException(f"no template named {name!r}")
    click.echo(f"deleted template {name!r}")


def register(group: click.Group) -> None:
    group.add_command(triggers)
    group.add_command(dnd)
    group.add_command(templates)
