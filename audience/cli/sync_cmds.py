"""``audience syncs``: custom audience syncs to an ads account
(docs/integrations/meta-sync.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from audience.cli.output import console, echo_json, format_option, instant_ms
from audience.integrations.meta.sync.definitions import describe
from audience.integrations.meta.sync.service import job_view, sync_view

if TYPE_CHECKING:
    from audience.integrations.meta.sync.definitions import Job, Sync
    from audience.integrations.meta.sync.service import SyncService


@click.group("syncs")
def syncs_group() -> None:
    """Custom audience syncs (Meta): a node's segment, with consent, matched by email
    and/or phone, uploaded hashed to a custom audience by a job; later runs upload
    only the difference.

    Jobs are run by ``audience syncs work`` or ``audience scheduler``; the Graph
    API is reached as for ``audience integrations`` (AUDIENCE_META_GRAPH_URL ...)."""


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--at", metavar="T", help="the time to act at (ISO 8601); default now")(fn)
    return click.argument("store", type=click.Path())(fn)


def _clock(at: str | None) -> Callable[[], int]:
    from audience.runtime.plans.clock import fixed_clock, wall_clock

    at_ms = instant_ms(at, "--at")
    return wall_clock if at_ms is None else fixed_clock(at_ms)


def _service(store: str, at: str | None) -> SyncService:
    from audience.cli.delivery_cmds import _store
    from audience.integrations.meta.sync.service import SyncService

    return SyncService(_store(store), _clock(at))


def _run(fn: Callable[[], Any]) -> Any:
    from audience.integrations.meta.graph import GraphError
    from audience.integrations.meta.sync.definitions import SyncError
    from audience.integrations.meta.tokens import IntegrationError

    try:
        return fn()
    except SyncError as exc:
        raise click.ClickException(f"{exc} [{exc.code}]") from None
    except (IntegrationError, GraphError) as exc:
        raise click.ClickException(str(exc)) from None


@syncs_group.command("create")
@_common
@click.argument("name")
@click.option("--node", default="main", show_default=True)
@click.option("--segment", required=True, help="a saved segment's name, or a condition")
@click.option("--integration", required=True, help="the connected ads account to upload to")
@click.option("--email", "email_field", metavar="FIELD", help="the profile field holding emails")
@click.option("--phone", "phone_field", metavar="FIELD", help="the profile field holding phones")
@click.option("--consent", "consent_field", metavar="FIELD", help="a bool field: true = consent")
@click.option("--audience-id", help="upload to this existing custom audience")
@click.option("--new-audience", "audience_name", help="create a custom audience of this name")
@click.option(
    "--customer-file-source",
    default="USER_PROVIDED_ONLY",
    show_default=True,
    type=click.Choice(
        ["USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"]
    ),
)
@click.option("--country-code", default="1", show_default=True, help="for phones without one")
@click.option("--schedule", metavar="'every N hours|days'", help="repeat the sync")
@format_option()
def create_cmd(store: str, at: str | None, name: str, fmt: str, **opts: Any) -> None:
    """Save a sync NAME (checked against the store; nothing is uploaded yet).

    \b
    audience syncs create shop women --segment 'gender = "f"' --email email \\
        --consent ads_consent --integration ads --new-audience Women"""
    from audience.integrations.meta.sync.service import SyncSpec

    svc = _service(store, at)
    sync = _run(lambda: svc.create(SyncSpec(name=name, **opts)))
    _show_syncs([sync], fmt, one=True)


def _show_syncs(syncs: list[Sync], fmt: str, one: bool = False) -> None:
    from rich.markup import escape
    from rich.table import Table

    rows = [sync_view(s) for s in syncs]
    if fmt == "json":
        echo_json(rows[0] if one else rows)
        return
    table = Table("name", "node", "segment", "keys", "integration", "audience", "schedule")
    for s, r in zip(syncs, rows, strict=True):
        audience = r["audience_id"] or f"new: {r['audience_name']}"
        table.add_row(
            *(
                escape(str(v or ""))
                for v in (
                    r["name"],
                    r["node"],
                    r["segment"],
                    ", ".join(s.keys),
                    r["integration"],
                    audience,
                    r["schedule"],
                )
            )
        )
    console().print(table)


@syncs_group.command("list")
@_common
@format_option()
def list_cmd(store: str, at: str | None, fmt: str) -> None:
    """The saved syncs."""
    _show_syncs(_service(store, at).defs.all(), fmt)


@syncs_group.command("show")
@_common
@click.argument("name")
@format_option()
def show_cmd(store: str, at: str | None, name: str, fmt: str) -> None:
    """A sync and its latest job (status, progress, counts)."""
    svc = _service(store, at)
    sync = _run(lambda: svc.defs.get(name))
    jobs = svc.defs.jobs(name, limit=1)
    if fmt == "json":
        echo_json({**sync_view(sync), "last_job": job_view(jobs[0]) if jobs else None})
        return
    _show_syncs([sync], fmt)
    click.echo(describe(jobs[0]) if jobs else "no job yet")


@syncs_group.command("run")
@_common
@click.argument("name")
@click.option("--replace", is_flag=True, help="replace the audience's members (one session)")
@click.option("--wait", is_flag=True, help="follow the job to its end, with a progress bar")
@format_option()
def run_cmd(store: str, at: str | None, name: str, replace: bool, wait: bool, fmt: str) -> None:
    """Queue a run of NAME now (a worker runs it; with --wait, this command does
    when no worker holds it). Exit status 1 when a waited job did not succeed."""
    from audience.integrations.meta.sync.definitions import SUCCEEDED

    svc = _service(store, at)
    job, fresh = _run(lambda: svc.run(name, replace=replace))
    if not fresh and fmt != "json":
        click.echo(f"sync {name!r} already has job {job.id} {job.state}", err=True)
    if wait:
        job = _follow(svc, job, at)
    if fmt == "json":
        echo_json(job_view(job))
    else:
        click.echo(describe(job))
    if wait and job.state != SUCCEEDED:
        raise SystemExit(1)


def _follow(svc: SyncService, job: Job, at: str | None) -> Job:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from audience.integrations.meta.sync.definitions import OPEN_STATES
    from audience.integrations.meta.sync.worker import SyncWorker, config_from_env

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(f"sync job {job.id}", total=None)

        def show(j: Job) -> None:
            bar.update(task, completed=j.cursor, total=j.batches_total or None)

        worker = SyncWorker(svc.root, config_from_env(), svc.clock, on_batch=show)
        while True:
            worker.work_once(only=job.id)
            job = svc.defs.job(job.id)
            show(job)
            if job.state not in OPEN_STATES:
                return job
            time.sleep(0.5)  # another worker holds it: follow its progress


@syncs_group.command("schedule")
@_common
@click.argument("name")
@click.argument("every", required=False)
@click.option("--off", is_flag=True, help="stop repeating")
@format_option()
def schedule_cmd(
    store: str, at: str | None, name: str, every: str | None, off: bool, fmt: str
) -> None:
    """Repeat NAME every period ('every 6 hours', 'every 1 day'), from now; --off stops it."""
    if (every is None) != off:
        raise click.UsageError("give a period such as 'every 6 hours', or --off")
    svc = _service(store, at)
    sync = _run(lambda: svc.schedule(name, None if off else every))
    _show_syncs([sync], fmt, one=True)


@syncs_group.command("history")
@_common
@click.argument("name")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@format_option()
def history_cmd(store: str, at: str | None, name: str, limit: int, fmt: str) -> None:
    """NAME's jobs, newest first."""
    svc = _service(store, at)
    _run(lambda: svc.defs.get(name))
    jobs = svc.defs.jobs(name, limit=limit)
    if fmt == "json":
        echo_json([job_view(j) for j in jobs])
        return
    for j in jobs:
        click.echo(describe(j))


@syncs_group.command("delete")
@_common
@click.argument("name")
def delete_cmd(store: str, at: str | None, name: str) -> None:
    """Delete NAME and its history (the custom audience stays on the platform)."""
    svc = _service(store, at)
    _run(lambda: svc.defs.delete(name))
    click.echo(f"deleted sync {name!r}")


@syncs_group.command("work")
@_common
@click.option("--once", is_flag=True, help="one pass, then exit")
@click.option("--lease", default=60.0, show_default=True, help="seconds a job's lease lasts")
def work_cmd(store: str, at: str | None, once: bool, lease: float) -> None:
    """Run the queued sync jobs (and the scheduled syncs that are due), and take over
    the jobs of workers that died."""
    from audience.cli.delivery_cmds import _store
    from audience.integrations.meta.sync.worker import work_store

    work_store(
        _store(store),
        clock=_clock(at),
        once=once,
        lease_s=lease,
        on_job=lambda j: click.echo(describe(j)),
    )


def register(group: click.Group) -> None:
    group.add_command(syncs_group)
