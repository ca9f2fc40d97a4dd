"""The state one check run shares: the schema, what is already defined, and
the diagnostics collected so far (every problem is reported, not only the first)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from audience.dsl.ast import (
    NOSPAN,
    Definition,
    DeliveryDef,
    DndPolicy,
    Plan,
    Segment,
    Span,
    Trigger,
)
from audience.dsl.errors import Diagnostic
from audience.schema import Schema

KEYWORDS: dict[type, str] = {
    Segment: "segment",
    Trigger: "trigger",
    DndPolicy: "dnd",
    DeliveryDef: "delivery",
    Plan: "plan",
}


@dataclass
class Ctx:
    schema: Schema | None = None
    known_segments: Mapping[str, Segment] = field(default_factory=dict)
    known_policies: Collection[str] = ()
    known_deliveries: Collection[str] = ()
    known_plans: Collection[str] = ()
    known_templates: Collection[str] | None = None  # None: not known, not checked
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, help))


def known(span: Span, fallback: Span) -> Span:
    """``span`` unless the node has none (built in code rather than parsed)."""
    return span if span != NOSPAN else fallback


def head_span(definition: Definition) -> Span:
    """The span of a definition's leading keyword.

    The fallback for problems with a definition built without a name span."""
    s = definition.span
    if s == NOSPAN:
        return s
    return Span(s.line, s.column, s.line, s.column + len(KEYWORDS[type(definition)]))
