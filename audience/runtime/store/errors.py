"""The store's error type and the record of a rejected input row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class StoreError(Exception):
    """A store that cannot be created, opened or written; the message names the path."""


class SegmentInUse(StoreError):
    """A saved segment that other definitions refer to cannot be deleted."""

    def __init__(self, name: str, users: list[str]) -> None:
        self.name, self.users = name, users
        super().__init__(
            f"saved segment '{name}' is used by {', '.join(users)}: change or delete "
            + ("it" if len(users) == 1 else "them")
            + " first"
        )


@dataclass(frozen=True)
class Reject:
    """One input record that did not fit the schema, kept with its reason.

    ``line`` is the record's position in its source: the 1-based line of a JSON
    Lines file, the 1-based data row of a CSV file (header excluded), the
    0-based row index of a Parquet file or Arrow table, the 1-based position of
    a record in an iterable; ``where`` spells it out ("line 3", "row 2", ...).
    """

    source: str
    line: int
    where: str
    field: str | None
    reason: str
    raw: str
    kind: str = "events"  # or "profiles"

    def __str__(self) -> str:
        return f"{self.source}: {self.where}: {self.reason}"


@dataclass
class IngestReport:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejects: list[Reject] = field(default_factory=list)
    # What the node's triggers did with the accepted events: the watcher's
    # report (a BatchReport of audience.runtime.triggers.engine; None: nothing
    # to match).  Typed loosely: the store does not know the triggers.
    triggers: Any = None

    def merge(self, other: IngestReport) -> None:
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        self.rejects.extend(other.rejects)
