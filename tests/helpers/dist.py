"""The local Dask cluster of the cluster tests: two worker processes of one
thread each, as on 2-core CI (the tests skip without the ``dist`` extra)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def local_cluster() -> Iterator[Any]:
    """A client of a fresh local cluster, both closed on leaving."""
    from audience.dist import LocalOptions, connect

    client, local = connect("local", LocalOptions(workers=2, memory_limit="2GiB"))
    try:
        yield client
    finally:
        client.close()
        local.close()


def deadline_wait(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait until ``cond()`` holds: a condition polled, never a guessed sleep."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def block(event_name: str) -> int:
    """A task that holds its worker's only thread, and its lock of open
    shards, until the Dask event is set: a direct call to the worker waits,
    whether in the worker's executor (over Dask's comms) or in its channel's
    thread, for the shard it needs."""
    from distributed import Event

    from audience.dist import worker

    with worker._lock:
        Event(event_name).wait(120)
    return os.getpid()


def blocked(client: Any, worker: str) -> bool:
    """Whether ``block`` holds ``worker``'s lock of open shards."""
    held: bool = client.run(_shards_locked, workers=[worker])[worker]
    return held


def _shards_locked() -> bool:
    from audience.dist import worker

    return worker._lock.locked()


def waiting_calls(client: Any, worker: str) -> int:
    """The direct calls ``worker`` has received and not answered yet."""
    from audience.dist.worker import calls

    waiting: int = client.run(calls, workers=[worker])[worker]["waiting"]
    return waiting
