"""Triggers (docs/language/triggers.md): definitions, matching on every ingested event, actions.

node.triggers.add(text)                       # triggers (+ the DND policies beside them)
node.triggers.add_policies(text)              # DND policies
node.triggers.add_template(name, subject, html, text)
node.ingest_events(...)                       # matching runs after every ingest
node.triggers.catch_up()                      # a worker's start: ingests left unmatched
dry_run(node, since_ms, until_ms)             # what stored events would have sent

``node``: an audience.runtime.node.Node (what ``audience.open`` returns).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audience.runtime.triggers.definitions import (
        SavedPolicy,
        SavedTemplate,
        SavedTrigger,
        TriggerDefinitions,
    )
    from audience.runtime.triggers.dryrun import DryRunReport, dry_run
    from audience.runtime.triggers.engine import BatchReport, TriggerEngine
    from audience.runtime.triggers.templates import RenderedEmail, TemplateError

# Loaded on first use: the store imports ``triggers.definitions`` to learn
# whether a node has triggers at all, and the engine's imports (the compiler's
# trigger path) cost half a second that a store without triggers never pays.
_WHERE = {
    "SavedPolicy": "definitions",
    "SavedTemplate": "definitions",
    "SavedTrigger": "definitions",
    "TriggerDefinitions": "definitions",
    "DryRunReport": "dryrun",
    "dry_run": "dryrun",
    "BatchReport": "engine",
    "TriggerEngine": "engine",
    "RenderedEmail": "templates",
    "TemplateError": "templates",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


__all__ = [
    "BatchReport",
    "DryRunReport",
    "RenderedEmail",
    "SavedPolicy",
    "SavedTemplate",
    "SavedTrigger",
    "TemplateError",
    "TriggerDefinitions",
    "TriggerEngine",
    "dry_run",
]
