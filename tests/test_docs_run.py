"""The tutorial pages of docs/ run as a reader runs them, in a fresh directory
holding a copy of docs/: every `audience ...` line of their ```sh blocks
exits 0, a ```text block right after a ```sh block is the stdout of its last
command, and docs/python.md's blocks run in order on the store Getting
started made.  The commands run in this process (click's runner, with the
directory as the current one): a process each would cost two seconds of
imports apiece, and tests/test_cli_*.py already run the CLI as processes."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from audience.cli import cli
from tests.test_docs_examples import DOCS, FENCE, Block, shell_lines

# Pages whose commands build on each other, run in this order in one directory.
STORE_PAGES = ("getting-started.md", "language/time.md")
# Pages run on their own, in a directory of their own.
OWN_PAGES = ("store.md",)


def steps(page: Path) -> list[tuple[Block, str | None]]:
    """The ```sh blocks of a page, each with the ```text block that follows it."""
    text = page.read_text(encoding="utf-8")
    found = list(FENCE.finditer(text))
    out: list[tuple[Block, str | None]] = []
    for i, m in enumerate(found):
        if m.group(1) != "sh":
            continue
        expected = None
        nxt = found[i + 1] if i + 1 < len(found) else None
        if nxt is not None and nxt.group(1) == "text" and not text[m.end() : nxt.start()].strip():
            expected = nxt.group(2)
        line = text.count("\n", 0, m.start()) + 2
        out.append((Block(page, line, "sh", m.group(2)), expected))
    return out


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_line(line: str, cwd: Path) -> Ran:
    words = shlex.split(line, comments=True)
    before = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, words[1:], prog_name="audience")
    finally:
        os.chdir(before)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return Ran(result.exit_code, result.stdout, stderr)


def run_page(page: Path, cwd: Path) -> int:
    """Run the page's `audience` lines; the number run."""
    ran = 0
    for block, expected in steps(page):
        last = None
        for line in shell_lines(block):
            if not line.startswith("audience "):
                continue  # make, curl: not run here
            last = run_line(line, cwd)
            ran += 1
            assert last.returncode == 0, f"{block}: '{line}' failed:\n{last.stderr}"
            assert "Traceback" not in last.stderr, last.stderr
        if expected is not None:
            assert last is not None, f"{block}: output shown for no command"
            got = [s.rstrip() for s in last.stdout.rstrip("\n").splitlines()]
            want = [s.rstrip() for s in expected.rstrip("\n").splitlines()]
            assert got == want, f"{block}: the output shown is not what it prints"
    return ran


@pytest.fixture(scope="module")
def reader_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory as a reader's clone, for what the pages read: docs/ (no
    audience/ directory: ``python -m audience`` would import it)."""
    where = tmp_path_factory.mktemp("reader")
    shutil.copytree(DOCS, where / "docs")
    return where


@pytest.fixture(scope="module")
def tutorial(reader_dir: Path) -> Path:
    ran = sum(run_page(DOCS / name, reader_dir) for name in STORE_PAGES)
    assert ran >= 10
    return reader_dir


def test_tutorial_pages_run_as_shown(tutorial: Path) -> None:
    assert (tutorial / "shop" / "store.json").is_file()


@pytest.mark.parametrize("name", OWN_PAGES)
def test_page_runs_as_shown(name: str, tmp_path: Path) -> None:
    shutil.copytree(DOCS, tmp_path / "docs")
    assert run_page(DOCS / name, tmp_path) > 0


def test_python_page_runs(tutorial: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tutorial)
    text = (DOCS / "python.md").read_text(encoding="utf-8")
    namespace: dict[str, object] = {}
    ran = 0
    for m in FENCE.finditer(text):
        if m.group(1) == "python":
            line = text.count("\n", 0, m.start()) + 2
            exec(compile(m.group(2), f"docs/python.md:{line}", "exec"), namespace)
            ran += 1
    assert ran >= 5


def test_a_wrong_output_would_fail(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```sh\naudience --version\n```\n\n```text\naudience, version 0.0.0\n```\n")
    with pytest.raises(AssertionError, match="not what it prints"):
        run_page(page, tmp_path)
    real = run_line("audience --version", tmp_path).stdout
    page.write_text(f"```sh\naudience --version\n```\n\n```text\n{real}```\n")
    assert run_page(page, tmp_path) == 1


def test_blocks_are_read_with_their_output() -> None:
    pairs = steps(DOCS / "getting-started.md")
    assert sum(expected is not None for _, expected in pairs) >= 6
    assert re.search(r"angela", "".join(e or "" for _, e in pairs))
