"""``audience plans ...``, ``audience messages ...`` and ``audience scheduler``:
saved plans and deliveries (docs/language/plans.md) and the scheduler that runs them.

The saved deliveries are ``messages`` here: ``audience deliveries STORE``
already lists the delivery log (what was sent).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import click

from audience.cli.cluster_opts import cluster_error, cluster_options
from audience.cli.output import echo_json, instant_ms
from audience.dsl.errors import DslError
from audience.runtime.node import Node, open_node
from audience.runtime.plans.clock import Clock, fixed_clock, wall_clock
from audience.runtime.plans.service import PlanError, PlanService
from audience.runtime.shards.errors import NotOnShards
from audience.runtime.store import StoreError
from audience.timecalc import iso_utc

_store_arg = click.argument("store", type=click.Path())
_name_arg = click.argument("name")
_node_opt = click.option("--node", default="main", show_default=True)
_fmt_opt = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
_at_opt = click.option("--at", "at", help="act as if the clock read T (ISO 8601 or epoch ms)")


def _clock(at: str | None) -> Clock:
    ms = instant_ms(at, "--at")
    return wall_clock if ms is None else fixed_clock(ms)


def _open(store: str, node: str) -> Node:
    try:
        return open_node(store, node)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def _on_cluster(st: Node, cluster: str, workers: int | None) -> Any:
    """The ``ClusterStore`` of a sharded node (closed on leaving its ``with``)."""
    from audience.dist import ClusterStore, LocalOptions
    from audience.runtime.node import ShardedNode

    if not isinstance(st, ShardedNode):
        raise click.ClickException(
            f"{st.path}: node '{st.node}' is not sharded; --cluster needs one"
        )
    return ClusterStore.on(st, cluster, LocalOptions(workers=workers))


def _service(store: str, node: str, at: str | None = None) -> PlanService:
    return PlanService(_open(store, node), _clock(at))


def _refuse(err: PlanError) -> NoReturn:
    click.echo(f"error[{err.code}]: {err.message}", err=True)
    sys.exit(1)


def _iso(ms: int | None) -> str:
    return "" if ms is None else iso_utc(ms, "seconds")


def _read(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read {file}: {exc}") from None


def _add(store: str, file: str, node: str, at: str | None, plans: bool) -> None:
    svc = _service(store, node, at)
    try:
        result = svc.add(_read(file), "<stdin>" if file == "-" else file, plans=plans)
    except DslError as err:
        click.echo(err.render(), err=True)
        sys.exit(1)
    except PlanError as err:
        _refuse(err)
    for d in result.deliveries:
        click.echo(f"saved delivery {d.name!r} (version {d.version})")
    for p in result.plans:
        click.echo(f"saved plan {p.name!r} (version {p.version}, {p.state})")


# ---------------------------------------------------------------------------- plans
@click.group("plans")
def plans() -> None:
    """Plans: send a delivery to a segment on a schedule."""


@plans.command("add")
@_store_arg
@click.argument("file", type=click.Path())
@_node_opt
@_at_opt
def plans_add(store: str, file: str, node: str, at: str | None) -> None:
    """Check and save the delivery and plan blocks of FILE ('-': stdin).
    A new plan is a draft; an edited one keeps its state if the rules allow."""
    _add(store, file, node, at, plans=True)


@plans.command("list")
@_store_arg
@_node_opt
@_fmt_opt
@_at_opt
def plans_list(store: str, node: str, fmt: str, at: str | None) -> None:
    """The saved plans, their state and next occurrence."""
    svc = _service(store, node, at)
    rows = [svc.describe(p) for p in svc.list_plans()]
    if fmt == "json":
        echo_json({"plans": rows})
        return
    for r in rows:
        nxt = r["next_occurrence"] or "-"
        click.echo(f"{r['name']}\t{r['state']}\tversion {r['version']}\tnext {nxt}")
    click.echo(f"{len(rows)} plan{'' if len(rows) == 1 else 's'}")


@plans.command("show")
@_store_arg
@_name_arg
@_node_opt
@_fmt_opt
@_at_opt
def plans_show(store: str, name: str, node: str, fmt: str, at: str | None) -> None:
    """A plan's text, state and last run."""
    svc = _service(store, node, at)
    try:
        info = svc.describe(svc.get_plan(name))
    except PlanError as err:
        _refuse(err)
    if fmt == "json":
        echo_json(info)
        return
    click.echo(f"# {info['state']}, version {info['version']}, next {info['next_occurrence']}")
    click.echo(info["text"], nl=False)


