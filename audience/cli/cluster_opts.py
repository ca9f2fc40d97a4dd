"""The ``--cluster`` and ``--workers`` options of the commands that can
evaluate sharded nodes on a Dask cluster (eval, serve, scheduler)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def cluster_options(what: str, started: str) -> Callable[[F], F]:
    """``--cluster ADDR|local`` (``what`` is evaluated there; a local cluster
    is started with ``started``) and ``--workers N``."""

    def wrap(f: F) -> F:
        f = click.option(
            "--workers",
            type=click.IntRange(1, 1024),
            help="With --cluster local: how many worker processes (default: one per core).",
        )(f)
        return click.option(
            "--cluster",
            metavar="ADDR|local",
            help=f"Evaluate {what} on a Dask cluster: a scheduler address "
            f"(tcp://host:port) or 'local' (worker processes started {started}).",
        )(f)

    return wrap


def cluster_error(cluster: str | None, workers: int | None) -> type[Exception]:
    """Checks the options together; the error a cluster that cannot be reached
    raises (one no command meets without ``--cluster``)."""
    if workers is not None and cluster != "local":
        raise click.UsageError("--workers goes with --cluster local")
    if cluster is None:
        return _NoCluster
    try:
        from audience.dist import ClusterError
    except ImportError:
        raise click.ClickException("--cluster needs Dask: pip install 'audience[dist]'") from None
    return ClusterError


class _NoCluster(Exception):
    """Never raised: what there is to catch without a cluster."""
