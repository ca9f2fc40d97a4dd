"""Names that refer to other definitions: duplicate definitions, ``in segment``
references (unknown names, cycles) and the DND policies triggers name."""

from __future__ import annotations

from collections.abc import Iterator

from audience.dsl.ast import (
    And,
    Cond,
    Definition,
    DndPolicy,
    InSegment,
    Not,
    Or,
    Rule,
    Segment,
    Trigger,
    UseDnd,
)
from audience.dsl.check.context import Ctx, head_span, known
from audience.dsl.check.names import suggest

# by class name: the classes of deliveries, plans and journeys are imported
# only when a program has one (audience.dsl.ast)
KIND_WORDS: dict[str, str] = {
    "Segment": "segment",
    "Trigger": "trigger",
    "DndPolicy": "DND policy",
    "DeliveryDef": "delivery",
    "Plan": "plan",
    "Journey": "journey",
}


def segment_refs(cond: Cond | None) -> Iterator[InSegment]:
    """Every ``in segment`` of a condition, in text order."""
    stack: list[Cond] = [] if cond is None else [cond]
    while stack:
        c = stack.pop()
        match c:
            case InSegment():
                yield c
            case And(operands) | Or(operands):
                stack.extend(reversed(operands))
            case Not(inner) | Rule(_, inner):
                stack.append(inner)


def check_duplicates(ctx: Ctx, definitions: tuple[Definition, ...]) -> None:
    seen: dict[tuple[type, str], Definition] = {}
    for d in definitions:
        key = (type(d), d.name)
        first = seen.setdefault(key, d)
        if first is not d:
            ctx.error(
                "duplicate_definition",
                f"{KIND_WORDS[type(d).__name__]} '{d.name}' is defined twice",
                known(d.name_span, head_span(d)),
                f"the first definition is at line {first.span.line}; rename one of them",
            )


def check_segment_refs(ctx: Ctx, definitions: tuple[Definition, ...], bare: Cond | None) -> None:
    """Unknown ``in segment`` names, then reference cycles among segments."""
    own: dict[str, Segment] = {}
    for d in definitions:
        if isinstance(d, Segment):
            own.setdefault(d.name, d)
    names = set(own) | set(ctx.known_segments)
    conds = [d.cond for d in definitions if isinstance(d, Segment)]
    conds += [d.condition for d in definitions if isinstance(d, Trigger) and d.condition]
    conds += [bare] if bare is not None else []
    for cond in conds:
        for ref in segment_refs(cond):
            if ref.name not in names:
                ctx.error(
                    "unknown_segment",
                    f"unknown segment '{ref.name}'",
                    ref.span,
                    suggest(ref.name, names, "segments"),
                )
    _check_cycles(ctx, own)


def _check_cycles(ctx: Ctx, own: dict[str, Segment]) -> None:
    """Depth-first from each of the program's segments; each back edge closes a cycle.

    Iterative, so a long chain of references cannot exhaust the Python stack."""
    graph: dict[str, list[InSegment]] = {
        name: list(segment_refs(seg.cond)) for name, seg in ctx.known_segments.items()
    }
    graph.update({name: list(segment_refs(seg.cond)) for name, seg in own.items()})
    done: set[str] = set()
    reported: set[frozenset[str]] = set()
    for root in own:
        if root in done:
            continue
        path: list[str] = [root]
        entered: list[InSegment | None] = [None]  # the reference that led to path[i]
        todo: list[Iterator[InSegment]] = [iter(graph[root])]
        while todo:
            ref = next(todo[-1], None)
            if ref is None:
                done.add(path.pop())
                entered.pop()
                todo.pop()
                continue
            target = ref.name
            if target not in graph or target in done:
                continue
            if target in path:
                cycle = [*path[path.index(target) :], target]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    _report_cycle(ctx, cycle, path, entered, ref, own)
                continue
            path.append(target)
            entered.append(ref)
            todo.append(iter(graph[target]))


def _report_cycle(
    ctx: Ctx,
    cycle: list[str],
    path: list[str],
    entered: list[InSegment | None],
    back: InSegment,
    own: dict[str, Segment],
) -> None:
    # Point at a reference written in this program: the closing one when it is,
    # else the latest one on the way (stored segments' spans are of other texts).
    edges = [(path[k - 1], entered[k]) for k in range(1, len(path))] + [(path[-1], back)]
    anchor = next(ref for src, ref in reversed(edges) if src in own and ref is not None)
    shown = " -> ".join(f"'{n}'" for n in cycle)
    ctx.error(
        "segment_cycle",
        f"segments refer to each other in a cycle: {shown}",
        anchor.span,
        "a segment cannot include itself, directly or through other segments",
    )


def check_policy_refs(ctx: Ctx, definitions: tuple[Definition, ...]) -> None:
    policies = {d.name for d in definitions if isinstance(d, DndPolicy)}
    names = policies | set(ctx.known_policies)
    for d in definitions:
        if not isinstance(d, Trigger):
            continue
        for opt in d.options:
            if isinstance(opt, UseDnd) and opt.policy not in names:
                ctx.error(
                    "unknown_policy",
                    f"unknown DND policy '{opt.policy}'",
                    opt.span,
                    suggest(opt.policy, names, "DND policies"),
                )