@plans.command("ready")
@_store_arg
@_name_arg
@_node_opt
@_at_opt
def plans_ready(store: str, name: str, node: str, at: str | None) -> None:
    """Check a plan and make it ready: the scheduler runs it from now on."""
    try:
        p = _service(store, node, at).make_ready(name)
    except PlanError as err:
        _refuse(err)
    click.echo(f"plan {p.name!r} is ready (version {p.version})")


@plans.command("draft")
@_store_arg
@_name_arg
@_node_opt
@_at_opt
def plans_draft(store: str, name: str, node: str, at: str | None) -> None:
    """Make a plan a draft again: it does not run."""
    try:
        p = _service(store, node, at).make_draft(name)
    except PlanError as err:
        _refuse(err)
    click.echo(f"plan {p.name!r} is a draft (version {p.version})")


@plans.command("delete")
@_store_arg
@_name_arg
@_node_opt
def plans_delete(store: str, name: str, node: str) -> None:
    """Delete a plan (its runs and history stay)."""
    try:
        _service(store, node).delete_plan(name)
    except PlanError as err:
        _refuse(err)
    click.echo(f"deleted plan {name!r}")


@plans.command("preview")
@_store_arg
@_name_arg
@_node_opt
@click.option("--when", "when", help="the instant (default: the next occurrence)")
@_fmt_opt
@_at_opt
@cluster_options("the audience of a sharded node's plan", "for this command")
def plans_preview(
    store: str,
    name: str,
    node: str,
    when: str | None,
    fmt: str,
    at: str | None,
    cluster: str | None,
    workers: int | None,
) -> None:
    """Who the plan would reach at an instant; writes nothing."""
    from audience.runtime.plans.preview import preview

    unreachable = cluster_error(cluster, workers)
    st = _open(store, node)
    instant = instant_ms(when, "--when")
    try:
        if cluster is None:
            out = preview(st, name, instant, clock=_clock(at))
        else:
            with _on_cluster(st, cluster, workers) as on_cluster:
                out = preview(st, name, instant, clock=_clock(at), cluster=on_cluster)
    except PlanError as err:
        _refuse(err)
    except (NotOnShards, unreachable) as exc:
        raise click.ClickException(str(exc)) from None
    except DslError as err:
        click.echo(err.render(), err=True)
        sys.exit(1)
    if fmt == "json":
        echo_json(out)
        return
    click.echo(
        f"plan {name!r} at {out['at']}: audience {out['audience']}, "
        f"without email {out['without_email']}, held by DND {out['held']}, "
        f"to send {out['to_send']}"
    )
    for cap, n in out["held_by_cap"].items():
        click.echo(f"  held by {cap}: {n}")
    for group, ids in out["samples"].items():
        if ids:
            click.echo(f"  {group.replace('_', ' ')}: {', '.join(ids)}")


@plans.command("runs")
@_store_arg
@click.argument("name", required=False)
@_node_opt
@click.option("--limit", type=int, default=50, show_default=True, help="the latest N")
@_fmt_opt
def plans_runs(store: str, name: str | None, node: str, limit: int, fmt: str) -> None:
    """The runs of a plan (of every plan without NAME), oldest first."""
    svc = _service(store, node)
    runs = svc.defs.list_runs(node, name, limit=limit)
    if fmt == "json":
        echo_json({"runs": [r.to_dict() for r in runs]})
        return
    for r in runs:
        c = r.counts
        counts = ", ".join(f"{k} {v}" for k, v in c.items() if k != "by_cap")
        note = f"({r.note})" if r.note else ""
        tail = " ".join(t for t in (counts, note) if t)
        click.echo(f"{r.plan}\t{_iso(r.occurrence_ms)}\t{r.state}\t{tail}")
    click.echo(f"{len(runs)} run{'' if len(runs) == 1 else 's'}")


# ---------------------------------------------------------------------------- messages
@click.group("messages")
def messages() -> None:
    """Deliveries that plans send: a template and its envelope."""


