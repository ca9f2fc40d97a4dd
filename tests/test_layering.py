"""The layers of the package: the compiler (compile time: AST -> checked
plan) and the engine (execution: a checked plan over a snapshot) sit below the
runtime (store, evaluator, triggers), the server and the CLI, and import none
of them; what both sides share (the snapshot contract, the schema) lives
below both.  The compiler never imports the engine, and the engine takes a
checked plan: it never parses, checks or lowers."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPILER = ROOT / "audience" / "compiler"
ENGINE = ROOT / "audience" / "engine"
ABOVE = ("audience.runtime", "audience.server", "audience.cli")
# what the engine may read of the compile-time side: the checked program's
# types and the words explain gives its steps (and the AST values a plan holds)
ENGINE_READS = (
    "audience.compiler.plan",
    "audience.compiler.physical",
    "audience.compiler.explain_words",
    "audience.dsl.ast",
)


def _package(path: Path) -> str:
    """The package a module file is in (its own name for an ``__init__.py``)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts if path.name == "__init__.py" else parts[:-1])


def _imported(text: str, package: str) -> list[tuple[int, str]]:
    """Every module ``text`` (a module of ``package``) imports, at its top or
    inside a function, relative imports resolved, as (line, dotted name);
    ``from audience import x`` counts as ``audience.x`` too."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _from_module(node, package)
            out.append((node.lineno, base))
            out.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return sorted(out)


def _from_module(node: ast.ImportFrom, package: str) -> str:
    """The module ``from X import ...`` names, relative imports resolved."""
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parent = parts[: len(parts) - node.level + 1]
        base = ".".join([*parent, base] if base else parent)
    return base


def _under(name: str, layers: tuple[str, ...]) -> bool:
    return any(name == layer or name.startswith(layer + ".") for layer in layers)


def _above(name: str) -> bool:
    return _under(name, ABOVE)


def _imports_of(package: Path) -> list[tuple[str, str]]:
    """(``file:line``, dotted name) of every import in the modules of ``package``."""
    return [
        (f"{path.relative_to(ROOT)}:{line}", name)
        for path in sorted(package.rglob("*.py"))
        for line, name in _imported(path.read_text(encoding="utf-8"), _package(path))
    ]


def test_no_compiler_or_engine_module_imports_the_runtime() -> None:
    for package in (COMPILER, ENGINE):
        imports = _imports_of(package)
        assert len({where.split(":")[0] for where, _ in imports}) > 5
        found = [f"{where}: {name}" for where, name in imports if _above(name)]
        assert not found, "a layer above is imported:\n" + "\n".join(found)


def test_the_compiler_never_imports_the_engine() -> None:
    found = [
        f"{where}: {name}"
        for where, name in _imports_of(COMPILER)
        if _under(name, ("audience.engine",))
    ]
    assert not found, "compile time imports execution:\n" + "\n".join(found)


def _compiles(name: str) -> bool:
    """Whether importing ``name`` reaches into compiling: the compile-time
    side or the language beyond the program's types (the bare packages are
    the ``from audience.compiler import plan`` form)."""
    if name in ("audience.compiler", "audience.dsl"):
        return False
    return _under(name, ("audience.compiler", "audience.dsl")) and not _under(name, ENGINE_READS)


def test_the_engine_takes_a_checked_plan() -> None:
    # from the compile-time side and the language it reads only the program's
    # types: never the parser, the checker, lowering or the plan passes
    found = [f"{where}: {name}" for where, name in _imports_of(ENGINE) if _compiles(name)]
    assert not found, "the engine compiles:\n" + "\n".join(found)
    assert not _compiles("audience.compiler.physical.Program")
    for name in (
        "audience.compiler.lower",
        "audience.compiler.passes.pipeline",
        "audience.dsl.parser",
    ):
        assert _compiles(name), name


def test_the_import_walk_sees_every_form_of_import() -> None:
    # the check above cannot pass by not recognising an import
    text = (
        "import audience.runtime.store\n"
        "from audience import runtime\n"
        "from ...runtime import evaluate\n"
        "from .. import plan\n"
        "def f():\n"
        "    from audience.server.app import create_app\n"
    )
    names = [n for _, n in _imported(text, "audience.compiler.passes") if _above(n)]
    assert names == [
        "audience.runtime.store",
        "audience.runtime",
        "audience.runtime",
        "audience.runtime.evaluate",
        "audience.server.app",
        "audience.server.app.create_app",
    ]
    assert (4, "audience.compiler.plan") in _imported(text, "audience.compiler.passes")


def _loaded_by_importing(package: str) -> list[str]:
    """The modules a new process has loaded after importing every module of
    ``package``."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"import {package} as c\n"
        f"for m in pkgutil.walk_packages(c.__path__, '{package}.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()


def test_importing_every_engine_module_loads_no_runtime_module() -> None:
    # transitively too: a module the engine imports must not pull the runtime in
    out = _loaded_by_importing("audience.engine")
    assert "audience.engine.execute" in out and "audience.snapshot" in out
    assert "audience.compiler.physical" in out
    assert [name for name in out if _above(name)] == []
    assert [name for name in out if _under(name, ("audience.compiler.lower",))] == []


