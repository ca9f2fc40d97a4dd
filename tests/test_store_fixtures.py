"""The shared store data (tests/helpers/store_data.py) is what it says."""

from __future__ import annotations

from tests.helpers.store_data import EVENTS, events_table


def test_fixture_table_matches_records() -> None:
    assert events_table().num_rows == len(EVENTS)
