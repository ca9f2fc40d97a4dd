"""``audience check`` and ``audience fmt``: the front end on files."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from audience.cli.output import plural
from audience.dsl.ast import Program
from audience.dsl.check import Known, check
from audience.dsl.errors import DslError
from audience.dsl.format_comments import format_source
from audience.dsl.parser import parse_bytes
from audience.schema import Schema, SchemaError


def _read(path: str) -> tuple[bytes, str]:
    """The bytes of FILE (``-`` is standard input) and the name to show in errors."""
    if path == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    p = Path(path)
    try:
        return p.read_bytes(), path
    except IsADirectoryError:
        raise click.UsageError(f"{path} is a directory, not a rules file") from None
    except OSError as exc:
        raise click.UsageError(f"cannot read {path}: {exc.strerror}") from None


def _load_schema(schema: str | None, store: str | None) -> tuple[Schema | None, Known]:
    """The schema to check against and the names saved outside the file: with
    ``--store``, the store's (templates included); otherwise none (templates are
    then not resolved)."""
    if schema and store:
        raise click.UsageError("give --schema or --store, not both")
    try:
        if schema:
            return Schema.load(schema), Known()
        if store:
            from audience.cli.store_context import schema_and_known

            return schema_and_known(store)
    except SchemaError as exc:
        raise click.UsageError(str(exc)) from None
    return None, Known()


KIND_LABELS = {
    "Segment": "segment",
    "Trigger": "trigger",
    "DndPolicy": "dnd policy",
    "DeliveryDef": "delivery",
    "Plan": "plan",
    "Journey": "journey",
}


_PLURALS = {"dnd policy": "dnd policies", "delivery": "deliveries"}


def describe(program: Program) -> list[str]:
    """One line per definition: what ``check`` parsed."""
    if program.condition is not None:
        return ["a bare condition"]
    lines = []
    for d in program.definitions:
        kind = KIND_LABELS[type(d).__name__]
        where = f"line {d.span.line}" if d.span.line else ""
        lines.append(f"{kind} {d.name!r} ({where})")
    return lines


def summary(program: Program) -> str:
    if program.condition is not None:
        return "1 bare condition"
    counts = Counter(type(d).__name__ for d in program.definitions)
    parts = [
        plural(counts[k], label, _PLURALS.get(label))
        for k, label in KIND_LABELS.items()
        if counts[k]
    ]
    return ", ".join(parts) or "no definitions"


@click.command("check")
@click.argument("file")
@click.option(
    "--schema",
    "schema_path",
    metavar="FILE",
    help="Check names and types against this schema (TOML).",
)
@click.option(
    "--store",
    "store_path",
    metavar="STORE",
    help="Check against a store's schema and saved names (segments, policies, templates...).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing when the file is clean.")
def check_cmd(file: str, schema_path: str | None, store_path: str | None, quiet: bool) -> None:
    """Parse and check FILE; print every error with line and column; exit 1 on error."""
    schema, known = _load_schema(schema_path, store_path)
    data, name = _read(file)
    try:
        program = parse_bytes(data, filename=name)
        found = check(program, schema, known=known)
        if found:
            raise DslError(found, data.decode("utf-8"), name)
    except DslError as err:
        click.echo(err.render(), err=True)
        n = len(err.diagnostics)
        click.echo(f"\n{name}: {n} error{'' if n == 1 else 's'}", err=True)
        sys.exit(1)
    if not quiet:
        against = " against the schema" if schema is not None else ""
        click.echo(f"{name}: ok{against}: {summary(program)}")
        for line in describe(program):
            click.echo(f"  {line}")


@click.command("fmt")
@click.argument("file")
@click.option("--write", "-w", is_flag=True, help="Rewrite FILE in place.")
@click.option(
    "--check", "check_only", is_flag=True, help="Exit 1 if FILE is not canonically formatted."
)
def fmt_cmd(file: str, write: bool, check_only: bool) -> None:
    """Print FILE in the canonical layout, keeping its comments.

    A comment inside an expression written on one line (say, between a 'did'
    and its 'where') has no place to stay: FILE is then left unchanged and
    the error names the comment's line."""
    data, name = _read(file)
    try:
        program = parse_bytes(data, filename=name)
        text = format_source(data.decode("utf-8-sig"), filename=name, program=program)
    except DslError as err:
        click.echo(err.render(), err=True)
        sys.exit(1)
    if check_only:
        if data.decode("utf-8") != text:
            click.echo(f"{name}: not canonically formatted", err=True)
            sys.exit(1)
        return
    if write and file != "-":
        Path(file).write_text(text, encoding="utf-8")
        return
    click.echo(text, nl=False)


def register(group: click.Group) -> None:
    group.add_command(check_cmd)
    group.add_command(fmt_cmd)
