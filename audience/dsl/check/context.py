"""The state one check run shares: the schema, what is already defined, and
the diagnostics collected so far (every problem is reported, not only the first)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace

from audience.dsl.ast import (
    NOSPAN,
    Definition,
    Segment,
    Span,
)
from audience.dsl.errors import Diagnostic
from audience.schema import Schema

# by class name: the classes of deliveries, plans and journeys are imported
# only when a program has one (audience.dsl.ast)
KEYWORDS: dict[str, str] = {
    "Segment": "segment",
    "Trigger": "trigger",
    "DndPolicy": "dnd",
    "DeliveryDef": "delivery",
    "Plan": "plan",
    "Journey": "journey",
}


@dataclass(frozen=True)
class TemplateInfo:
    """What the checker needs of a saved email template: the fields it uses, or
    why it cannot be used (it does not parse)."""

    fields: frozenset[str] = frozenset()
    error: str | None = None
    # the same fields by part, when known: a delivery's own subject replaces the template's
    subject_fields: frozenset[str] | None = None
    body_fields: frozenset[str] | None = None


@dataclass(frozen=True)
class Known:
    """The names saved outside the checked text (in a store), one field per kind.

    A kind that is None is not checked at all: its names cannot be known (with
    no store, templates are not resolved).  A later kind of saved name is one
    more field here and one more check where it is named."""

    segments: Mapping[str, Segment] = field(default_factory=dict)
    policies: Collection[str] = ()
    templates: Mapping[str, TemplateInfo] | None = None  # name -> what it uses
    deliveries: Collection[str] = ()
    plans: Collection[str] = ()
    journeys: Collection[str] = ()  # what enter_journey("Name") may name
    # the fields a text with {{ fields }} uses (raises ValueError when it does not
    # parse): how the store reads templates, for a delivery's own subject line
    read_fields: Callable[[str], frozenset[str]] | None = None

    def with_legacy(
        self, segments: Mapping[str, Segment] | None, policies: Collection[str]
    ) -> Known:
        """Add what the older keyword arguments of ``check`` give."""
        if not segments and not policies:
            return self
        return replace(
            self,
            segments={**self.segments, **(segments or {})},
            policies={*self.policies, *policies},
        )


@dataclass
class Ctx:
    schema: Schema | None = None
    known: Known = field(default_factory=Known)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def known_segments(self) -> Mapping[str, Segment]:
        return self.known.segments

    @property
    def known_policies(self) -> Collection[str]:
        return self.known.policies

    @property
    def known_deliveries(self) -> Collection[str]:
        return self.known.deliveries

    @property
    def known_plans(self) -> Collection[str]:
        return self.known.plans

    @property
    def known_templates(self) -> Collection[str] | None:
        """The saved templates' names; None when they are not known (no store)."""
        t = self.known.templates
        return None if t is None else t.keys()

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
    return Span(s.line, s.column, s.line, s.column + len(KEYWORDS[type(definition).__name__]))
