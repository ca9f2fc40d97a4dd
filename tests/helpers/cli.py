"""Running ``audience`` commands in this process (click's runner), as the CLI
tests do."""

from __future__ import annotations

from click.testing import CliRunner, Result

from audience.cli import cli


def run(*args: str, ok: bool = True) -> Result:
    """``audience ARGS``; with ``ok``, it must exit 0 (its output says why not)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result
