"""``audience eval``: evaluate a segment over a store and print the audience."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import click

from audience.cli.cluster_opts import cluster_options
from audience.cli.output import console, plural
from audience.timecalc import iso_utc

if TYPE_CHECKING:
    from audience.runtime.node import ShardedNode

FORMATS = ("count", "ids", "jsonl", "csv", "json")


def _segment_source(store: Any, expr: str | None, file: str | None, name: str | None) -> Any:
    """The StoreSegment to evaluate: -e TEXT, -f FILE [--segment NAME], or a saved NAME."""
    from audience.dsl.ast import Segment
    from audience.dsl.parser import parse

    if expr is not None:
        return store.compile(expr, filename="<-e>")
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise click.UsageError(f"cannot read {file}: {exc}") from None
        program = parse(text, filename=file)
        if program.condition is not None:
            if name:
                raise click.UsageError(f"{file} holds a bare condition, not segment {name!r}")
            return store.compile(text, filename=file)
        segments = [d for d in program.definitions if isinstance(d, Segment)]
        names = ", ".join(repr(s.name) for s in segments) or "none"
        if name is not None:
            chosen = [s for s in segments if s.name == name]
            if not chosen:
                raise click.UsageError(f"{file} has no segment {name!r} (segments: {names})")
        elif len(segments) == 1:
            chosen = segments
        else:
            raise click.UsageError(
                f"{file} holds several segments ({names}); pick one with --segment"
            )
        siblings = {s.name: s for s in segments}
        return store.segment_compiler.compile_segment(
            chosen[0], text=text, filename=file, siblings=siblings
        )
    assert name is not None
    saved = store.get_segment(name)
    if saved is None:
        known = ", ".join(repr(s.name) for s in store.list_segments()) or "none"
        raise click.UsageError(f"no saved segment {name!r} (saved: {known})")
    return store.compile(saved.text, filename=f"<segment {name!r}>")


def _print_explain(explain: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console(stderr=True)
    table = Table(title="how the audience was found", show_header=True, header_style="bold")
    table.add_column("step")
    table.add_column("contacts", justify="right")
    table.add_column("ms", justify="right")
    table.add_column("event blocks read / skipped", justify="right")
    for step in explain.get("steps", []):
        parts = (
            f"{step['partitions_read']} / {step['partitions_skipped']}"
            if "partitions_read" in step
            else ""
        )
        count = step.get("count")
        table.add_row(
            escape(str(step["what"])),
            "" if count is None else f"{count:,}",
            f"{step['ms']:.2f}",
            parts,
        )
    out.print(table)
    rules = explain.get("rules", [])
    labels = {r["label"] for r in rules}
    for r in rules:
        out.print(f"rule {escape(json.dumps(r['label'], ensure_ascii=False))}: {r['count']:,}")
    for r in explain.get("operands", []):
        if r["text"] not in labels:  # a rule operand is listed above under its label
            out.print(f"condition {escape(str(r['text']))}: {r['count']:,}")
    fields = ", ".join(explain.get("columns", [])) or "none"
    blocks: dict[str, int] = explain.get("partitions") or {}
    read = "; no events read"
    if blocks.get("read"):
        total = plural(blocks.get("total", 0), "block")
        read = f"; read {blocks['read']} of the store's {total} of events (kept by month)"
        if blocks.get("skipped"):
            read += f", skipped {blocks['skipped']} that could not match"
    shards = explain.get("shards")
    over = f" over {shards} shards (counts and ms summed)" if shards else ""
    out.print(
        f"audience: {explain['count']:,} of {explain['universe']:,} contacts{over}; "
        f"{explain['total_ms']:.2f} ms{read}; fields read: {fields}"
    )


@click.command("eval")
@click.argument("store_path", metavar="STORE")
@click.option("-e", "expr", metavar="TEXT", help="The segment or condition text.")
@click.option("-f", "file", metavar="FILE", help="A rules file.")
@click.option("--segment", "name", metavar="NAME", help="The segment of FILE, or a saved one.")
@click.option("--as-of", "as_of", metavar="T", help="Evaluation time (ISO 8601); default now.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="count",
    show_default=True,
    help="json: one object with the count (and, with --explain, the explain)",
)
@click.option(
    "--fields",
    metavar="F1,F2",
    help="Profile fields to print beside each contact id (jsonl and csv).",
)
@click.option(
    "--explain", is_flag=True, help="Counts per rule, time per step (on stderr; in json: in it)."
)
@click.option("--node", default="main", show_default=True)
@cluster_options("a sharded STORE", "for this command")
def eval_cmd(
    store_path: str,
    expr: str | None,
    file: str | None,
    name: str | None,
    as_of: str | None,
    fmt: str,
    fields: str | None,
    explain: bool,
    node: str,
    cluster: str | None,
    workers: int | None,
) -> None:
    """Evaluate a segment over STORE and print its audience."""
    from audience.dsl.errors import DslError
    from audience.runtime.node import open_node
    from audience.runtime.store import StoreError

    if expr is not None and file is not None:
        raise click.UsageError("give -e TEXT or -f FILE, not both")
    if expr is None and file is None and name is None:
        raise click.UsageError("give -e TEXT, -f FILE or --segment NAME")
    if expr is not None and name is not None:
        raise click.UsageError("--segment picks a segment of -f FILE or a saved one; not with -e")
    if fields is not None and fmt not in ("jsonl", "csv"):
        raise click.UsageError("--fields goes with --format jsonl or csv")
    if workers is not None and cluster != "local":
        raise click.UsageError("--workers goes with --cluster local")
    try:
        store = open_node(store_path, node)
        names = _fields(store, fields)
        segment = _segment_source(store, expr, file, name)  # before any cluster starts
        # the audience and its fields read the same version (of every shard)
        if cluster is not None:
            hits, snaps = _on_cluster(store, segment, cluster, workers, as_of, names, explain)
        elif _sharded(store):
            from audience.runtime.evaluate import parse_as_of

            snaps = store.snapshots()
            now_ms = parse_as_of(as_of, segment.compiled.timezone)
            hits = segment.evaluate_on(snaps, now_ms, explain=explain)
        else:
            snaps = [store.snapshot()]
            hits = segment.compiled.evaluate(snaps[0], as_of, explain=explain)
    except StoreError as exc:
        raise click.UsageError(str(exc)) from None
    except DslError as err:
        click.echo(err.render(), err=True)
        sys.exit(1)
    except (ValueError, TypeError) as exc:  # a bad --as-of
        raise click.UsageError(str(exc)) from None
    out = sys.stdout
    if fmt == "count":
        out.write(f"{len(hits)}\n")
    elif fmt == "json":
        doc: dict[str, Any] = {"count": len(hits), "as_of": _iso(hits.now_ms)}
        if hits.explain is not None:
            doc["explain"] = hits.explain
        out.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    elif fmt == "jsonl" and names:
        for row in _rows(snaps, hits, names):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "csv" and names:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["contact_id", *names])
        for row in _rows(snaps, hits, names):
            writer.writerow(_csv_cell(v) for v in row.values())
    else:  # ids, jsonl, csv: streamed from the Arrow ids, a chunk at a time
        from audience.runtime.ids import write_text

        write_text(hits.to_arrow().column("contact_id"), fmt, out)
    out.flush()
    if explain and hits.explain is not None and fmt != "json":
        _print_explain(hits.explain)


def _sharded(store: Any) -> TypeGuard[ShardedNode]:
    from audience.runtime.node import ShardedNode

    return isinstance(store, ShardedNode)


def _on_cluster(
    store: Any,
    segment: Any,
    cluster: str,
    workers: int | None,
    as_of: str | None,
    fields: list[str],
    explain: bool,
) -> tuple[Any, list[Any]]:
    """``eval --cluster``: the segment, compiled here once, evaluated by the
    shards' workers; their members merged here.  With ``fields`` the workers
    send their members' dense indexes and the fields are read here, from the
    shards' snapshots returned with the audience; with ``explain`` each
    worker sends its shards' reports too, summed here."""
    from audience.dist import ClusterError, ClusterStore, LocalOptions
    from audience.dist.details import explained, over_snapshots
    from audience.runtime.evaluate import parse_as_of
    from audience.runtime.store import StoreError

    if not _sharded(store):
        raise StoreError(f"{store.path}: node '{store.node}' is not sharded; --cluster needs one")
    program = segment.program
    now_ms = parse_as_of(as_of, program.timezone)
    try:
        with ClusterStore.on(store, cluster, LocalOptions(workers=workers)) as on_cluster:
            if fields:
                return over_snapshots(on_cluster, program, now_ms, explain=explain)
            if explain:
                return explained(on_cluster, program, now_ms)[0], []
            return on_cluster.run(program, now_ms)[0], []
    except ClusterError as exc:
        raise click.UsageError(str(exc)) from None


