"""Shared test set-up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from audience.runtime.triggers.clock import fixed_clock

# The moment the tests' triggers are saved, unless a test fixes another: before
# every event the tests ingest, so those events are newer than the triggers
# (a trigger reacts only to events at or after the moment it is saved).
TRIGGERS_SAVED_AT = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)


@pytest.fixture(autouse=True)
def trigger_clock() -> Iterator[int]:
    with fixed_clock(TRIGGERS_SAVED_AT):
        yield TRIGGERS_SAVED_AT
