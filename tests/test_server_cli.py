"""``audience nodes``, ``audience sources`` and ``audience serve`` (a real process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
from click.testing import CliRunner

from audience.cli.server_cmds import register
from audience.demo.run import EXAMPLES
from audience.runtime.store import Store
from audience.server.auth import Sources
from tests.helpers.server_api import Client, event

ROOT = Path(__file__).resolve().parent.parent


def cli() -> click.Group:
    @click.group()
    def group() -> None:
        pass

    register(group)
    return group


def test_nodes_list_and_create(tmp_path: Path) -> None:
    store = tmp_path / "s"
    Store.init(store, EXAMPLES / "maison.toml")
    runner = CliRunner()
    r = runner.invoke(cli(), ["nodes", "create", str(store), "eu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli(), ["nodes", "create", str(store), "eu"])
    assert r.exit_code == 1 and "already a store with a node 'eu'" in r.output
    r = runner.invoke(cli(), ["nodes", "create", str(store), "bad name!"])
    assert r.exit_code == 1 and "bad node name" in r.output
    r = runner.invoke(
        cli(), ["nodes", "create", str(store), "us", "--schema", str(EXAMPLES / "maison.toml")]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli(), ["nodes", "list", str(store)])
    assert r.exit_code == 0 and r.output.split() == ["eu", "main", "us"]
    assert Store.open(store, "eu").schema.version == Store.open(store).schema.version
    r = runner.invoke(cli(), ["nodes", "list", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "not an audience store" in r.output


def test_sources_create_list_revoke(tmp_path: Path) -> None:
    store = tmp_path / "s"
    Store.init(store, EXAMPLES / "maison.toml")
    runner = CliRunner()
    args = ["sources", "create", str(store), "--node", "main", "--name", "shop", "--scope", "read"]
    r = runner.invoke(cli(), args)
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    assert token.startswith("aud_") and "\n" not in token
    source = Sources(store).authenticate(token)
    assert source is not None and (source.node, source.scope) == ("main", "read")
    r = runner.invoke(cli(), ["sources", "list", str(store)])
    assert r.exit_code == 0 and source.id in r.output and "active" in r.output
    assert token not in r.output
    bad_node = ["sources", "create", str(store), "--node", "x", "--name", "a", "--scope", "read"]
    r = runner.invoke(cli(), bad_node)
    assert r.exit_code == 1 and "no node 'x'" in r.output
    bad_scope = ["sources", "create", str(store), "--node", "main", "--name", "a", "--scope", "all"]
    assert runner.invoke(cli(), bad_scope).exit_code == 2
    r = runner.invoke(cli(), ["sources", "revoke", str(store), source.id])
    assert r.exit_code == 0, r.output
    assert Sources(store).authenticate(token) is None
    r = runner.invoke(cli(), ["sources", "revoke", str(store), source.id])
    assert r.exit_code == 1


def test_sources_create_defaults_to_node_main(tmp_path: Path) -> None:
    store = tmp_path / "s"
    Store.init(store, EXAMPLES / "maison.toml")
    r = CliRunner().invoke(
        cli(), ["sources", "create", str(store), "--name", "a", "--scope", "write"]
    )
    assert r.exit_code == 0, r.output
    source = Sources(store).authenticate(r.stdout.strip())
    assert source is not None and (source.node, source.scope) == ("main", "write")


def test_nodes_and_sources_as_json(tmp_path: Path) -> None:
    store = tmp_path / "s"
    Store.init(store, EXAMPLES / "maison.toml")
    runner = CliRunner()
    assert runner.invoke(cli(), ["nodes", "create", str(store), "eu"]).exit_code == 0
    r = runner.invoke(cli(), ["nodes", "list", str(store), "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == ["eu", "main"]
    made = [Sources(store).create(node, f"app {node}", "read") for node in ("main", "eu")]
    Sources(store).revoke(made[1][0].id)
    r = runner.invoke(cli(), ["sources", "list", str(store), "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = {x["id"]: x for x in json.loads(r.stdout)}
    assert {i: (x["node"], x["name"], x["scope"]) for i, x in rows.items()} == {
        s.id: (s.node, s.name, "read") for s, _ in made
    }
    assert rows[made[0][0].id]["revoked"] is None
    assert rows[made[1][0].id]["revoked"] is not None
    assert all(token not in r.stdout for _, token in made)
    r = runner.invoke(cli(), ["sources", "list", str(store), "--node", "eu", "--format", "json"])
    assert [x["node"] for x in json.loads(r.stdout)] == ["eu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_waitress_in_its_own_process(tmp_path: Path) -> None:
    store = tmp_path / "s"
    Store.init(store, EXAMPLES / "maison.toml")
    _, token = Sources(store).create("main", "cli test", "write")
    port = _free_port()
    code = (
        "import click, sys\n"
        "from audience.cli.server_cmds import register\n"
        "g = click.Group('audience')\n"
        "register(g)\n"
        "g(sys.argv[1:])\n"
    )
    cmd = [sys.executable, "-c", code, "serve", str(store), "--port", str(port), "--threads", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env, text=True)
    try:
        client = Client(f"http://127.0.0.1:{port}", token)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/healthz").status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        r = client.post("/v1/events", [event("c1")])
        assert r.status == 200 and r.json()["accepted"] == 1
        r = client.post("/v1/evaluate", {"segment": "did purchased"})
        assert r.json()["ids"] == ["c1"]
        assert r.headers["server"] == "audience"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [x for x in logs if x.get("path") == "/v1/evaluate"]
    assert access and access[0]["status"] == 200 and access[0]["node"] == "main"
    assert access[0]["source"].startswith("src_") and access[0]["ms"] >= 0
