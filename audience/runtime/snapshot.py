"""Moved to ``audience.snapshot`` (below the compiler and the runtime alike);
its names stay importable from here for code not yet updated."""

from audience.snapshot import (
    Column,
    ColumnKind,
    Dictionary,
    LazyStrings,
    Partition,
    Snapshot,
    dictionary_key,
)

__all__ = [
    "Column",
    "ColumnKind",
    "Dictionary",
    "LazyStrings",
    "Partition",
    "Snapshot",
    "dictionary_key",
]
