"""The CLI's shared output helpers: counted words, and rich output that a pipe
gets unwrapped."""

from __future__ import annotations

import click
from click.testing import CliRunner
from rich.table import Table

from audience.cli.output import console, plural


def test_plural() -> None:
    assert plural(0, "duplicate") == "0 duplicates"
    assert plural(1, "duplicate") == "1 duplicate"
    assert plural(2, "duplicate") == "2 duplicates"
    assert plural(1, "delivery", "deliveries") == "1 delivery"
    assert plural(12, "delivery", "deliveries") == "12 deliveries"


@click.command()
def wide() -> None:
    table = Table("id", "text")
    table.add_row("1", "word " * 60)
    console().print(table)
    console(stderr=True).print("x" * 300)


def test_piped_rich_output_is_not_wrapped() -> None:
    res = CliRunner().invoke(wide, env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    rows = [ln for ln in res.stdout.splitlines() if "word" in ln]
    assert len(rows) == 1 and rows[0].count("word") == 60
    assert len(max(res.stdout.splitlines(), key=len)) < 400  # the table did not stretch
    assert res.stderr == "x" * 300 + "\n"
