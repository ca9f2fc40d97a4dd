"""The logical plan: what each condition reads and computes, not how.

Nodes are frozen dataclasses, so two structurally equal sub-plans are equal
and hash alike: the passes dedupe and fuse by that structural key.  Windows
stay relative here (``WindowRef``: the AST window and the definition's time
zone); the engine turns them into absolute ms ranges once ``now`` is known
(``audience.engine.resolve_time``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from audience.dsl import ast

# ---------------------------------------------------------------- fields and tests

FieldKind = Literal[
    "string", "int", "float", "bool", "date", "datetime", "list<string>", "event_type"
]


@dataclass(frozen=True)
class FieldRef:
    """A property to read: an event column (``type``/``ts`` are the partition's
    own arrays), or a profile column.  ``kind`` is the schema type."""

    scope: Literal["event", "profile"]
    name: str
    kind: FieldKind

    def text(self) -> str:
        return f"profile.{self.name}" if self.scope == "profile" else self.name


@dataclass(frozen=True)
class StrTest:
    """Decided once per dictionary value into a lookup table by code.
    ``op``: a compare op, ``in``, ``not_in`` or a text op."""

    op: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class NumTest:
    """``atoms`` (op, value) combined with ``and`` / ``or``; int, float and bool."""

    atoms: tuple[tuple[str, int | float | bool], ...]
    combine: Literal["and", "or"]


@dataclass(frozen=True)
class TimeRef:
    """A time bound: an absolute instant (``abs``), ``now`` or ``now - duration``
    (``ago``, calendar months in the plan's time zone)."""

    kind: Literal["abs", "now", "ago"]
    ms: int = 0
    duration: ast.Duration | None = None

    def text(self) -> str:
        if self.kind == "abs":
            return f"@{self.ms}"
        if self.kind == "now":
            return "now"
        assert self.duration is not None
        return f"now-{self.duration.n}{self.duration.unit}"


@dataclass(frozen=True)
class TimeTest:
    """Atoms (op, bound) over a date or datetime, combined with ``and``/``or``;
    ``tz`` is the definition's zone (a date property's days start there)."""

    atoms: tuple[tuple[str, TimeRef], ...]
    tz: str
    combine: Literal["and", "or"] = "and"


@dataclass(frozen=True)
class ListTest:
    """Some element of a (non-empty) list passes ``test``; ``negated``: the
    list is set and no element passes (``tags != "vip"``, ``not in``)."""

    test: StrTest
    negated: bool = False


@dataclass(frozen=True)
class SetTest:
    negated: bool


Test: TypeAlias = StrTest | NumTest | TimeTest | ListTest | SetTest


@dataclass(frozen=True)
class PLeaf:
    field: FieldRef
    test: Test


@dataclass(frozen=True)
class PAnd:
    children: tuple[PredNode, ...]


@dataclass(frozen=True)
class POr:
    children: tuple[PredNode, ...]


@dataclass(frozen=True)
class PNot:
    child: PredNode


PredNode: TypeAlias = PLeaf | PAnd | POr | PNot


# ---------------------------------------------------------------- event reads


@dataclass(frozen=True)
class WindowRef:
    window: ast.Window
    tz: str


@dataclass(frozen=True)
class RowFilter:
    """The events a condition reads: types (None: any), predicate, window
    (None: all time up to now)."""

    types: tuple[str, ...] | None
    pred: PredNode | None
    window: WindowRef | None


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class CountCond:
    filter: RowFilter
    op: ast.CountOp
    n: int
    high: int | None


@dataclass(frozen=True)
class AggCond:
    filter: RowFilter
    func: ast.AggFunc
    field: FieldRef
    op: ast.CompareOp
    value: int | float


@dataclass(frozen=True)
class RecencyCond:
    filter: RowFilter
    which: Literal["last", "first"]
    recency: ast.Recency
    tz: str


@dataclass(frozen=True)
class SeqCond:
    first: RowFilter
    second: RowFilter
    then_not: bool
    within: ast.Duration
    tz: str


@dataclass(frozen=True)
class ProfileTest:
    pred: PredNode


@dataclass(frozen=True)
class AndNode:
    children: tuple[CondNode, ...]


@dataclass(frozen=True)
class OrNode:
    children: tuple[CondNode, ...]


@dataclass(frozen=True)
class NotNode:
    child: CondNode


@dataclass(frozen=True)
class RuleNode:
    label: str
    child: CondNode


@dataclass(frozen=True)
class SegmentNode:
    """``in segment "name"``: the saved segment's plan, inlined."""

    name: str
    child: CondNode


CondNode: TypeAlias = (
    CountCond
    | AggCond
    | RecencyCond
    | SeqCond
    | ProfileTest
    | AndNode
    | OrNode
    | NotNode
    | RuleNode
    | SegmentNode
)
LEAVES = (CountCond, AggCond, RecencyCond, SeqCond, ProfileTest)
