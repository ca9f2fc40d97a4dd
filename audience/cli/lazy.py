"""A click group whose command modules are imported on first use.

Click's lazy-group pattern: the group knows which module registers which
command without importing it, and imports a module (calling its
``register(group)``) when one of its commands is looked up to run.  What the
group needs to know beforehand, the command names and their one-line help for
``--help``, is read from the modules' source with ``ast``: the top-level
functions decorated ``@click.command("NAME")`` or ``@click.group("NAME")``
and their docstrings.  A module whose commands cannot be read so (a name that
is not a literal, say) is imported for the listing instead: slower, never
wrong.  tests/test_cli_lazy.py checks the listing against the real commands.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

_DECORATORS = {"command", "group"}


@dataclass(frozen=True)
class Stub:
    """A command as its module's source declares it, not imported."""

    module: str
    command: click.Command


class LazyGroup(click.Group):
    def __init__(self, *args: Any, modules: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.modules = tuple(modules)
        self._loaded: set[str] = set()
        self._stubs: dict[str, Stub] | None = None

    # ------------------------------------------------------------- loading
    def load(self, module: str) -> None:
        """Import ``module`` and let it register its commands (once)."""
        if module not in self._loaded:
            self._loaded.add(module)
            importlib.import_module(module).register(self)

    def load_all(self) -> None:
        for module in self.modules:
            self.load(module)

    def stubs(self) -> dict[str, Stub]:
        """Command name -> its stub, from the modules' source; a module that
        cannot be read so is imported now (its commands are then real)."""
        if self._stubs is None:
            stubs: dict[str, Stub] = {}
            for module in self.modules:
                found = _declared(module)
                if found is None:
                    self.load(module)
                    continue
                for cmd in found:
                    assert cmd.name is not None
                    stubs.setdefault(cmd.name, Stub(module, cmd))
            self._stubs = stubs
        return self._stubs

    # ----------------------------------------------------------- click API
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.stubs()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and self._stubs is None:
            # The module whose source declares the command, found by a text
            # search: parsing every module for the listing is tens of ms of
            # a command's start.
            for module in self.modules:
                if module not in self._loaded and _mentions(module, cmd_name):
                    self.load(module)
                    if cmd_name in self.commands:
                        break
        if cmd_name not in self.commands:
            stub = self.stubs().get(cmd_name)
            if stub is not None:
                self.load(stub.module)
            if cmd_name not in self.commands:
                self.load_all()  # a command the source scan did not see
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing of ``--help``, from the stubs: no command module imported."""
        stubs = self.stubs()
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name) or stubs[name].command
            if not cmd.hidden:
                rows.append((name, cmd))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in rows])


def _source(module: str) -> tuple[str, str] | None:
    """(path, text) of ``module``'s source, None when not at hand."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    try:
        with open(spec.origin, encoding="utf-8") as f:
            return spec.origin, f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _mentions(module: str, name: str) -> bool:
    """Whether ``module``'s source has ``@click.command("NAME"`` (or a group):
    a hint, confirmed by importing it."""
    found = _source(module)
    if found is None:
        return False
    pattern = r"@click\.(?:command|group)\(\s*[\"']" + re.escape(name) + r"[\"']"
    return re.search(pattern, found[1]) is not None


def _declared(module: str) -> list[click.Command] | None:
    """The commands ``module``'s source declares at top level, as help-only
    stand-ins; None when the source is not at hand or a declaration is not
    plain literals."""
    found = _source(module)
    if found is None:
        return None
    try:
        tree = ast.parse(found[1], found[0])
    except SyntaxError:
        return None
    out: list[click.Command] = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if not _is_click_decorator(deco):
                continue
            assert isinstance(deco, ast.Call)
            cmd = _stub(deco, ast.get_docstring(node, clean=False))
            if cmd is None:
                return None
            out.append(cmd)
    return out


def _is_click_decorator(deco: ast.expr) -> bool:
    return (
        isinstance(deco, ast.Call)
        and isinstance(deco.func, ast.Attribute)
        and isinstance(deco.func.value, ast.Name)
        and deco.func.value.id == "click"
        and deco.func.attr in _DECORATORS
    )


def _stub(deco: ast.Call, doc: str | None) -> click.Command | None:
    """A help-only command for ``@click.command("NAME", ...)``; None when the
    name or a help option is not a literal."""
    if len(deco.args) != 1 or not isinstance(deco.args[0], ast.Constant):
        return None
    name = deco.args[0].value
    if not isinstance(name, str):
        return None
    options: dict[str, Any] = {"help": doc}
    for kw in deco.keywords:
        if kw.arg in ("help", "short_help", "hidden", "deprecated"):
            if not isinstance(kw.value, ast.Constant):
                return None
            options[kw.arg] = kw.value.value
    return click.Command(name, **options)
