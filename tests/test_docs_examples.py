"""The examples of docs/ and README.md work as shown.

- every ```rules block (and docs/examples/*.rules) parses and checks against
  the docs' example schema (docs/examples/schema.toml), with the segments and
  DND policies the other blocks define known, as a store that holds them would;
- every `audience ...` line of a ```sh block names a real command whose
  options and arguments click accepts, every `make X` a real target, every
  `curl` a route and method of the HTTP API;
- every ```python block compiles.

The pages that are tutorials are also run for real: test_docs_run.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from audience.cli import cli
from audience.dsl import load
from audience.dsl.ast import DndPolicy, Segment
from audience.dsl.parser import parse
from audience.schema import Schema
from audience.server.openapi import document
from tests.helpers.docs import DOCS, ROOT, SCHEMA, Block, all_blocks, shell_lines

# the example rules files count as blocks too
RULES = all_blocks("rules") + [
    Block(path, 1, "rules", path.read_text(encoding="utf-8"))
    for path in sorted((DOCS / "examples").glob("*.rules"))
]
SHELL = all_blocks("sh")
PYTHON = all_blocks("python")


def split_command(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    # `A && B`, `A | B`, `VAR=x A`: the first command is the one checked
    for i, w in enumerate(words):
        if w in ("&&", "|", "||", ";", ">", "2>", ">>"):
            words = words[:i]
            break
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        words = words[1:]
    return words


# --------------------------------------------------------------------------- rules


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema.load(SCHEMA)


@pytest.fixture(scope="module")
def known() -> tuple[dict[str, Segment], set[str]]:
    """The segments and policies defined anywhere in the docs."""
    segments: dict[str, Segment] = {}
    policies: set[str] = set()
    for block in RULES:
        for d in parse(block.text, filename=str(block)).definitions:
            if isinstance(d, Segment):
                segments[d.name] = d
            elif isinstance(d, DndPolicy):
                policies.add(d.name)
    return segments, policies


def test_the_docs_have_rules_examples() -> None:
    # the language pages are the main users; an empty harvest would pass silently
    pages = {b.page.name for b in RULES}
    assert {"segments.md", "time.md", "values.md", "triggers.md", "dnd.md"} <= pages
    assert len(RULES) >= 30


@pytest.mark.parametrize("block", RULES, ids=str)
def test_rules_example_parses_and_checks(
    block: Block, schema: Schema, known: tuple[dict[str, Segment], set[str]]
) -> None:
    segments, policies = known
    load(block.text, schema, filename=str(block), known_segments=segments, known_policies=policies)


def test_a_wrong_example_would_fail(
    schema: Schema, known: tuple[dict[str, Segment], set[str]]
) -> None:
    # the check above can fail: an unknown property is an error
    from audience.dsl.errors import DslError

    with pytest.raises(DslError):
        load("did purchased where colour = 1", schema, known_segments=known[0])


# --------------------------------------------------------------------------- shell


def click_command(words: list[str]) -> tuple[click.Command, list[str], str]:
    """The command ``words`` names and the arguments left for it."""
    cmd: click.Command = cli
    path = "audience"
    rest = words[1:]
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(click.Context(cmd), rest[0])
        assert sub is not None, f"no command '{path} {rest[0]}'"
        cmd, path, rest = sub, f"{path} {rest[0]}", rest[1:]
    return cmd, rest, path


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w.-]*):", text, re.M))


def api_routes() -> dict[str, set[str]]:
    routes = {}
    for path, item in document()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/?]+", path) + "$"
        routes[pattern] = {m.upper() for m in item if m != "parameters"}
    return routes


def curl_request(words: list[str]) -> tuple[str, str]:
    method, url, data = None, None, False
    it = iter(words[1:])
    for w in it:
        if w in ("-X", "--request"):
            method = next(it)
        elif w in ("-d", "--data", "--data-binary", "-T", "--upload-file"):
            data = True
            next(it)
        elif w in ("-H", "--header", "-o", "--output", "-w"):
            next(it)
        elif not w.startswith("-"):
            url = w
    assert url is not None, words
    path = re.sub(r"^[a-z]+://[^/]+", "", url).split("?")[0]
    return method or ("POST" if data else "GET"), path


def test_the_docs_have_shell_examples() -> None:
    commands = [split_command(line) for b in SHELL for line in shell_lines(b)]
    names = {w[0] for w in commands if w}
    assert {"audience", "curl", "make"} <= names


@pytest.mark.parametrize("block", SHELL, ids=str)
def test_shell_example_commands_exist(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # paths in examples are relative to the repository
    routes = api_routes()
    for line in shell_lines(block):
        words = split_command(line)
        if not words:
            continue
        if words[0] == "audience":
            cmd, rest, path = click_command(words)
            try:
                # parses options and arguments as a run would, without running it
                cmd.make_context(path, list(rest))
            except click.UsageError as exc:
                pytest.fail(f"{block}: '{line}': {exc.format_message()}")
        elif words[0] == "make":
            assert set(words[1:]) <= make_targets(), f"{block}: {line}"
        elif words[0] == "curl":
            method, url = curl_request(words)
            allowed = [ms for pat, ms in routes.items() if re.match(pat, url)]
            assert allowed, f"{block}: no route {url}"
            assert method in allowed[0], f"{block}: {method} {url} is not allowed"


def test_a_wrong_command_would_fail() -> None:
    with pytest.raises(AssertionError):
        click_command(["audience", "segmentz", "list"])
    cmd, rest, path = click_command(["audience", "eval", "shop/", "--formt", "ids"])
    with pytest.raises(click.UsageError):
        cmd.make_context(path, rest)


# --------------------------------------------------------------------------- python


@pytest.mark.parametrize("block", PYTHON, ids=str)
def test_python_example_compiles(block: Block) -> None:
    compile(block.text, str(block), "exec")


def test_example_schema_is_the_demo_shop() -> None:
    # the pages say their examples use the demo's shop: the same schema
    from audience import __file__ as package

    demo = Schema.load(Path(package).parent / "examples" / "maison.toml")
    assert Schema.load(SCHEMA) == demo
