"""The Arrow columnar event store: ingest, rejects, snapshots, saved definitions."""

from audience.runtime.store.definitions import Definitions, SavedSegment
from audience.runtime.store.errors import IngestReport, Reject, SegmentInUse, StoreError
from audience.runtime.store.store import Store, open_store

__all__ = [
    "Definitions",
    "IngestReport",
    "Reject",
    "SavedSegment",
    "SegmentInUse",
    "Store",
    "StoreError",
    "open_store",
]
