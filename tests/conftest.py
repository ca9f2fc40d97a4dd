"""What every test module gets from pytest: the ``--update-goldens`` option and
the trigger clock.  Shared helpers are in tests/helpers/ (imported, not injected)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest

from audience.runtime.triggers.clock import fixed_clock
from tests.helpers import golden

# The moment the tests' triggers are saved, unless a test fixes another: before
# every event the tests ingest, so those events are newer than the triggers
# (a trigger reacts only to events at or after the moment it is saved).
TRIGGERS_SAVED_AT = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite the golden files (tests/corpus/**/*.ast, *.err) from the current output",
    )


def pytest_configure(config: pytest.Config) -> None:
    # one switch for every golden test, in this process and the ones it starts
    if config.getoption("--update-goldens"):
        os.environ[golden.ENV] = "1"


@pytest.fixture(autouse=True)
def trigger_clock() -> Iterator[int]:
    with fixed_clock(TRIGGERS_SAVED_AT):
        yield TRIGGERS_SAVED_AT
