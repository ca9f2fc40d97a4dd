"""Store commands: init, ingest, rejected, and saved segments."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from audience.cli.output import console, echo_json, format_option, plural
from audience.runtime.node import Node, open_node
from audience.runtime.store import IngestReport, Store, StoreError

# Files at least this big get a progress bar even when stdout is not a TTY.
LARGE_FILE = 50 * 1024 * 1024


def _open(store: str, node: str) -> Node:
    try:
        return open_node(store, node)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("init")
@click.argument("store", type=click.Path())
@click.option("--schema", "schema_path", required=True, type=click.Path(), help="schema TOML file")
@click.option("--node", default="main", show_default=True)
@click.option(
    "--shards",
    type=int,
    default=None,
    help="split the node's contacts over N shards (by a hash of the contact id)",
)
def init_cmd(store: str, schema_path: str, node: str, shards: int | None) -> None:
    """Create a store (or add a node to one)."""
    try:
        if shards is None:
            Store.init(store, schema_path, node=node)
        else:
            from audience.runtime.shards import ShardedStore

            ShardedStore.init(store, schema_path, node=node, shards=shards)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    sharded = "" if shards is None else f", {plural(shards, 'shard')}"
    click.echo(f"created {store} (node {node}{sharded})")


@click.command("ingest")
@click.argument("store", type=click.Path())
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--profiles", is_flag=True, help="the files hold profiles, not events")
@click.option("--node", default="main", show_default=True)
@click.option(
    "--strict",
    is_flag=True,
    help="exit 1 when any record was rejected (the accepted ones are stored all the same)",
)
def ingest_cmd(store: str, files: tuple[str, ...], profiles: bool, node: str, strict: bool) -> None:
    """Load events (.jsonl, .csv, .parquet); bad records are kept as rejects."""
    st = _open(store, node)
    failed = False
    total = IngestReport()
    for name in files:
        path = Path(name)
        big = path.is_file() and path.stat().st_size >= LARGE_FILE
        show = sys.stdout.isatty() or big
        try:
            if profiles:
                report = st.ingest_profiles(path, progress=show)
            else:
                report = st.ingest_events(path, progress=show)
        except StoreError as exc:
            click.echo(f"error: {exc}", err=True)
            failed = True
            continue
        total.merge(report)
        click.echo(f"{name}: {_summary(report, profiles)}")
        if report.triggers is not None and report.triggers.too_old:
            click.echo(f"  triggers: {report.triggers.too_old_note()}")
        for r in report.rejects[:5]:
            click.echo(f"  {r}", err=True)
        if report.rejected > 5:
            click.echo(f"  ... see 'audience rejected {store}'", err=True)
    if len(files) > 1:
        click.echo(f"total: {_summary(total, profiles)}")
    if strict and total.rejected:
        if total.accepted:
            kept = f"the {plural(total.accepted, 'accepted record')} "
            kept += "is stored" if total.accepted == 1 else "are stored"
        else:
            kept = "no record was accepted"
        click.echo(
            f"error: {plural(total.rejected, 'record')} rejected (--strict); {kept}", err=True
        )
        sys.exit(1)
    if failed:
        sys.exit(1)


def _summary(report: IngestReport, profiles: bool) -> str:
    dup = "" if profiles else f", {plural(report.duplicates, 'duplicate')}"
    text = f"{report.accepted} accepted, {report.rejected} rejected{dup}"
    if report.rejected and not report.accepted and not report.duplicates:
        text += ": every record was rejected, nothing was stored"
    return text


@click.command("rejected")
@click.argument("store", type=click.Path())
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--node", default="main", show_default=True)
@format_option()
def rejected_cmd(store: str, limit: int, node: str, fmt: str) -> None:
    """List the rejected records with their reasons."""
    rejects = _open(store, node).rejected(limit=limit)
    if fmt == "json":
        echo_json(
            [
                {
                    "kind": r.kind,
                    "source": r.source,
                    "line": r.line,
                    "where": r.where,
                    "field": r.field,
                    "reason": r.reason,
                    "record": r.raw,
                }
                for r in rejects
            ]
        )
        return
    table = Table("source", "where", "field", "reason", "record")
    for r in rejects:
        raw = r.raw if len(r.raw) <= 80 else r.raw[:77] + "..."
        table.add_row(*(escape(v) for v in (r.source, r.where, r.field or "", r.reason, raw)))
    console().print(table)
    click.echo(f"{plural(len(rejects), 'rejected record')} shown")


@click.group("segments")
def segments_group() -> None:
    """Saved segments."""


@segments_group.command("save")
@click.argument("store", type=click.Path())
@click.argument("name")
@click.option("-f", "--file", "file", type=click.Path(), help="read the text from FILE")
@click.option("-e", "--expr", "expr", help="the segment text")
@click.option("--node", default="main", show_default=True, help="the schema to check against")
def save_cmd(store: str, name: str, file: str | None, expr: str | None, node: str) -> None:
    """Check a segment against the store's schema and save it under NAME."""
    if (file is None) == (expr is None):
        raise click.UsageError("give exactly one of -f FILE or -e TEXT")
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"cannot read {file}: {exc}") from None
        filename = file
    else:
        assert expr is not None
        text, filename = expr, "<-e>"
    st = _open(store, node)
    _validate(st, name, text, filename)
    try:
        seg = st.save_segment(name, text)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"saved {seg.name} (version {seg.version})")


def _validate(st: Node, name: str, text: str, filename: str) -> None:
    # Imported here: the language front end is heavier than the store commands.
    from audience.dsl.errors import DslError
    from audience.runtime.saved import validate_segment

    try:
        validate_segment(st, name, text, filename=filename)
    except DslError as exc:
        click.echo(exc.with_source(text, filename).render(), err=True)
        sys.exit(1)


@segments_group.command("list")
@click.argument("store", type=click.Path())
@format_option()
def list_cmd(store: str, fmt: str) -> None:
    """List the saved segments."""
    segs = _open(store, "main").list_segments()
    if fmt == "json":
        echo_json([s.to_dict() for s in segs])
        return
    table = Table("name", "version", "updated", "text")
    for s in segs:
        first = s.text.strip().splitlines()[0] if s.text.strip() else ""
        table.add_row(escape(s.name), str(s.version), s.updated, escape(first[:80]))
    console().print(table)


@segments_group.command("show")
@click.argument("store", type=click.Path())
@click.argument("name")
@format_option("text", "json")
def show_cmd(store: str, name: str, fmt: str) -> None:
    """Print a saved segment's text."""
    seg = _open(store, "main").get_segment(name)
    if seg is None:
        raise click.ClickException(f"no saved segment '{name}'")
    if fmt == "json":
        echo_json(seg.to_dict())
        return
    click.echo(seg.text.rstrip("\n"))


@segments_group.command("delete")
@click.argument("store", type=click.Path())
@click.argument("name")
def delete_cmd(store: str, name: str) -> None:
    """Delete a saved segment (not while other segments or triggers use it)."""
    try:
        deleted = _open(store, "main").delete_segment(name)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if not deleted:
        raise click.ClickException(f"no saved segment '{name}'")
    click.echo(f"deleted {name}")


def register(group: click.Group) -> None:
    for cmd in (init_cmd, ingest_cmd, rejected_cmd, segments_group):
        group.add_command(cmd)
