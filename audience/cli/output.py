"""What every command prints through: counted words, rich consoles, JSON.

Piped output is for scripts: a rich console that does not write to a terminal
would wrap at 80 columns, so it gets a width no line reaches; tables do not
stretch to it (they are as wide as their content).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

# wider than any line we print: tables and text are never cut or wrapped
PIPE_WIDTH = 100_000

F = TypeVar("F", bound=Callable[..., Any])


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 duplicate``, ``2 duplicates``; ``many`` for words that do not take
    an s (``plural(n, "delivery", "deliveries")``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def console(*, stderr: bool = False, piped_width: int = PIPE_WIDTH) -> Console:
    """A rich console that wraps at the terminal's width, and not at all when piped.
    ``piped_width``: the width of rules and tables that stretch (text is never
    wrapped, whatever it is)."""
    # imported here: a command that prints no table (a count) never loads rich
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    probe = Console(file=stream)
    if probe.is_terminal:
        return probe
    return Console(file=stream, width=piped_width, soft_wrap=True)


def format_option(*formats: str) -> Callable[[F], F]:
    """``--format table|json`` (``table`` first: the default)."""
    choices = formats or ("table", "json")
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help="json: one JSON document on stdout, for scripts",
    )


def echo_json(value: Any) -> None:
    """One JSON document on stdout (UTF-8 as is, indented for people reading it too)."""
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def instant_ms(value: str | None, what: str) -> int | None:
    """An option's time (ISO 8601, or epoch milliseconds) as epoch ms; None stays None.
    A bad value is a usage error naming the option ``what``."""
    if value is None:
        return None
    from audience.runtime.evaluate import parse_as_of

    try:
        return parse_as_of(int(value) if value.lstrip("-").isdigit() else value)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None
