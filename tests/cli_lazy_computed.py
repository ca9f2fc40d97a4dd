"""A command module whose command name is computed (tests/test_cli_lazy.py)."""

from __future__ import annotations

import click

NAME = "computed"


@click.command(NAME)
def computed_cmd() -> None:
    """A command named by a constant, not a literal."""


def register(group: click.Group) -> None:
    group.add_command(computed_cmd)
