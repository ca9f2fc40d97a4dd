"""Logical plan -> physical program: a flat list of steps in execution order.

Lowering emits one naive step per node (every leaf gets its own scan); the
passes in ``passes`` then share equal steps (dedupe) and merge scans of the
same rows (fuse).  Each step names its inputs by index, always earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from audience.compiler import plan as p
from audience.compiler.render import cond_lines, cond_text, filter_text, leaf_text, pred_text

# what a scan computes per contact:
# ("count",) | ("agg", func, FieldRef) | ("ts", "last" | "first")
Reduction: TypeAlias = tuple[Any, ...]


@dataclass(frozen=True)
class ScanStep:
    """Read the rows of ``filter`` once; compute every reduction listed."""

    filter: p.RowFilter
    reductions: tuple[Reduction, ...]


@dataclass(frozen=True)
class TestStep:
    """A count / aggregate / recency test over the output of scan ``scan``."""

    cond: p.CountCond | p.AggCond | p.RecencyCond
    scan: int


@dataclass(frozen=True)
class SeqStep:
    cond: p.SeqCond


@dataclass(frozen=True)
class ProfileStep:
    pred: p.PredNode


@dataclass(frozen=True)
class BoolStep:
    op: Literal["and", "or", "not"]
    inputs: tuple[int, ...]


Step: TypeAlias = ScanStep | TestStep | SeqStep | ProfileStep | BoolStep


@dataclass(frozen=True)
class Program:
    steps: tuple[Step, ...]
    root: int
    rules: tuple[tuple[str, int], ...] = ()  # (label, step) in text order
    operands: tuple[tuple[str, int], ...] = ()  # top-level operands
    logical: p.CondNode | None = field(default=None, compare=False)


def inputs_of(step: Step) -> tuple[int, ...]:
    if isinstance(step, TestStep):
        return (step.scan,)
    if isinstance(step, BoolStep):
        return step.inputs
    return ()


def remap(step: Step, m: dict[int, int]) -> Step:
    if isinstance(step, TestStep):
        return replace(step, scan=m[step.scan])
    if isinstance(step, BoolStep):
        return replace(step, inputs=tuple(m[i] for i in step.inputs))
    return step


def reduction_of(cond: p.CountCond | p.AggCond | p.RecencyCond) -> Reduction:
    if isinstance(cond, p.CountCond):
        return ("count",)
    if isinstance(cond, p.AggCond):
        if cond.field.scope == "profile":
            return ("count",)  # each event carries its contact's one value: derived from counts
        return ("agg", cond.func, cond.field)
    return ("ts", cond.which)


class _Emitter:
    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.rules: list[tuple[str, int]] = []
        self.in_segment = 0  # rules of an inlined saved segment are not this text's rules

    def add(self, step: Step) -> int:
        self.steps.append(step)
        return len(self.steps) - 1

    def emit(self, node: p.CondNode) -> int:
        if isinstance(node, p.CountCond | p.AggCond | p.RecencyCond):
            scan = self.add(ScanStep(node.filter, (reduction_of(node),)))
            return self.add(TestStep(node, scan))
        if isinstance(node, p.SeqCond):
            return self.add(SeqStep(node))
        if isinstance(node, p.ProfileTest):
            return self.add(ProfileStep(node.pred))
        if isinstance(node, p.AndNode | p.OrNode):
            ins = tuple(self.emit(c) for c in node.children)
            return self.add(BoolStep("and" if isinstance(node, p.AndNode) else "or", ins))
        if isinstance(node, p.NotNode):
            return self.add(BoolStep("not", (self.emit(node.child),)))
        if isinstance(node, p.RuleNode):
            if self.in_segment:
                return self.emit(node.child)
            slot = len(self.rules)
            self.rules.append((node.label, -1))
            sid = self.emit(node.child)
            self.rules[slot] = (node.label, sid)  # text order: outer rules before inner
            return sid
        if isinstance(node, p.SegmentNode):
            self.in_segment += 1
            try:
                return self.emit(node.child)
            finally:
                self.in_segment -= 1
        raise ValueError(f"no rule for plan node {type(node).__name__}")


def emit(logical: p.CondNode) -> Program:
    """The naive program: one step per node, no sharing."""
    e = _Emitter()
    if isinstance(logical, p.AndNode | p.OrNode):
        ins = [e.emit(c) for c in logical.children]
        ops = tuple((cond_text(c), i) for c, i in zip(logical.children, ins, strict=True))
        root = e.add(BoolStep("and" if isinstance(logical, p.AndNode) else "or", tuple(ins)))
    else:
        root = e.emit(logical)
        ops = ((cond_text(logical), root),)
    return Program(tuple(e.steps), root, tuple(e.rules), ops, logical)


def step_text(step: Step) -> str:
    if isinstance(step, ScanStep):
        outs = ", ".join(_reduction_text(r) for r in step.reductions)
        return f"scan [{filter_text(step.filter)}] -> {outs}"
    if isinstance(step, TestStep):
        return f"test {leaf_text(step.cond).split(' of [')[0]} <- #{step.scan}"
    if isinstance(step, SeqStep):
        return f"sequence {leaf_text(step.cond)}"
    if isinstance(step, ProfileStep):
        return f"profile {pred_text(step.pred)}"
    return f"{step.op} " + " ".join(f"#{i}" for i in step.inputs)


def _reduction_text(r: Reduction) -> str:
    if r[0] == "agg":
        return f"{r[1]}({r[2].text()})"
    if r[0] == "ts":
        return f"{r[1]} ts"
    return "count"


def program_text(prog: Program) -> str:
    lines = ["logical:"]
    if prog.logical is not None:
        lines += ["  " + ln for ln in cond_lines(prog.logical)]
    lines.append("physical:")
    lines += [f"  #{i} {step_text(s)}" for i, s in enumerate(prog.steps)]
    lines.append(f"  result #{prog.root}")
    return "\n".join(lines)
