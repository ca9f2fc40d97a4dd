"""``audience serve``, ``audience nodes ...`` and ``audience sources ...``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from audience.cli.cluster_opts import cluster_error, cluster_options
from audience.cli.output import echo_json, format_option
from audience.runtime.store import StoreError
from audience.server.auth import SCOPES, AuthError, Sources


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.command("serve")
@click.argument("store", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--max-body-mb",
    default=32,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="largest request body accepted (larger: 413)",
)
@cluster_options("sharded nodes", "with the server")
def serve_cmd(
    store: str,
    host: str,
    port: int,
    threads: int,
    max_body_mb: int,
    cluster: str | None,
    workers: int | None,
) -> None:
    """Serve the HTTP API over STORE (waitress; JSON access log on stderr)."""
    from audience.server.context import ServerConfig
    from audience.server.serve import configure_logging, serve

    unreachable = cluster_error(cluster, workers)
    configure_logging()
    config = ServerConfig(
        Path(store),
        max_content_length=max_body_mb * 1024 * 1024,
        cluster=cluster,
        cluster_workers=workers,
    )
    try:
        serve(store, host=host, port=port, threads=threads, config=config)
    except (StoreError, unreachable) as exc:
        raise _fail(exc) from None
    except OSError as exc:  # the port is taken, the host is not ours
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@click.group("nodes")
def nodes_group() -> None:
    """The nodes (databases) of a store."""


@nodes_group.command("list")
@click.argument("store", type=click.Path())
@format_option()
def nodes_list(store: str, fmt: str) -> None:
    """One node name a line (json: a list of names)."""
    names = _nodes(store)
    if fmt == "json":
        echo_json(names)
        return
    for name in names:
        click.echo(name)


@nodes_group.command("create")
@click.argument("store", type=click.Path())
@click.argument("name")
@click.option("--schema", "schema_path", type=click.Path(), help="default: node main's schema")
@click.option("--shards", type=int, default=None, help="split its contacts over N shards")
def nodes_create(store: str, name: str, schema_path: str | None, shards: int | None) -> None:
    """Add node NAME to STORE."""
    from audience.server.nodes import create_node

    try:
        create_node(store, name, schema_path, shards=shards)
    except StoreError as exc:
        raise _fail(exc) from None
    click.echo(f"created node {name} in {store}")


@click.group("sources")
def sources_group() -> None:
    """API clients of a store and their tokens."""


def _nodes(store: str) -> list[str]:
    # audience.server.nodes pulls in the evaluator: imported when a command runs
    from audience.server.nodes import list_nodes

    try:
        return list_nodes(store)
    except StoreError as exc:
        raise _fail(exc) from None


@sources_group.command("create")
@click.argument("store", type=click.Path())
@click.option(
    "--node", default="main", show_default=True, help="the node the source reads or writes"
)
@click.option("--name", required=True, help="who the source is, for people")
@click.option("--scope", required=True, type=click.Choice(SCOPES))
def sources_create(store: str, node: str, name: str, scope: str) -> None:
    """Create a source and print its token (shown this once only)."""
    if node not in _nodes(store):
        raise click.ClickException(f"{store}: no node {node!r}")
    try:
        source, token = Sources(store).create(node, name, scope)
    except AuthError as exc:
        raise _fail(exc) from None
    click.echo(f"created source {source.id} ({source.name}, {scope} on node {node})", err=True)
    click.echo("token (shown once; keep it secret):", err=True)
    click.echo(token)


@sources_group.command("list")
@click.argument("store", type=click.Path())
@click.option("--node", default=None, help="only this node's sources")
@format_option()
def sources_list(store: str, node: str | None, fmt: str) -> None:
    """The sources: id, node, scope, name, created, revoked (never their tokens)."""
    _nodes(store)
    sources = Sources(store).list_sources(node)
    if fmt == "json":
        echo_json([dataclasses.asdict(s) for s in sources])
        return
    for s in sources:
        state = f"revoked {s.revoked}" if s.revoked else "active"
        click.echo(f"{s.id}\t{s.node}\t{s.scope}\t{s.name}\t{s.created}\t{state}")


@sources_group.command("revoke")
@click.argument("store", type=click.Path())
@click.argument("source_id")
def sources_revoke(store: str, source_id: str) -> None:
    """Revoke a source: its token stops working at once."""
    _nodes(store)
    if not Sources(store).revoke(source_id):
        raise click.ClickException(f"no active source {source_id!r}")
    click.echo(f"revoked {source_id}")


def register(group: click.Group) -> None:
    group.add_command(serve_cmd)
    group.add_command(nodes_group)
    group.add_command(sources_group)
