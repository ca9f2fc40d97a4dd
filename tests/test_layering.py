"""The layers of the package: the compiler sits below the runtime (store,
evaluator, triggers), the server and the CLI, and imports none of them; what
both sides share (the snapshot contract, the schema) lives below both."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPILER = ROOT / "audience" / "compiler"
ABOVE = ("audience.runtime", "audience.server", "audience.cli")


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
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = parts[: len(parts) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            out.append((node.lineno, base))
            out.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return sorted(out)


def _above(name: str) -> bool:
    return any(name == layer or name.startswith(layer + ".") for layer in ABOVE)


def test_no_compiler_module_imports_the_runtime() -> None:
    files = sorted(COMPILER.rglob("*.py"))
    assert len(files) > 10
    found = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in files
        for line, name in _imported(path.read_text(encoding="utf-8"), _package(path))
        if _above(name)
    ]
    assert not found, "the compiler imports a layer above it:\n" + "\n".join(found)


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


def test_importing_every_compiler_module_loads_no_runtime_module() -> None:
    # transitively too: a module the compiler imports must not pull the runtime in
    code = (
        "import importlib, pkgutil, sys\n"
        "import audience.compiler as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'audience.compiler.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('\\n'.join(sorted(k for k in sys.modules if k.startswith('audience.'))))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "audience.compiler.execute" in out and "audience.snapshot" in out
    assert [name for name in out if _above(name)] == []


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
