"""The one check of a text against a store: the language's checker
(audience.dsl.check) with the names the store has saved (segments, DND
policies, templates) as its ``Known``.

Every save (triggers, DND policies, segments; Python, CLI and HTTP) and
``audience check --store`` go through ``check_against``, so they accept and
refuse the same texts with the same messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audience.dsl.ast import Program
from audience.dsl.check import Known, TemplateInfo, check
from audience.dsl.errors import DslError
from audience.dsl.parser import parse
from audience.runtime.triggers.definitions import DEFINITIONS_FILE, TriggerDefinitions
from audience.runtime.triggers.templates import TemplateError, template_fields

if TYPE_CHECKING:
    from audience.runtime.store import Store


def known_names(store: Store) -> Known:
    """What ``store`` has saved, by kind (a broken saved segment is left out:
    it is reported where it is used)."""
    from audience.runtime.saved import saved_segments

    # a disk store's saved definitions without its trigger engine (slow to import)
    defs = (
        store.triggers.defs
        if store.path is None
        else TriggerDefinitions(store.path / DEFINITIONS_FILE)
    )
    templates: dict[str, TemplateInfo] = {}
    for t in defs.list_templates():
        try:
            templates[t.name] = TemplateInfo(frozenset(template_fields(t.subject, t.html, t.text)))
        except TemplateError as exc:
            templates[t.name] = TemplateInfo(error=str(exc))
    return Known(
        segments=saved_segments(store),
        policies=frozenset(p.name for p in defs.list_policies()),
        templates=templates,
    )


def check_against(store: Store, program: Program, text: str, filename: str) -> Program:
    """``program`` (parsed from ``text``) checked against ``store``'s schema and
    saved names; raises DslError with every problem."""
    found = check(program, store.schema, known=known_names(store))
    if found:
        raise DslError(found, text, filename)
    return program


def check_text(store: Store, text: str, filename: str = "<input>") -> Program:
    """Parse ``text`` and check it against ``store`` (raises DslError)."""
    return check_against(store, parse(text, filename=filename), text, filename)
