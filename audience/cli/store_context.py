"""What ``audience check --store STORE`` checks against: the store's schema and saved segments."""

from __future__ import annotations

import click

from audience.dsl.ast import Segment
from audience.schema import Schema


def schema_and_segments(path: str, node: str = "main") -> tuple[Schema, dict[str, Segment]]:
    from audience.runtime.saved import saved_segments
    from audience.runtime.store import StoreError, open_store

    try:
        store = open_store(path, node)
    except StoreError as exc:
        raise click.UsageError(str(exc)) from None
    return store.schema, saved_segments(store)
