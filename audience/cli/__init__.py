"""The ``audience`` command line (SPEC section 8).

Each command group lives in its own module with a ``register(group)`` function;
this module only assembles them.
"""

from __future__ import annotations

import importlib

import click

from audience import __version__

COMMAND_MODULES = (
    "delivery_cmds",
    "demo_cmd",
    "eval_cmd",
    "plan_cmds",
    "rules_cmds",
    "server_cmds",
    "store_cmds",
    "trigger_cmds",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="audience")
def cli() -> None:
    """audience: segments, triggers and DND policies over a columnar event store."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"audience.cli.{_name}").register(cli)


def main() -> None:
    cli(prog_name="audience")
