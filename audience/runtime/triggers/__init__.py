"""Triggers (SPEC 4): definitions, matching on every ingested event, actions.

store.triggers.add(text)                      # triggers (+ the DND policies beside them)
store.triggers.add_policies(text)             # DND policies
store.triggers.add_template(name, subject, html, text)
store.ingest_events(...)                      # matching runs after every ingest
store.triggers.catch_up()                     # a worker's start: ingests left unmatched
dry_run(store, since_ms, until_ms)            # what stored events would have sent
"""

from audience.runtime.triggers.definitions import (
    SavedPolicy,
    SavedTemplate,
    SavedTrigger,
    TriggerDefinitions,
)
from audience.runtime.triggers.dryrun import DryRunReport, dry_run
from audience.runtime.triggers.engine import BatchReport, TriggerEngine
from audience.runtime.triggers.templates import RenderedEmail, TemplateError

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
