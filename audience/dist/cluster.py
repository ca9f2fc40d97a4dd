"""Reaching a Dask cluster: a scheduler's address, a client made by the
caller, or a local cluster of worker processes started for us.

Work stealing is turned off (a query's task belongs on the worker that has
its shards open; stealing would open them a second time elsewhere) and a task
whose worker dies is retried on another (``allowed-failures``).  Both are
scheduler settings: a local cluster gets them here; a scheduler started
elsewhere is told by its environment (docs/scale-out.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

# a worker's share of memory before its nanny restarts it: the shards'
# memory-mapped pages that a query touched count in its RSS, so a worker
# needs room for the shards it holds, not only for its own arrays
DEFAULT_MEMORY_FRACTION = 0.8
ALLOWED_FAILURES = 3
# the scheduler's topic of cluster-wide events: a worker joining or leaving
EVENTS_TOPIC = "all"

SCHEDULER_CONFIG: dict[str, Any] = {
    "distributed.scheduler.work-stealing": False,
    "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
    # the statistical profiler wakes every 10 ms in each worker: on a few
    # cores that is time taken from queries that last a few ms
    "distributed.worker.profile.enabled": False,
    # the other timers of an idle process: Dask's defaults (an event-loop
    # check every 20 ms, system and GIL monitors, memory every 100 ms) cost
    # an idle worker 20 ms of CPU a second and the process holding scheduler,
    # nannies and client 47 ms; with these, 2-4 ms and 8 ms (a 2-worker
    # local cluster, 10 s idle).  That CPU is taken from the workers' queries,
    # most from the slowest one, whose time is the query's.  The memory check
    # at 500 ms still stops a runaway worker (it watches the same limit)
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.memory.monitor-interval": "500ms",
}


class ClusterError(Exception):
    """A cluster that cannot be reached or started."""


@dataclass(frozen=True)
class LocalOptions:
    """A local cluster: ``workers`` processes (default: one per core), each
    with one thread; ``memory_limit`` per worker (bytes, or Dask's text such
    as ``"4GiB"``; default: its share of ``DEFAULT_MEMORY_FRACTION`` of the
    machine); ``kernel_threads``: numba threads per worker (default: the
    cores divided among the workers)."""

    workers: int | None = None
    memory_limit: int | str | None = None
    kernel_threads: int | None = None


def connect(cluster: Any, options: LocalOptions | None = None) -> tuple[Any, Any | None]:
    """``(client, local_cluster)`` for ``cluster``: ``"local"``, a scheduler
    address (``tcp://host:port``) or a ``distributed.Client``.  The local
    cluster (None otherwise) is the caller's to close with the client."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("the cluster option needs Dask: pip install 'audience[dist]'") from None
    from audience.dist.worker import WarmKernels

    ours = _client_class()

    options = options or LocalOptions()
    local = None
    if isinstance(cluster, Client):
        client = cluster
    elif cluster == "local":
        cores = os.cpu_count() or 1
        workers = options.workers or cores
        with dask.config.set(SCHEDULER_CONFIG):
            local = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                memory_limit=options.memory_limit or _memory_share(workers),
            )
            client = ours(local)
    elif isinstance(cluster, str) and "://" in cluster:
        try:
            client = ours(cluster, timeout="10s")
        except OSError as exc:
            raise ClusterError(f"cannot reach the scheduler at {cluster}: {exc}") from None
    else:
        raise ClusterError(
            f"cluster must be 'local', a scheduler address (tcp://host:port) or a Client, "
            f"not {cluster!r}"
        )
    threads = options.kernel_threads or max(1, (os.cpu_count() or 1) // max(1, _workers(client)))
    client.register_plugin(WarmKernels(threads), name=WarmKernels.name)
    return client, local


def _client_class() -> type:
    from distributed import Client

    class AudienceClient(Client):
        """A client that stops listening to the scheduler's events (dist/direct.py
        follows the workers joining and leaving there) before it closes: the
        scheduler would otherwise send it the news of its own departure over
        its closed connection, and log that as critical."""

        async def _close(self, fast: bool = False) -> None:
            from audience.dist.channel_calls import close_channels

            close_channels(self)
            if self.status in ("running", "closing") and EVENTS_TOPIC in self._event_handlers:
                self.unsubscribe_topic(EVENTS_TOPIC)
            await super()._close(fast=fast)

    return AudienceClient


def _workers(client: Any) -> int:
    return len(client.scheduler_info().get("workers", {}))


def _memory_share(workers: int) -> int:
    import psutil

    return int(psutil.virtual_memory().total * DEFAULT_MEMORY_FRACTION / max(1, workers))
