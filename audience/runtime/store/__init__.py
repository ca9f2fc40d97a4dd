"""The Arrow columnar event store: ingest, rejects, snapshots and the saved
definitions' file (what a node does with them: audience.runtime.node)."""

from audience.runtime.store.definitions import Definitions, SavedSegment
from audience.runtime.store.errors import IngestReport, Reject, SegmentInUse, StoreError
from audience.runtime.store.store import Store

__all__ = [
    "Definitions",
    "IngestReport",
    "Reject",
    "SavedSegment",
    "SegmentInUse",
    "Store",
    "StoreError",
]
