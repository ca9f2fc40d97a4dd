"""The command line loads a command's module only when that command runs:
``audience --help`` in a new process imports no engine (no numba, numpy or
pyarrow), and its listing, read from the modules' source, is the one the
imported commands give."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import click
from click.testing import CliRunner

from audience.cli import COMMAND_MODULES, cli
from audience.cli.lazy import LazyGroup, _declared

# the libraries and our own packages a command must import only when it runs
LIBRARIES = ("numba", "numpy", "pyarrow", "lark")
OURS = ("audience.runtime", "audience.compiler", "audience.engine")


def _imported_after(*args: str) -> list[str]:
    """The engine modules a new process has imported after running the CLI."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from audience.cli import cli
        try:
            cli({list(args)!r}, prog_name="audience")
        except SystemExit:
            pass
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
              {LIBRARIES!r} or m.startswith({OURS!r}))))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_help_in_a_new_process_imports_no_engine() -> None:
    assert _imported_after("--help") == []
    assert _imported_after("--version") == []


def test_a_command_imports_its_own_module_only() -> None:
    """``eval --help`` needs the eval command, not the engine it evaluates with."""
    code = (
        "import sys; from audience.cli import cli\n"
        "try: cli(['eval', '--help'], prog_name='audience')\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('audience.cli.')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # the eval command, the cluster options it shares with serve and scheduler
    # (click only), the lazy group and the output helpers the command prints with
    assert proc.stdout.strip().splitlines()[-1] == (
        "['audience.cli.cluster_opts', 'audience.cli.eval_cmd', 'audience.cli.lazy', "
        "'audience.cli.output']"
    )


def _eager() -> click.Group:
    """The same commands, every module imported and registered."""
    group = click.Group("audience")
    for name in COMMAND_MODULES:
        __import__(f"audience.cli.{name}", fromlist=["register"]).register(group)
    return group


def test_the_source_listing_is_the_imported_one() -> None:
    eager = _eager()
    lazy = LazyGroup("audience", modules=[f"audience.cli.{m}" for m in COMMAND_MODULES])
    stubs = lazy.stubs()
    assert sorted(stubs) == sorted(eager.commands)
    for name, real in eager.commands.items():
        stub = stubs[name].command
        assert stub.get_short_help_str(60) == real.get_short_help_str(60), name
        assert stub.hidden == real.hidden, name
    # and the whole --help page is the eager group's
    runner = CliRunner()
    got = runner.invoke(cli, ["--help"], prog_name="audience").output
    want_group = click.Group(
        "audience",
        commands=eager.commands,
        help=cli.help,
        params=cli.params,
        context_settings=cli.context_settings,
    )
    want = runner.invoke(want_group, ["--help"], prog_name="audience").output
    assert got == want


def test_a_command_the_scan_cannot_read_is_still_found() -> None:
    """A module declaring a command with a computed name is imported to list it."""
    assert _declared("audience.cli.no_such_module") is None
    assert _declared("json") == []  # plain source, no click command in it
    module = "tests.cli_lazy_computed"
    lazy = LazyGroup("audience", modules=["audience.cli.demo_cmd", module])
    assert _declared(module) is None
    assert sorted(lazy.stubs()) == ["demo"]  # the other module was imported instead
    assert module in sys.modules
    assert lazy.list_commands(click.Context(lazy)) == ["computed", "demo"]
    assert lazy.get_command(click.Context(lazy), "computed") is not None


def test_a_command_is_found_by_its_source_without_reading_every_module() -> None:
    """Running a command imports the module whose source declares it; the
    listing (every module's source parsed) is left for --help."""
    modules = [f"audience.cli.{m}" for m in COMMAND_MODULES]
    lazy = LazyGroup("audience", modules=modules)
    cmd = lazy.get_command(click.Context(lazy), "eval")
    assert cmd is not None and cmd.name == "eval" and cmd.params  # the real command
    assert lazy._stubs is None and lazy._loaded == {"audience.cli.eval_cmd"}
    # a name no source declares: the listing decides (no such command)
    assert lazy.get_command(click.Context(lazy), "no-such-command") is None
    assert lazy._stubs is not None


def test_a_count_in_a_new_process_loads_no_table_printing(tmp_path: Path) -> None:
    """``eval --format count`` prints a number: rich (consoles, tables,
    markup) is never imported."""
    from audience.runtime.store import Store
    from tests.helpers.store_data import events_table, schema

    store = Store.init(tmp_path / "s", schema())
    store.ingest_events(events_table())
    code = textwrap.dedent(
        f"""
        import sys
        from audience.cli import cli
        try:
            cli(["eval", {str(tmp_path / "s")!r}, "-e", "did purchased", "--format", "count"],
                prog_name="audience")
        except SystemExit as exc:
            assert not exc.code, exc.code
        print(sorted(m for m in sys.modules if m.split(".")[0] == "rich"))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    count, loaded = proc.stdout.strip().splitlines()[-2:]
    assert int(count) > 0 and loaded == "[]"


# What a count never needs: the store's write path (and its kernels), the
# blocks of the language a segment cannot hold, the syntax errors' module
# (the text parses) and numpy.ma (numba's typeof imports it; ours does not)
NOT_FOR_A_COUNT = (
    "audience.runtime.store.ingest",
    "audience.runtime.store.wal",
    "audience.runtime.store.dedup",
    "audience.runtime.store.hashing",
    "audience.runtime.store.dictionaries",
    "audience.runtime.store.sources",
    "audience.runtime.store.validate",
    "audience.runtime.store.infer",
    "audience.runtime.tracking",
    "audience.dsl.ast_journeys",
    "audience.dsl.ast_sending",
    "audience.dsl.builder_journeys",
    "audience.dsl.builder_sending",
    "audience.dsl.check.actions",
    "audience.dsl.check.journeys",
    "audience.dsl.check.sending",
    "audience.dsl.syntax_errors",
    "numpy.ma",
)


def _checkpointed_store(path: Path) -> None:
    from audience.runtime.store import Store
    from tests.helpers.store_data import events_table, profiles_table, schema

    store = Store.init(path, schema())
    store.ingest_profiles(profiles_table())
    store.ingest_events(events_table())
    store.checkpoint()  # no log of small ingests left to replay


def test_a_count_in_a_new_process_imports_only_what_a_count_needs(tmp_path: Path) -> None:
    _checkpointed_store(tmp_path / "s")
    text = 'did purchased where amount > 10 and (city = "Paris" or not did viewed_product)'
    code = textwrap.dedent(
        f"""
        import json, sys
        from audience.cli import cli
        try:
            cli(["eval", {str(tmp_path / "s")!r}, "-e", {text!r}, "--format", "count"],
                prog_name="audience")
        except SystemExit as exc:
            assert not exc.code, exc.code
        never = {NOT_FOR_A_COUNT!r}
        print(json.dumps(sorted(m for m in sys.modules if m in never or m.startswith(
              tuple(n + "." for n in never)))))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    count, loaded = proc.stdout.strip().splitlines()[-2:]
    assert int(count) >= 0 and json.loads(loaded) == []


def test_opening_a_store_and_its_snapshot_loads_no_kernel(tmp_path: Path) -> None:
    """A command that reads a store (its schema, its size) imports no numba."""
    _checkpointed_store(tmp_path / "s")
    code = textwrap.dedent(
        f"""
        import json, sys
        import audience
        snap = audience.open({str(tmp_path / "s")!r}).snapshot()
        print(json.dumps([snap.n_contacts, snap.n_events, "numba" in sys.modules]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    contacts, events, numba = json.loads(proc.stdout.strip().splitlines()[-1])
    assert contacts > 0 and events > 0 and numba is False
