"""``audience leadforms``: lead ads forms connected to a node, their leads, the
backfill and the worker that stores the leads (docs/integrations/meta-leads.md)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from audience.cli.output import echo_json, instant_ms

if TYPE_CHECKING:
    from audience.integrations.meta.leads.forms import LeadForm
    from audience.integrations.meta.leads.inbox import InboxLead
    from audience.integrations.meta.leads.worker import LeadWorker

T = TypeVar("T")
_store_arg = click.argument("store", type=click.Path())
_fmt_opt = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
METADATA_NAMES = ("ad_id", "adgroup_id", "form_id", "page_id", "leadgen_id", "created_time")


@click.group("leadforms")
def leadforms_group() -> None:
    """Lead ads forms (Meta) connected to a node: connect, list, show, backfill,
    leads, disconnect, work.

    Leads arrive at the server's /hooks/meta webhook (signed with
    AUDIENCE_META_APP_SECRET; the subscription's verify token is
    AUDIENCE_META_VERIFY_TOKEN) and are stored by a worker ('audience serve'
    runs one; 'leadforms work' is another); the Graph API is reached as for
    'audience integrations'."""


def _refuse(code: str, message: str) -> NoReturn:
    click.echo(f"error[{code}]: {message}", err=True)
    sys.exit(1)


def _run(fn: Callable[[], T]) -> T:
    from audience.integrations.meta.graph import GraphError
    from audience.integrations.meta.leads.mapping import LeadFormError
    from audience.integrations.meta.tokens import IntegrationError
    from audience.runtime.store import StoreError

    try:
        return fn()
    except (LeadFormError, IntegrationError) as err:
        _refuse(err.code, str(err))
    except GraphError as err:
        _refuse("graph_error", str(err))
    except StoreError as err:
        _refuse("store", str(err))


def _worker(store: str, at: str | None = None, lease_s: float = 60.0) -> LeadWorker:
    from audience.cli.delivery_cmds import _store
    from audience.integrations.meta.leads.worker import LeadWorker
    from audience.runtime.plans.clock import fixed_clock, wall_clock

    at_ms = instant_ms(at, "--at")
    clock = wall_clock if at_ms is None else fixed_clock(at_ms)
    return LeadWorker.of(_store(store), clock, lease_ms=int(lease_s * 1000))


def _emit(fmt: str, as_json: list[Any], as_text: list[str], none: str) -> None:
    if fmt == "json":
        echo_json(as_json)
    else:
        click.echo("\n".join(as_text) or none)


def _form_text(form: LeadForm, counts: dict[str, int] | None = None) -> str:
    lines = [
        f"{form.name}: node {form.node}, integration {form.integration}, "
        f"page {form.page_id}, form {form.form_id}, source {form.source!r}",
        "  mapping: "
        + (
            ", ".join(f"{m.field}{'!' if m.required else ''} -> {m.to}" for m in form.fields)
            or "(none)"
        ),
        f"  metadata: {', '.join(form.metadata) or '(none)'}; watermark {form.watermark_s}",
    ]
    if counts is not None:
        lines.append("  leads: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return "\n".join(lines)


def _lead_text(lead: InboxLead) -> str:
    extra = ""
    if lead.unmapped:
        extra += f" unmapped: {', '.join(sorted(lead.unmapped))}"
    if lead.missing:
        extra += f" missing: {', '.join(lead.missing)}"
    if lead.last_error and lead.state != "done":
        extra += f" ({lead.last_error})"
    return f"{lead.leadgen_id}  {lead.state:<8}  {lead.contact_id or '-'}{extra}"


@leadforms_group.command("connect")
@_store_arg
@click.argument("name")
@click.option("--node", default="main", show_default=True)
@click.option("--integration", required=True, help="the integration whose token reads the leads")
@click.option("--page", "page_id", required=True, help="the page id the form belongs to")
@click.option("--form", "form_id", required=True, help="the lead form's id")
@click.option(
    "--map", "mapping", multiple=True, metavar="FIELD=PROFILE", help="form field to profile field"
)
@click.option("--require", multiple=True, metavar="FIELD", help="a mapped form field leads need")
@click.option(
    "--metadata",
    multiple=True,
    type=click.Choice(METADATA_NAMES),
    help="metadata kept on each lead's event (default: all)",
)
@click.option("--no-metadata", is_flag=True, help="keep no metadata but leadgen_id")
@click.option("--source", "source", required=True, help="the constant tag stored on each lead")
@click.option("--source-field", help="a string profile field the tag is also written to")
@click.option(
    "--match-field",
    default="email",
    show_default=True,
    help="the profile field an existing contact is found by",
)
@click.option("--since", help="backfill leads created after T (ISO 8601); default: all")
@_fmt_opt
def connect_cmd(
    store: str,
    name: str,
    node: str,
    integration: str,
    page_id: str,
    form_id: str,
    mapping: tuple[str, ...],
    require: tuple[str, ...],
    metadata: tuple[str, ...],
    no_metadata: bool,
    source: str,
    source_field: str | None,
    match_field: str,
    since: str | None,
    fmt: str,
) -> None:
    """Connect a lead form to a node with a mapping (only the node's profile fields)."""
    from audience.integrations.meta.leads.forms import form_questions, parse_mapping
    from audience.runtime.node import open_store

    worker = _worker(store)
    since_ms = instant_ms(since, "--since")

    def go() -> LeadForm:
        worker.integrations.get(integration)
        schema = open_store(worker.forms.root, node).schema
        return worker.forms.connect(
            name,
            node=node,
            schema=schema,
            integration=integration,
            page_id=page_id,
            form_id=form_id,
            fields=parse_mapping(mapping, require),
            metadata=() if no_metadata else metadata or METADATA_NAMES,
            source=source,
            source_field=source_field,
            match_field=match_field or None,
            since_s=0 if since_ms is None else since_ms // 1000,
            questions=form_questions(worker.integrations, integration),
        )

    form = _run(go)
    if fmt == "json":
        echo_json(form.to_json())
    else:
        click.echo(f"connected {_form_text(form)}")


@leadforms_group.command("list")
@_store_arg
@click.option("--node", help="only this node's forms")
@_fmt_opt
def list_cmd(store: str, node: str | None, fmt: str) -> None:
    """The connected lead forms."""
    forms = _worker(store).forms.all(node)
    _emit(fmt, [f.to_json() for f in forms], [_form_text(f) for f in forms], "no lead forms")


@leadforms_group.command("show")
@_store_arg
@click.argument("name")
@_fmt_opt
def show_cmd(store: str, name: str, fmt: str) -> None:
    """A lead form, with its leads counted by state (and those with unmapped or missing fields)."""
    worker = _worker(store)
    form = _run(lambda: worker.forms.get(name))
    counts = worker.inbox.counts(form.form_id)
    if fmt == "json":
        echo_json({**form.to_json(), "leads": counts})
    else:
        click.echo(_form_text(form, counts))


@leadforms_group.command("backfill")
@_store_arg
@click.argument("name")
@_fmt_opt
def backfill_cmd(store: str, name: str, fmt: str) -> None:
    """Fetch and store the form's leads created since its watermark."""
    from audience.integrations.meta.leads.backfill import backfill

    worker = _worker(store)
    result = _run(lambda: backfill(worker, name))
    if fmt == "json":
        echo_json(result.to_json())
    else:
        r = result.to_json()
        click.echo(
            f"{name}: {r['fetched']} fetched, {r['new']} new, {r['duplicates']} already known, "
            f"{r['stored']} stored; watermark {r['watermark']}"
        )


@leadforms_group.command("leads")
@_store_arg
@click.argument("name", required=False)
@click.option("--state", type=click.Choice(["pending", "done", "unrouted", "failed"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@_fmt_opt
def leads_cmd(store: str, name: str | None, state: str | None, limit: int, fmt: str) -> None:
    """The most recent leads (of one form, or all), newest first."""
    worker = _worker(store)
    form_id = None if name is None else _run(lambda: worker.forms.get(name)).form_id
    leads = worker.inbox.recent(form_id, state, limit)
    _emit(fmt, [x.to_json() for x in leads], [_lead_text(x) for x in leads], "no leads")


@leadforms_group.command("disconnect")
@_store_arg
@click.argument("name")
def disconnect_cmd(store: str, name: str) -> None:
    """Stop storing a form's leads (stored leads stay; new ones wait, unrouted)."""
    worker = _worker(store)
    _run(lambda: worker.forms.disconnect(name))
    click.echo(f"disconnected {name}")


@leadforms_group.command("work")
@_store_arg
@click.option("--once", is_flag=True, help="store what is due, then stop")
@click.option("--lease-s", type=float, default=60.0, show_default=True)
def work_cmd(store: str, once: bool, lease_s: float) -> None:
    """Store the pending leads (until interrupted, or --once)."""
    from audience.cli.delivery_cmds import _store
    from audience.integrations.meta.leads.worker import run_worker

    n = run_worker(_store(store), once=once, lease_s=lease_s)
    click.echo(f"{n} lead(s) taken")


def register(group: click.Group) -> None:
    group.add_command(leadforms_group)
