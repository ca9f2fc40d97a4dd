"""The state of one evaluation: private to it, so evaluations never share
mutable state (only the thread-safe lookup-table cache)."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audience.compiler.plan import PredNode
from audience.engine.scratch import Lease
from audience.engine.strings import LutCache
from audience.snapshot import Dictionary, Snapshot

EMPTY_DICTIONARY = Dictionary.from_values(())


@dataclass
class EvalContext:
    snapshot: Snapshot
    now_ms: int
    luts: LutCache
    universe: np.ndarray = field(init=False)  # read-only: never write into it
    universe_all: bool = field(init=False)  # every contact is in the universe
    profile_masks: dict[PredNode, np.ndarray] = field(default_factory=dict)
    columns_read: set[str] = field(default_factory=set)
    stats: dict[str, Any] = field(default_factory=dict)  # the running step's explain entry
    # the per-contact work arrays leased from the snapshot's pool (run_program
    # gives them back when the evaluation ends)
    scratch: Lease = field(init=False)

    _contacts: Dictionary | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.universe, self.universe_all = universe_of(self.snapshot, self.now_ms)
        self.scratch = Lease(self.snapshot)

    def contact_dictionary(self) -> Dictionary:
        """The contact ids as a dictionary (code = dense index), built on demand."""
        if self._contacts is None:
            self._contacts = Dictionary.from_values(self.snapshot.contact_ids)
        return self._contacts

    def dictionary(self, key: str) -> Dictionary:
        return self.snapshot.dictionaries.get(key, EMPTY_DICTIONARY)


# per snapshot: (its weak reference, the newest first-event ts, the universe
# at or after that ts, whether it holds every contact)
_universes: dict[int, tuple[weakref.ref[Snapshot], int, np.ndarray, bool]] = {}
_lock = threading.RLock()  # reentrant: a finalizer may run inside ``with _lock``
_NO_EVENT = np.iinfo(np.int64).max
_NONE = np.iinfo(np.int64).min


def universe_of(snapshot: Snapshot, now_ms: int) -> tuple[np.ndarray, bool]:
    """``snapshot.universe(now_ms)`` (read-only) and whether it is every
    contact.  From the newest first event on, the universe no longer changes
    with ``now``: that one (the usual case, ``now`` is the present) is kept
    per snapshot rather than computed over every contact at each evaluation."""
    key = id(snapshot)
    with _lock:
        hit = _universes.get(key)
    if hit is None or hit[0]() is not snapshot:
        first = snapshot.first_event_ts
        # the newest first event: the maximum, unless a contact has none (then
        # the maximum of the others, still without copying them out)
        newest = int(first.max()) if len(first) else _NONE
        if newest == _NO_EVENT:
            newest = int(np.max(first, where=first != _NO_EVENT, initial=_NONE))
        settled = snapshot.universe(newest)
        settled.flags.writeable = False
        ref = weakref.ref(snapshot)
        hit = (ref, newest, settled, bool(settled.all()))
        with _lock:
            _universes[key] = hit
        weakref.finalize(snapshot, _drop, key, ref)
    if now_ms >= hit[1]:
        return hit[2], hit[3]
    out = snapshot.universe(now_ms)
    out.flags.writeable = False
    return out, bool(out.all())


def _drop(key: int, ref: weakref.ref[Snapshot]) -> None:
    with _lock:
        hit = _universes.get(key)
        if hit is not None and hit[0] is ref:
            del _universes[key]
