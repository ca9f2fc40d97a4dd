"""audience: a rule engine for marketing platforms.

Segments (who), triggers (what reacts to one event) and DND policies (how often)
written in a small language and evaluated over a columnar event store::

    import audience
    store = audience.open("shop/")
    seg = store.compile('did purchased in last 30 days')
    hits = seg.evaluate(as_of="2026-11-01T00:00:00Z")
    len(hits), hits.ids()[:5]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Store", "open"]

if TYPE_CHECKING:
    from audience.runtime.store import Store


def open(path: str, node: str = "main") -> Store:
    """Open the store directory ``path`` (the node ``main`` unless told)."""
    from audience.runtime.store import open_store

    return open_store(path, node)


def __getattr__(name: str) -> Any:
    # The store pulls in numpy and pyarrow: load it on first use only.
    if name == "Store":
        from audience.runtime.store import Store

        return Store
    raise AttributeError(f"module 'audience' has no attribute {name!r}")
