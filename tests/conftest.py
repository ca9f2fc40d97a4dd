"""What every test module gets from pytest: the ``--update-goldens`` option.
Shared helpers are in tests/helpers/ (imported, not injected)."""

from __future__ import annotations

import os

import pytest

from tests.helpers import golden


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
