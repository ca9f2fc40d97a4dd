"""The ``audience`` command line (docs/cli.md).

Each command group lives in its own module with a ``register(group)`` function;
this module only assembles them, lazily: a command module is imported when one
of its commands runs, so ``audience --help`` and the commands that do not
evaluate never load the engine (numpy, pyarrow, numba and its kernels).  The
help listing reads each module's source instead (lazy.py).  A new command
module plugs in with one line in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import click

from audience import __version__
from audience.cli.lazy import LazyGroup

COMMAND_MODULES = (
    "delivery_cmds",
    "demo_cmd",
    "eval_cmd",
    "inbound_cmds",
    "integration_cmds",
    "journey_cmds",
    "lead_cmds",
    "plan_cmds",
    "report_cmds",
    "rules_cmds",
    "server_cmds",
    "store_cmds",
    "sync_cmds",
    "tracking_cmds",
    "trigger_cmds",
)


@click.group(
    cls=LazyGroup,
    modules=tuple(f"audience.cli.{name}" for name in COMMAND_MODULES),
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="audience")
def cli() -> None:
    """audience: segments, triggers and DND policies over a columnar event store."""


def main() -> None:
    cli(prog_name="audience")