def test_compiling_loads_neither_the_engine_nor_numpy() -> None:
    # the compile-time half is plain Python over the AST and the schema
    out = _loaded_by_importing("audience.compiler")
    assert "audience.compiler.lower" in out and "audience.compiler.passes.pipeline" in out
    heavy = ("audience.engine", "audience.snapshot", "numpy", "numba", "pyarrow")
    assert [name for name in out if _above(name) or _under(name, heavy)] == []


def test_the_shared_modules_below_everything_import_nothing_above_them() -> None:
    # the snapshot contract and time arithmetic sit below the language, the
    # compiler and the runtime; the schema is the one thing the snapshot needs
    allowed = {"snapshot.py": {"audience.schema"}, "timecalc.py": set()}
    for name, ok in allowed.items():
        path = ROOT / "audience" / name
        bad = {
            n
            for _, n in _imported(path.read_text(encoding="utf-8"), "audience")
            if (n == "audience" or n.startswith("audience."))
            and not any(n == m or n.startswith(m + ".") for m in ok)
        }
        assert not bad, (name, bad)


def test_no_test_module_imports_another() -> None:
    # what tests share lives in tests/helpers (and the support modules beside
    # the tests); a test module imported elsewhere would run its tests twice
    found = []
    for path in sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]):
        package = _package(path)
        for line, name in _imported(path.read_text(encoding="utf-8"), package):
            last = name.split(".")[-1]
            if name.startswith("tests.") and last.startswith("test_") and name.count(".") == 1:
                found.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert not found, "import what is shared from tests/helpers instead:\n" + "\n".join(found)


# -------------------------------------------------------- storage below the node

# What a node composes above its storage (audience.runtime.node): the store
# must reach none of it, not even through an import inside a function.
ABOVE_STORAGE = (
    "audience.runtime.node",
    "audience.runtime.api",
    "audience.runtime.saved",
    "audience.runtime.evaluate",
    "audience.runtime.triggers",
    "audience.runtime.journeys",
    "audience.runtime.plans",
    "audience.runtime.shards.segment",
    "audience.runtime.shards.triggers",
    "audience.compiler",
    "audience.dsl",
)
STORE = ROOT / "audience" / "runtime" / "store"


def test_no_store_module_imports_the_node_layer() -> None:
    imports = _imports_of(STORE)
    assert len({where.split(":")[0] for where, _ in imports}) > 10
    found = [f"{where}: {name}" for where, name in imports if _under(name, ABOVE_STORAGE)]
    assert not found, "the store imports what sits above it:\n" + "\n".join(found)


def test_importing_every_store_module_loads_neither_triggers_nor_the_compiler() -> None:
    out = _loaded_by_importing("audience.runtime.store")
    assert "audience.runtime.store.store" in out and "audience.runtime.store.wal" in out
    assert [name for name in out if _under(name, ABOVE_STORAGE)] == []


def test_a_node_ingests_without_loading_triggers_when_it_has_none(tmp_path: Path) -> None:
    # the node's watcher asks the saved triggers first: a store without any
    # never pays for the trigger path, and an ingest through its Store alone
    # never meets it
    code = (
        "import sys\n"
        "from audience.runtime.node import Node\n"
        f"node = Node.init({str(tmp_path / 's')!r}, {str(ROOT / 'docs/examples/schema.toml')!r})\n"
        "node.ingest_events([{'id': 'e1', 'contact_id': 'c1', 'type': 'purchased',"
        " 'ts': '2026-11-01T00:00:00Z', 'amount': 3.0}])\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "audience.runtime.store.store" in out
    assert [name for name in out if _under(name, ("audience.runtime.triggers.engine",))] == []


def _runtime_imports(text: str, package: str) -> set[str]:
    """The modules of ``audience`` that ``text`` (a module of ``package``)
    imports when it runs: at its top or inside a function, not under ``if
    TYPE_CHECKING``; ``from p import m`` names the module ``p.m`` when there
    is one, else ``p``."""
    out: set[str] = set()

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
                for other in child.orelse:
                    walk(other)
                continue
            if isinstance(child, ast.Import):
                out.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _from_module(child, package)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    out.add(sub if _module_file(sub) is not None else base)
            walk(child)

    walk(ast.parse(text))
    return {name for name in out if name == "audience" or name.startswith("audience.")}


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of
    more than one module (or a module importing itself), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "audience").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if path.name == "__init__.py" else parts)
        imported = _runtime_imports(path.read_text(encoding="utf-8"), _package(path))
        graph[name] = {m for m in imported if _module_file(m) is not None}
    return graph


def test_no_import_cycle_runs_through_the_store_or_the_delivery_log() -> None:
    graph = _import_graph()
    assert "audience.runtime.store.store" in graph["audience.runtime.node"]
    found = [
        cycle
        for cycle in _cycles(graph)
        if any(_under(m, ("audience.runtime.store", "audience.runtime.delivery")) for m in cycle)
    ]
    assert found == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_search_finds_cycles_through_functions_and_packages() -> None:
    # the check above cannot pass by not seeing a cycle
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    text = (
        "from typing import TYPE_CHECKING\n"
        "from audience.runtime.delivery import model\n"
        "if TYPE_CHECKING:\n"
        "    from audience.runtime.triggers.engine import BatchReport\n"
        "def f():\n"
        "    from audience.runtime import node\n"
    )
    seen = _runtime_imports(text, "audience.runtime.store")
    assert seen == {"audience.runtime.delivery.model", "audience.runtime.node"}
