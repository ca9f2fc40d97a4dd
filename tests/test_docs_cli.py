"""docs/cli.md is generated from the click commands: it must not drift from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from audience.cli import cli
from audience.cli.docgen import render

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "cli.md"


def test_cli_page_is_up_to_date() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), (
        "docs/cli.md differs from the commands: run 'make docs'"
    )


def test_page_names_every_command_and_option() -> None:
    page = render()

    def walk(cmd: click.Command, path: tuple[str, ...]) -> None:
        ctx = click.Context(cmd, info_name=path[-1], **cmd.context_settings)
        assert f" {' '.join(path)}\n" in page, path
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert opt in page, (path, opt)
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, (*path, name))

    walk(cli, ("audience",))


def test_page_follows_a_changed_command() -> None:
    # a command the page was not made from gives another page: the check can fail
    @click.group()
    def root() -> None:
        """Root."""

    @root.command("one")
    @click.option("--flag", is_flag=True, help="A flag.")
    def one(flag: bool) -> None:
        """First."""

    before = render(root, "tool")
    assert "`tool one`" in before and "`--flag`" in before and "A flag." in before
    one.params[0].help = "Another flag."
    assert render(root, "tool") != before


def test_check_mode_exits_1_on_a_stale_page(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "audience.cli.docgen", "--check", str(stale)]
    assert subprocess.run(cmd, capture_output=True).returncode == 1
    fresh = tmp_path / "fresh.md"
    subprocess.run([sys.executable, "-m", "audience.cli.docgen", str(fresh)], check=True)
    assert fresh.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")
    assert subprocess.run([*cmd[:-1], str(fresh)], capture_output=True).returncode == 0
