"""Segments evaluated over a sharded store on a Dask cluster (the ``dist`` extra).

``ClusterStore.open(path, cluster)`` with ``cluster`` a scheduler address
(``tcp://host:port``), ``"local"`` (a cluster of worker processes started
here) or a ``distributed.Client``; ``store.compile(text).evaluate(as_of)``
returns an ``Audience`` as a one-machine store does, from the shards' workers
called directly (``Timeouts`` bounds those calls).  See docs/scale-out.md.
"""

from audience.dist.cluster import ClusterError, LocalOptions, connect
from audience.dist.direct import Timeouts
from audience.dist.query import ClusterSegment, ClusterStore, QueryTimes

__all__ = [
    "ClusterError",
    "ClusterSegment",
    "ClusterStore",
    "LocalOptions",
    "QueryTimes",
    "Timeouts",
    "connect",
]
