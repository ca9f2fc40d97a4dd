"""What ``audience check --store STORE`` checks against: the store's schema and
every name it has saved (segments, DND policies, templates), as every save does."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from audience.dsl.check import Known
    from audience.schema import Schema


def schema_and_known(path: str, node: str = "main") -> tuple[Schema, Known]:
    from audience.runtime.node import open_node
    from audience.runtime.store import StoreError
    from audience.runtime.triggers.known import known_names

    try:
        store = open_node(path, node)
    except StoreError as exc:
        raise click.UsageError(str(exc)) from None
    return store.schema, known_names(store)
