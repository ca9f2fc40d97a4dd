"""The tutorial pages of docs/ run as a reader runs them, in a fresh directory
holding a copy of docs/: every `audience ...` line of their ```sh blocks
exits 0, a ```text block right after a ```sh block is the stdout of its last
command, and docs/python.md's blocks run in order on the store Getting
started made; the `curl` calls of docs/http.md and docs/language/plans.md
run against a live server.  The commands run in this process (click's runner, with the
directory as the current one): a process each would cost two seconds of
imports apiece, and tests/test_cli_*.py already run the CLI as processes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from audience.cli import cli
from tests.helpers.docs import DOCS, FENCE, Block, shell_lines

# Pages whose commands build on each other, run in this order in one directory.
STORE_PAGES = (
    "getting-started.md",
    "language/time.md",
    "language/triggers.md",
    "language/dnd.md",
    "language/plans.md",
    "language/journeys.md",
)
# Pages run on their own, in a directory of their own.
OWN_PAGES = ("store.md", "shards.md")


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


# --------------------------------------------------------------------------- HTTP

# Fields of an answer that the page shows but that depend on the moment or
# the store's history (a cursor is checked for being there or not).
VARYING = {"version", "created", "updated", "next", "due", "requested"}


def _shown(value: object) -> bool:
    """False for a value the page abbreviates ("..." inside)."""
    return "..." not in json.dumps(value)


def http_steps(page: Path) -> list[tuple[Block, str | None]]:
    text = page.read_text(encoding="utf-8")
    found = list(FENCE.finditer(text))
    out = []
    for i, m in enumerate(found):
        if m.group(1) != "sh":
            continue
        nxt = found[i + 1] if i + 1 < len(found) else None
        expected = None
        if nxt is not None and nxt.group(1) == "json" and not text[m.end() : nxt.start()].strip():
            expected = nxt.group(2)
        out.append((Block(page, text.count("\n", 0, m.start()) + 2, "sh", m.group(2)), expected))
    return out


def run_http_page(page: Path, where: Path) -> int:
    """Every curl of ``page``, in order, against a live server on the store
    ``where/shop``: 2xx unless the page shows an error, and the fields the
    page shows are the ones answered.  The number of requests made."""
    from audience.server.app import create_app
    from audience.server.auth import Sources
    from audience.server.serve import ServerThread

    _, token = Sources(where / "shop").create("main", "docs", "write")
    env = {**os.environ, "TOKEN": token}
    ran = 0
    last_next = None
    with ServerThread(create_app(where / "shop")) as server:
        for block, expected in http_steps(page):
            status, body = 0, ""
            for line in shell_lines(block):
                if not line.startswith("curl "):
                    continue
                line = line.replace("http://localhost:8080", server.url)
                if last_next is not None:
                    line = line.replace("NEXT_FROM_THE_PREVIOUS_PAGE", last_next)
                proc = subprocess.run(
                    ["bash", "-c", line + " -w '\\n%{http_code}'"],
                    cwd=where,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert proc.returncode == 0, f"{block}: {line}: {proc.stderr}"
                body, _, code = proc.stdout.rpartition("\n")
                status = int(code)
                ran += 1
                answer = json.loads(body) if body.startswith("{") else None
                if isinstance(answer, dict) and answer.get("next"):
                    last_next = str(answer["next"])
                shows_error = expected is not None and '"error"' in expected
                if not shows_error:
                    assert status < 400, f"{block}: {line}: {status} {body}"
            if expected is None:
                continue
            want = json.loads(expected)
            got = json.loads(body)
            if "error" in want:
                assert status >= 400 and got["error"]["code"] == want["error"]["code"], block
            for key, value in want.items():
                assert key in got, f"{block}: no '{key}' in {got}"
                if key in VARYING:
                    assert (got[key] is None) == (value is None), f"{block}: {key}"
                elif _shown(value):
                    assert got[key] == value, f"{block}: {key}: {got[key]!r} != {value!r}"
    return ran


def test_http_page_runs(tmp_path: Path) -> None:
    """Every curl of docs/http.md, in order, against a live server on the
    Getting started store."""
    shutil.copytree(DOCS, tmp_path / "docs")
    run_page(DOCS / "getting-started.md", tmp_path)
    assert run_http_page(DOCS / "http.md", tmp_path) >= 15


def test_plans_http_runs(tmp_path: Path) -> None:
    """The curls of docs/language/plans.md, on the store its walk-through
    leaves (built anew: the tutorial's store is changed by docs/python.md)."""
    shutil.copytree(DOCS, tmp_path / "docs")
    for name in STORE_PAGES[: STORE_PAGES.index("language/plans.md") + 1]:
        run_page(DOCS / name, tmp_path)
    assert run_http_page(DOCS / "language" / "plans.md", tmp_path) >= 6


def test_journeys_http_runs(tmp_path: Path) -> None:
    """The curls of docs/language/journeys.md, on the store its walk-through leaves."""
    shutil.copytree(DOCS, tmp_path / "docs")
    for name in STORE_PAGES[: STORE_PAGES.index("language/journeys.md") + 1]:
        run_page(DOCS / name, tmp_path)
    assert run_http_page(DOCS / "language" / "journeys.md", tmp_path) >= 6