def _fields(store: Any, fields: str | None) -> list[str]:
    """The profile fields of ``--fields``, checked against the store's schema."""
    if fields is None:
        return []
    names = [f.strip() for f in fields.split(",") if f.strip()]
    known = store.schema.profile
    unknown = [f for f in names if f not in known]
    if unknown or not names:
        raise click.BadParameter(
            f"no profile field {', '.join(repr(f) for f in unknown) or 'given'}; "
            f"the profile has: {', '.join(known) or 'no fields'}",
            param_hint="--fields",
        )
    return names


def _rows(snaps: list[Any], hits: Any, names: list[str]) -> Iterator[dict[str, Any]]:
    """The members' rows; ``snaps``: the snapshots the audience was made of,
    whose contacts stand side by side in it (one, or a sharded node's shards)."""
    import numpy as np

    from audience.runtime.triggers.batch import profile_value

    ids = hits.contact_ids
    starts = np.cumsum([0] + [s.n_contacts for s in snaps])
    for i in hits.indexes().tolist():
        k = int(np.searchsorted(starts, i, side="right")) - 1
        row: dict[str, Any] = {"contact_id": ids[i]}
        for f in names:
            value = profile_value(snaps[k], i - int(starts[k]), f)
            row[f] = value.isoformat() if isinstance(value, dt.date) else value
        yield row


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _iso(ms: int) -> str:
    return iso_utc(ms)


def register(group: click.Group) -> None:
    group.add_command(eval_cmd)
