"""The state of one evaluation: private to it, so evaluations never share
mutable state (only the thread-safe lookup-table cache)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audience.compiler.plan import PredNode
from audience.compiler.strings import LutCache
from audience.runtime.snapshot import Dictionary, Snapshot

EMPTY_DICTIONARY = Dictionary.from_values(())


@dataclass
class EvalContext:
    snapshot: Snapshot
    now_ms: int
    luts: LutCache
    universe: np.ndarray = field(init=False)
    profile_masks: dict[PredNode, np.ndarray] = field(default_factory=dict)
    columns_read: set[str] = field(default_factory=set)
    stats: dict[str, Any] = field(default_factory=dict)  # the running step's explain entry

    _contacts: Dictionary | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.universe = self.snapshot.universe(self.now_ms)

    def contact_dictionary(self) -> Dictionary:
        """The contact ids as a dictionary (code = dense index), built on demand."""
        if self._contacts is None:
            self._contacts = Dictionary.from_values(self.snapshot.contact_ids)
        return self._contacts

    def dictionary(self, key: str) -> Dictionary:
        return self.snapshot.dictionaries.get(key, EMPTY_DICTIONARY)
