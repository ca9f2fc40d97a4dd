"""The trigger engine's clock: the moment a trigger is saved (its default
valid-from) and the moment it fires.  The wall clock (``wall_ms``), unless a
caller fixes it: tests do, so that events dated in the past are newer than
the triggers they save."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from audience.runtime.delivery.model import wall_ms

_clock: Callable[[], int] = wall_ms


def now_ms() -> int:
    return _clock()


def set_clock(clock: Callable[[], int] | None) -> None:
    """Use ``clock`` (epoch ms) from now on; None: the wall clock again."""
    global _clock
    _clock = wall_ms if clock is None else clock


@contextmanager
def fixed_clock(ms: int) -> Iterator[None]:
    """The clock stands at ``ms`` inside the block."""
    before = _clock
    set_clock(lambda: ms)
    try:
        yield
    finally:
        set_clock(before)
