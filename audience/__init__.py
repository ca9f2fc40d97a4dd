"""audience: a rule engine for marketing platforms.

Segments (who), triggers (what reacts to one event) and DND policies (how often)
written in a small language and evaluated over a columnar event store::

    import audience
    node = audience.open("shop/")
    seg = node.compile('did purchased in last 30 days')
    hits = seg.evaluate(as_of="2026-11-01T00:00:00Z")
    len(hits), hits.ids()[:5]

The public names: ``open``, ``Node`` (what ``open`` returns;
``Node.from_arrow`` builds one in memory), ``Store`` (a node's storage:
ingests and snapshots), ``Schema``, and the errors ``DslError`` (a rules text: syntax,
schema, references), ``SchemaError`` (a schema file) and ``StoreError`` (a
store that cannot be created, opened or written).
"""

from __future__ import annotations

import typing as _typing

__version__ = "0.1.0"
__all__ = ["DslError", "Node", "Schema", "SchemaError", "Store", "StoreError", "open"]

if _typing.TYPE_CHECKING:
    from audience.dist import ClusterStore
    from audience.dsl.errors import DslError
    from audience.runtime.node import Node
    from audience.runtime.store import Store, StoreError
    from audience.schema import Schema, SchemaError

# Loaded on first use (module __getattr__): the store pulls in numpy and
# pyarrow, and `import audience` must stay cheap for the command line.
_LAZY = {
    "DslError": "audience.dsl.errors",
    "Node": "audience.runtime.node",
    "Schema": "audience.schema",
    "SchemaError": "audience.schema",
    "Store": "audience.runtime.store",
    "StoreError": "audience.runtime.store.errors",
}


@_typing.overload
def open(path: str, node: str = "main", *, cluster: None = None) -> Node: ...
@_typing.overload
def open(path: str, node: str = "main", *, cluster: object) -> ClusterStore: ...
def open(path: str, node: str = "main", *, cluster: object = None) -> Node | ClusterStore:
    """Open the node ``main`` (unless told) of the store directory ``path``:
    a ``Node`` (audience.runtime.node), which compiles, evaluates, ingests and
    keeps saved segments and triggers.  A sharded node opens as a
    ``ShardedNode``, which does the same.

    With ``cluster`` (a sharded store only): a ``ClusterStore`` whose segments
    are evaluated on a Dask cluster: ``"local"`` (worker processes started
    here, one per core), a scheduler address ``"tcp://host:port"`` or a
    ``distributed.Client`` (docs/scale-out.md).  Close it when done."""
    if cluster is not None:
        from audience.dist import ClusterStore

        return ClusterStore.open(path, cluster, node)
    from audience.runtime.node import open_node

    return open_node(path, node)


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'audience' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
