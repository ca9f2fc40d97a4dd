"""The time plans read: a function returning epoch ms, injected everywhere
(``--at T`` and the tests fix it; the scheduler reads it at every step)."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def wall_clock() -> int:
    return time.time_ns() // 1_000_000


def fixed_clock(ms: int) -> Clock:
    return lambda: ms


class ManualClock:
    """A clock that moves only when told (tests, demos)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, ms: int) -> None:
        self.ms += ms
