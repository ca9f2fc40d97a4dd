"""The local Dask cluster of the cluster tests: two worker processes of one
thread each, as on 2-core CI (the tests skip without the ``dist`` extra)."""

from __future__ import annotations

from collections.abc import Iterator
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
