"""``audience eval``: evaluate a segment over a store and print the audience."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

FORMATS = ("count", "ids", "jsonl", "csv")


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
    console = Console(stderr=True)
    table = Table(title="explain", show_header=True, header_style="bold")
    table.add_column("step")
    table.add_column("contacts", justify="right")
    table.add_column("ms", justify="right")
    table.add_column("partitions read/skipped", justify="right")
    for step in explain.get("steps", []):
        parts = (
            f"{step['partitions_read']}/{step['partitions_skipped']}"
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
    console.print(table)
    for kind in ("rules", "operands"):
        for r in explain.get(kind, []):
            label = r.get("label") or r.get("text")
            console.print(f"{kind[:-1]} {escape(str(label))!s}: {r['count']:,}")
    columns = ", ".join(explain.get("columns", [])) or "-"
    console.print(
        f"audience {explain['count']:,} of a universe of {explain['universe']:,}; "
        f"{explain['total_ms']:.2f} ms; columns read: {columns}"
    )


@click.command("eval")
@click.argument("store_path", metavar="STORE")
@click.option("-e", "expr", metavar="TEXT", help="The segment or condition text.")
@click.option("-f", "file", metavar="FILE", help="A rules file.")
@click.option("--segment", "name", metavar="NAME", help="The segment of FILE, or a saved one.")
@click.option("--as-of", "as_of", metavar="T", help="Evaluation time (ISO 8601); default now.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="count", show_default=True)
@click.option("--explain", is_flag=True, help="Counts per rule, time per step (on stderr).")
@click.option("--node", default="main", show_default=True)
def eval_cmd(
    store_path: str,
    expr: str | None,
    file: str | None,
    name: str | None,
    as_of: str | None,
    fmt: str,
    explain: bool,
    node: str,
) -> None:
    """Evaluate a segment over STORE and print its audience."""
    from audience.dsl.errors import DslError
    from audience.runtime.store import StoreError, open_store

    if expr is not None and file is not None:
        raise click.UsageError("give -e TEXT or -f FILE, not both")
    if expr is None and file is None and name is None:
        raise click.UsageError("give -e TEXT, -f FILE or --segment NAME")
    if expr is not None and name is not None:
        raise click.UsageError("--segment picks a segment of -f FILE or a saved one; not with -e")
    try:
        store = open_store(store_path, node)
        segment = _segment_source(store, expr, file, name)
        hits = segment.evaluate(as_of=as_of, explain=explain)
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
    else:  # ids, jsonl, csv: streamed from the Arrow ids, a chunk at a time
        from audience.runtime.ids import write_text

        write_text(hits.to_arrow().column("contact_id"), fmt, out)
    out.flush()
    if explain and hits.explain is not None:
        _print_explain(hits.explain)


def register(group: click.Group) -> None:
    group.add_command(eval_cmd)
