"""The read-only view of one store version that the compiler and the kernels read.

This is the contract between the store (which writes and memory-maps the
files) and the compiler and evaluator (which only read numpy arrays); it sits
below both, so the compiler never imports the runtime.  A snapshot never
changes: an ingest that lands makes a new one, and an evaluation holds the one
it started with, so it sees one consistent version.

Encodings (all arrays are numpy views, usually of memory-mapped Arrow buffers):
- timestamps: int64 milliseconds since the epoch, UTC;
- contacts: int32 dense index into ``Snapshot.contact_ids``;
- event types: int32 code into ``Snapshot.event_types``;
- strings: int32 codes into the store-wide, append-only dictionary of that
  property (``Snapshot.dictionaries[key]``), so a string predicate is decided
  once per distinct value and kernels compare integers;
- int -> int64, float -> float64, bool -> bool (uint8), date -> int32 days
  since 1970-01-01, datetime -> int64 ms;
- list<string> -> ``offsets`` (int32, n+1) into int32 codes;
- a missing value is ``valid[i] == False`` (``valid`` None: all present).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from audience.schema import Schema

if TYPE_CHECKING:
    import pyarrow as pa

ColumnKind = Literal["code", "int", "float", "bool", "date", "datetime", "list"]


def dictionary_key(scope: Literal["event", "profile"], name: str) -> str:
    """Event properties share one dictionary per property name across event
    types (``category`` of views and purchases compare as one); profile
    properties have their own, keyed ``profile.NAME``."""
    return name if scope == "event" else f"profile.{name}"


class LazyStrings(Sequence[str]):
    """``n`` strings made by ``load`` on first use of an element: opening a
    store and evaluating need only the length of most dictionaries (a big
    one, such as the contact ids, costs a tenth of a second to turn into
    Python strings).  With ``prefix``, ``load`` makes only the strings after
    it, so a dictionary that grew by a few values reuses the ones it had.
    ``arrow``: the same ``n`` strings as one Arrow array, when the store has
    it (an audience's member ids are gathered from it: audience.runtime.ids),
    or ``arrow_of``, which makes it on first use (a store's dictionary file
    is read when a query needs its values, not when the snapshot is taken)."""

    def __init__(
        self,
        n: int,
        load: Callable[[], Sequence[str]],
        prefix: Sequence[str] = (),
        arrow: pa.Array | None = None,
        arrow_of: Callable[[], pa.Array] | None = None,
    ) -> None:
        self._n = n
        self._arrow = arrow
        self._arrow_of = arrow_of
        self._prefix = prefix
        self._load: Callable[[], Sequence[str]] | None = load
        self._values: Sequence[str] | None = None
        self._lock = threading.RLock()  # (``load`` may read ``arrow``)

    @property
    def arrow(self) -> pa.Array | None:
        if self._arrow is None and self._arrow_of is not None:
            with self._lock:
                if self._arrow is None and self._arrow_of is not None:
                    self._arrow = self._arrow_of()
                    self._arrow_of = None
        return self._arrow

    def _rest(self) -> Sequence[str]:
        if self._values is None:
            with self._lock:
                if self._values is None:
                    assert self._load is not None
                    values = self._load()
                    if len(self._prefix) + len(values) != self._n:
                        raise ValueError(f"expected {self._n} strings, loaded {len(values)}")
                    self._values, self._load = values, None
        return self._values

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        k = len(self._prefix)
        if isinstance(i, int) and 0 <= i < k:
            return self._prefix[i]
        if isinstance(i, int) and i >= k:
            return self._rest()[i - k]
        return list(self)[i]

    def __iter__(self) -> Iterator[str]:
        yield from self._prefix
        yield from self._rest()


class Dictionary:
    """Append-only string dictionary: ``values[code]`` is the string.  The
    value -> code index is built on first use (a dictionary of a million
    urls that no segment names costs nothing)."""

    __slots__ = ("_index", "values")

    def __init__(self, values: Sequence[str], index: Mapping[str, int] | None = None) -> None:
        self.values = values
        self._index = index

    @classmethod
    def from_values(cls, values: Sequence[str]) -> Dictionary:
        return cls(values)

    @property
    def index(self) -> Mapping[str, int]:
        if self._index is None:  # two threads may both build it: same result
            self._index = {v: i for i, v in enumerate(self.values)}
        return self._index

    def __len__(self) -> int:
        return len(self.values)

    def code(self, value: str) -> int:
        """The code of ``value``, or -1 when the store has never seen it."""
        return self.index.get(value, -1)


@dataclass(frozen=True)
class Column:
    kind: ColumnKind
    values: np.ndarray
    valid: np.ndarray | None = None  # bool per row; None means every row has a value
    offsets: np.ndarray | None = None  # kind == "list" only


@dataclass(frozen=True)
class Partition:
    """A time slice of events, sorted by ``ts``; ``min_ts``/``max_ts`` let a
    windowed condition skip it without reading it."""

    min_ts: int
    max_ts: int
    ts: np.ndarray  # int64 ms, ascending
    contact: np.ndarray  # int32
    type: np.ndarray  # int32
    columns: Mapping[str, Column]  # "context" and the event properties, by name

    def __len__(self) -> int:
        return len(self.ts)


class LazyPartition(Partition):
    """A partition whose rows are viewed on first use: ``load`` makes the
    Partition (a store file's views), while its bounds and length come from
    the store's manifest, so a scan whose window misses it, or a count of a
    snapshot's events, never reads its file (a new process's first query
    reads the few partitions of its windows, not every one)."""

    _rows: int
    _load: Callable[[], Partition]
    _part: Partition | None
    _lock: threading.Lock

    def __init__(self, min_ts: int, max_ts: int, rows: int, load: Callable[[], Partition]) -> None:
        # (frozen, as a Partition: its attributes are set past the dataclass' guard)
        for name, value in (
            ("min_ts", min_ts),
            ("max_ts", max_ts),
            ("_rows", rows),
            ("_load", load),
            ("_part", None),
            ("_lock", threading.Lock()),
        ):
            object.__setattr__(self, name, value)

    def _view(self) -> Partition:
        part = self._part
        if part is None:
            with self._lock:
                part = self._part
                if part is None:
                    part = self._load()
                    bounds = (part.min_ts, part.max_ts, len(part))
                    if bounds != (self.min_ts, self.max_ts, self._rows):
                        raise ValueError("internal: a partition file differs from its manifest")
                    object.__setattr__(self, "_part", part)
        return part

    # the rows, read through (a Partition's fields are plain attributes)
    ts = property(lambda self: self._view().ts)
    contact = property(lambda self: self._view().contact)
    type = property(lambda self: self._view().type)
    columns = property(lambda self: self._view().columns)

    def __len__(self) -> int:
        return self._rows


@dataclass(frozen=True)
class Snapshot:
    version: int
    schema: Schema
    contact_ids: Sequence[str]  # dense index -> the caller's contact id
    event_types: Dictionary
    dictionaries: Mapping[str, Dictionary]
    has_profile: np.ndarray  # bool per contact
    first_event_ts: np.ndarray  # int64 per contact; INT64_MAX when it has no event
    profile: Mapping[str, Column]  # aligned with contact_ids
    partitions: Sequence[Partition] = field(default_factory=tuple)

    @property
    def n_contacts(self) -> int:
        return len(self.contact_ids)

    @property
    def n_events(self) -> int:
        return sum(len(p) for p in self.partitions)

    def read_files(self) -> None:
        """Read every partition and dictionary now, which a snapshot does on
        first need otherwise: a long-lived reader (a cluster's worker) pays
        it at its start rather than in its first query."""
        for part in self.partitions:
            len(part.ts)
        for d in (self.event_types, *self.dictionaries.values()):
            getattr(d.values, "arrow", None)
        getattr(self.contact_ids, "arrow", None)

    def universe(self, now_ms: int) -> np.ndarray:
        """docs/language/time.md: every contact with a profile or an event at or before now."""
        out: np.ndarray = self.has_profile | (self.first_event_ts <= now_ms)
        return out
