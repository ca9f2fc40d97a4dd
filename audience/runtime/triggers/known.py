"""The one check of a text against a store: the language's checker
(audience.dsl.check) with the names the store has saved (segments, DND
policies, templates, deliveries, plans, journeys) as its ``Known``.

Every save (triggers, DND policies, segments; Python, CLI and HTTP) and
``audience check --store`` go through ``check_against``, so they accept and
refuse the same texts with the same messages.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from audience.dsl.ast import Program
from audience.dsl.check import Known, TemplateInfo, check
from audience.dsl.errors import DslError
from audience.dsl.parser import parse
from audience.runtime.triggers.definitions import (
    DEFINITIONS_FILE,
    SavedTemplate,
    TriggerDefinitions,
)
from audience.runtime.triggers.templates import TemplateError, template_fields

if TYPE_CHECKING:
    from audience.runtime.node import Node
    from audience.runtime.plans.definitions import PlanDefinitions


class _Templates(Mapping[str, TemplateInfo]):
    """The saved templates by name; a template is parsed only when a text
    names it (a store may hold many, a trigger names one or two)."""

    def __init__(self, saved: list[SavedTemplate]) -> None:
        self._saved = {t.name: t for t in saved}
        self._info: dict[str, TemplateInfo] = {}

    def __getitem__(self, name: str) -> TemplateInfo:
        if name not in self._info:
            t = self._saved[name]
            try:
                subject = frozenset(template_fields(t.subject, "", ""))
                body = frozenset(template_fields("", t.html, t.text))
                self._info[name] = TemplateInfo(subject | body, None, subject, body)
            except TemplateError as exc:
                self._info[name] = TemplateInfo(error=str(exc))
        return self._info[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._saved)

    def __len__(self) -> int:
        return len(self._saved)


def _read_fields(text: str) -> frozenset[str]:
    try:
        return frozenset(template_fields(text, "", ""))
    except TemplateError as exc:
        raise ValueError(str(exc)) from None


def known_names(store: Node, journeys: Collection[str] = ()) -> Known:
    """What ``store`` has saved, by kind (a broken saved segment is left out:
    it is reported where it is used).  ``journeys``: the saved journeys' names,
    which ``enter_journey("Name")`` may name (default: those saved in the
    store's journey tables)."""
    from audience.runtime.saved import saved_segments

    # a disk store's saved definitions without its trigger engine (slow to import)
    defs = (
        store.triggers.defs
        if store.path is None
        else TriggerDefinitions(store.path / DEFINITIONS_FILE)
    )
    if not journeys and store.path is not None:
        from audience.runtime.journeys.definitions import journey_names

        journeys = journey_names(store.path, store.node)
    known = Known(
        segments=saved_segments(store),
        policies=frozenset(p.name for p in defs.list_policies()),
        templates=_Templates(defs.list_templates()),
        read_fields=_read_fields,
        journeys=frozenset(journeys),
    )
    if store.path is None:  # an in-memory store's plans live in its PlanService only
        return known
    from audience.runtime.plans.definitions import PlanDefinitions

    return with_plans(known, PlanDefinitions.for_store(store.path), store.node)


def with_plans(known: Known, plans: PlanDefinitions, node: str) -> Known:
    """``known`` with the deliveries and plans saved for ``node``."""
    return replace(
        known,
        deliveries=frozenset(d.name for d in plans.list_deliveries(node)),
        plans=frozenset(p.name for p in plans.list_plans(node)),
    )


def check_against(
    store: Node, program: Program, text: str, filename: str, known: Known | None = None
) -> Program:
    """``program`` (parsed from ``text``) checked against ``store``'s schema and
    saved names (``known``, by default read from the store); raises DslError
    with every problem."""
    found = check(program, store.schema, known=known or known_names(store))
    if found:
        raise DslError(found, text, filename)
    return program


def check_text(store: Node, text: str, filename: str = "<input>") -> Program:
    """Parse ``text`` and check it against ``store`` (raises DslError)."""
    return check_against(store, parse(text, filename=filename), text, filename)