@messages.command("add")
@_store_arg
@click.argument("file", type=click.Path())
@_node_opt
def messages_add(store: str, file: str, node: str) -> None:
    """Check and save the delivery blocks of FILE ('-': stdin)."""
    _add(store, file, node, None, plans=False)


@messages.command("list")
@_store_arg
@_node_opt
@_fmt_opt
def messages_list(store: str, node: str, fmt: str) -> None:
    """The saved deliveries."""
    rows = _service(store, node).list_deliveries()
    if fmt == "json":
        echo_json(
            {"deliveries": [{"name": d.name, "version": d.version, "text": d.text} for d in rows]}
        )
        return
    for d in rows:
        click.echo(f"{d.name}\tversion {d.version}\tupdated {d.updated}")
    click.echo(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}")


@messages.command("show")
@_store_arg
@_name_arg
@_node_opt
@_fmt_opt
def messages_show(store: str, name: str, node: str, fmt: str) -> None:
    """A saved delivery's text."""
    try:
        d = _service(store, node).get_delivery(name)
    except PlanError as err:
        _refuse(err)
    if fmt == "json":
        echo_json({"name": d.name, "version": d.version, "text": d.text, "updated": d.updated})
        return
    click.echo(f"# version {d.version}, updated {d.updated}")
    click.echo(d.text, nl=False)


@messages.command("delete")
@_store_arg
@_name_arg
@_node_opt
def messages_delete(store: str, name: str, node: str) -> None:
    """Delete a delivery no plan sends."""
    try:
        _service(store, node).delete_delivery(name)
    except PlanError as err:
        _refuse(err)
    click.echo(f"deleted delivery {name!r}")


@messages.command("test")
@_store_arg
@_name_arg
@click.option("--contact", help="render with this contact's fields")
@_node_opt
@_fmt_opt
def messages_test(store: str, name: str, contact: str | None, node: str, fmt: str) -> None:
    """Send a delivery to its test list now (marked test, never counted by DND)."""
    from audience.runtime.plans.preview import test_send

    try:
        sent = test_send(_open(store, node), name, contact)
    except PlanError as err:
        _refuse(err)
    except NotOnShards as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        echo_json({"sent": sent})
        return
    for s in sent:
        click.echo(f"test delivery {s['id']} to {s['to']}: {s['status']}")


# ---------------------------------------------------------------------------- scheduler
@click.command("scheduler")
@_store_arg
@click.option("--once", is_flag=True, help="run what is due now, then exit")
@click.option("--at", "at", help="run as if the clock read T (ISO 8601 or epoch ms)")
@click.option("--poll", type=float, default=1.0, show_default=True, help="seconds, at most")
@click.option("--lease", type=float, default=60.0, show_default=True, help="seconds")
@cluster_options("the audiences of sharded nodes' plans", "for this command")
def scheduler_cmd(
    store: str,
    once: bool,
    at: str | None,
    poll: float,
    lease: float,
    cluster: str | None,
    workers: int | None,
) -> None:
    """Run the ready plans' occurrences when they are due, each exactly once
    (several schedulers may run at once)."""
    from audience.runtime.plans.scheduler import TickReport, run_scheduler
    from audience.runtime.store.layout import STORE_FILE

    if not (Path(store) / STORE_FILE).is_file():
        raise click.ClickException(f"{store}: not a store (no {STORE_FILE}); see 'audience init'")
    unreachable = cluster_error(cluster, workers)
    start = instant_ms(at, "--at")
    clock: Clock = wall_clock
    if start is not None:
        # --once reads exactly T; a long run starts at T and moves with the wall clock
        offset = start - wall_clock()
        clock = fixed_clock(start) if once else (lambda: wall_clock() + offset)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()  # finish the run in hand, then exit

    def on_tick(report: TickReport) -> None:
        lines = report.lines()
        for line in lines:
            click.echo(line)
        if once and not lines:
            click.echo(f"nothing was due at {_iso(report.now_ms)}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        run_scheduler(
            store,
            clock=clock,
            once=once,
            poll_s=poll,
            stop=stop,
            lease_s=lease,
            on_tick=on_tick,
            cluster=cluster,
            cluster_workers=workers,
        )
    except unreachable as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(group: click.Group) -> None:
    for cmd in (plans, messages, scheduler_cmd):
        group.add_command(cmd)
