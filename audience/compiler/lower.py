"""AST -> logical plan.  One function per AST node type, found through a
dispatch table; a node type without a rule is an explicit error, never a
silent skip."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audience.compiler import plan as p
from audience.dsl import ast
from audience.dsl.errors import Diagnostic, DslError
from audience.schema import Schema
from audience.timecalc import to_ms

EVENT_BUILTIN_KINDS: dict[str, p.FieldKind] = {
    "type": "event_type",
    "ts": "datetime",
    "context": "string",
    "id": "string",
    "contact_id": "string",
}
SegmentResolver = Callable[[str], ast.Segment | None]


def compile_error(
    message: str, span: ast.Span = ast.NOSPAN, code: str = "compile_error"
) -> DslError:
    return DslError([Diagnostic(code, message, span)])


@dataclass
class Lowering:
    schema: Schema
    tz: str
    resolver: SegmentResolver | None
    stack: tuple[str, ...] = ()  # saved segments being inlined (cycle detection)
    cache: dict[str, p.CondNode] = field(default_factory=dict)

    # ------------------------------------------------------------ conditions
    def cond(self, node: ast.Cond) -> p.CondNode:
        rule = _COND_RULES.get(type(node))
        if rule is None:
            raise compile_error(f"no rule for condition {type(node).__name__}", _span(node))
        return rule(self, node)

    def did(self, node: ast.Did) -> p.CondNode:
        flt = self.row_filter(node.events, node.where, node.window)
        c = node.count
        if c is None:
            return p.CountCond(flt, "at_least", 1, None)
        return p.CountCond(flt, c.op, c.n, c.high)

    def aggregate(self, node: ast.Aggregate) -> p.CondNode:
        flt = self.row_filter(node.events, node.where, node.window)
        fref = self.event_field(node.field, node.events)
        if node.func != "count_distinct" and fref.kind not in ("int", "float", "bool"):
            raise compile_error(
                f"{node.func}() needs a numeric property; {fref.name} is {fref.kind}",
                node.field.span,
            )
        # an int literal stays int: int min/max compare with it exactly
        return p.AggCond(flt, node.func, fref, node.op, node.value.value)

    def last_first(self, node: ast.LastFirst) -> p.CondNode:
        flt = self.row_filter(node.events, node.where, None)
        return p.RecencyCond(flt, node.which, node.recency, self.tz)

    def sequence(self, node: ast.Sequence) -> p.CondNode:
        first = self.row_filter(node.first, node.first_where, node.window)
        second = self.row_filter(node.second, node.second_where, None)
        return p.SeqCond(first, second, node.then_not, node.within, self.tz)

    def profile(self, node: ast.ProfileCond) -> p.CondNode:
        return p.ProfileTest(self.pred(node.pred, None))

    def in_segment(self, node: ast.InSegment) -> p.CondNode:
        if node.name in self.stack:
            cycle = " -> ".join((*self.stack, node.name))
            raise compile_error(f"segment cycle: {cycle}", node.span, "segment_cycle")
        if node.name in self.cache:
            return self.cache[node.name]
        seg = self.resolver(node.name) if self.resolver is not None else None
        if seg is None:
            raise compile_error(f"unknown segment {node.name!r}", node.span, "unknown_segment")
        inner = Lowering(self.schema, seg.tz_name, self.resolver, (*self.stack, node.name))
        inner.cache = self.cache
        out = p.SegmentNode(node.name, inner.cond(seg.cond))
        self.cache[node.name] = out
        return out

    def and_(self, node: ast.And) -> p.CondNode:
        return p.AndNode(tuple(self.cond(c) for c in node.operands))

    def or_(self, node: ast.Or) -> p.CondNode:
        return p.OrNode(tuple(self.cond(c) for c in node.operands))

    def not_(self, node: ast.Not) -> p.CondNode:
        return p.NotNode(self.cond(node.operand))

    def rule(self, node: ast.Rule) -> p.CondNode:
        return p.RuleNode(node.label, self.cond(node.cond))

    # ------------------------------------------------------------ event reads
    def row_filter(
        self, sel: ast.EventSel, where: ast.Pred | None, window: ast.Window | None
    ) -> p.RowFilter:
        if sel.types is not None:
            for t in sel.types:
                if t not in self.schema.events:
                    raise compile_error(f"unknown event type {t!r}", sel.span)
        types = None if sel.types is None else tuple(sorted(set(sel.types)))
        pred = None if where is None else self.pred(where, sel)
        win = None if window is None else p.WindowRef(window, self.tz)
        return p.RowFilter(types, pred, win)

    def event_field(self, f: ast.Field, sel: ast.EventSel) -> p.FieldRef:
        if f.scope == "profile":
            return self.profile_field(f)
        name = f.name
        if name in EVENT_BUILTIN_KINDS:
            return p.FieldRef("event", name, EVENT_BUILTIN_KINDS[name])
        types = sel.types if sel.types is not None else tuple(self.schema.events)
        for t in types:
            kind = self.schema.events.get(t, {}).get(name)
            if kind is not None:
                return p.FieldRef("event", name, kind)  # type: ignore[arg-type]
        raise compile_error(f"unknown event property {name!r}", f.span)

    def profile_field(self, f: ast.Field) -> p.FieldRef:
        kind = self.schema.profile.get(f.name)
        if kind is None:
            raise compile_error(f"unknown profile property {f.name!r}", f.span)
        return p.FieldRef("profile", f.name, kind)  # type: ignore[arg-type]

    # ------------------------------------------------------------ predicates
    def pred(self, node: ast.Pred, sel: ast.EventSel | None) -> p.PredNode:
        if isinstance(node, ast.PredAnd):
            return p.PAnd(tuple(self.pred(c, sel) for c in node.operands))
        if isinstance(node, ast.PredOr):
            return p.POr(tuple(self.pred(c, sel) for c in node.operands))
        if isinstance(node, ast.PredNot):
            return p.PNot(self.pred(node.operand, sel))
        fref = (
            self.event_field(node.field, sel) if sel is not None else self.profile_field(node.field)
        )
        return p.PLeaf(fref, self.test(node, fref))

    def test(self, node: ast.Comparison, f: p.FieldRef) -> p.Test:
        if isinstance(node, ast.IsSet):
            return p.SetTest(node.negated)
        if f.kind == "list<string>":
            return self.list_test(node, f)
        if f.kind in ("string", "event_type"):
            return self.string_test(node, f)
        if f.kind in ("int", "float", "bool"):
            return self.number_test(node, f)
        if f.kind in ("date", "datetime"):
            return self.time_test(node, f)
        raise _no_rule(node, f)

    def string_test(self, node: ast.Comparison, f: p.FieldRef) -> p.Test:
        if isinstance(node, ast.Compare):
            return p.StrTest(node.op, (self.string(node.value, node.span),))
        if isinstance(node, ast.InList):
            vals = tuple(self.string(v, node.span) for v in node.values)
            return p.StrTest("not_in" if node.negated else "in", vals)
        if isinstance(node, ast.Between):
            lo, hi = self.string(node.low, node.span), self.string(node.high, node.span)
            return p.StrTest("between", (lo, hi))
        if isinstance(node, ast.TextMatch):
            return p.StrTest(node.op, (node.value.value,))
        raise _no_rule(node, f)

    def list_test(self, node: ast.Comparison, f: p.FieldRef) -> p.Test:
        """On a list every operator asks whether SOME element passes (``contains``
        is element membership); ``!=`` and ``not in`` negate that over set lists."""
        test = self.string_test(node, f)
        assert isinstance(test, p.StrTest)
        if test.op == "contains":
            return p.ListTest(p.StrTest("in", test.values))
        if test.op in ("!=", "not_in"):
            return p.ListTest(p.StrTest("in", test.values), negated=True)
        return p.ListTest(test)

    def string(self, v: ast.Literal_, span: ast.Span) -> str:
        if not isinstance(v, ast.StringLit):
            raise compile_error("a string property compares with a string", span)
        return v.value

    def number(self, v: ast.Literal_, f: p.FieldRef, span: ast.Span) -> int | float | bool:
        if f.kind == "bool":
            if not isinstance(v, ast.BoolLit):
                raise compile_error(f"{f.text()} is a bool; compare it with true or false", span)
            return v.value
        if not isinstance(v, ast.NumberLit):
            raise compile_error(f"{f.text()} is a number; compare it with a number", span)
        return v.value

    def number_test(self, node: ast.Comparison, f: p.FieldRef) -> p.Test:
        if isinstance(node, ast.Compare):
            if f.kind == "bool" and node.op not in ("=", "!="):
                raise compile_error("a bool compares only with = and !=", node.span)
            return p.NumTest(((node.op, self.number(node.value, f, node.span)),), "and")
        if isinstance(node, ast.InList):
            vals = [self.number(v, f, node.span) for v in node.values]
            if node.negated:
                return p.NumTest(tuple(("!=", v) for v in vals), "and")
            return p.NumTest(tuple(("=", v) for v in vals), "or")
        if isinstance(node, ast.Between):
            lo = self.number(node.low, f, node.span)
            hi = self.number(node.high, f, node.span)
            return p.NumTest(((">=", lo), ("<=", hi)), "and")
        raise _no_rule(node, f)

    def time_test(self, node: ast.Comparison, f: p.FieldRef) -> p.Test:
        now = p.TimeRef("now")
        atoms: tuple[tuple[str, p.TimeRef], ...]
        if isinstance(node, ast.Compare):
            atoms = ((node.op, self.instant(node.value, node.span)),)
        elif isinstance(node, ast.Between):
            atoms = ((">=", self.instant(node.low, node.span)), self.upper(node.high, node.span))
        elif isinstance(node, ast.TimeCompare):
            ref = self.instant(node.value, node.span)
            atoms = (("<", ref),) if node.op == "before" else ((">=", ref),)
        elif isinstance(node, ast.AgoCompare):
            ago = p.TimeRef("ago", duration=node.duration)
            if node.op == "more_than_ago":
                atoms = (("<", ago),)
            elif node.op == "less_than_ago":
                atoms = ((">", ago),)
            else:
                atoms = ((">", ago), ("<=", now))
        elif isinstance(node, ast.InList):
            refs = tuple(self.instant(v, node.span) for v in node.values)
            if not node.negated:
                return p.TimeTest(tuple(("=", r) for r in refs), self.tz, "or")
            atoms = tuple(("!=", r) for r in refs)
        else:
            raise _no_rule(node, f)
        return p.TimeTest(atoms, self.tz)

    def instant(self, v: ast.Literal_, span: ast.Span) -> p.TimeRef:
        if isinstance(v, ast.DateLit):
            return p.TimeRef("abs", to_ms(v.start()))
        if isinstance(v, ast.DateTimeLit):
            return p.TimeRef("abs", to_ms(v.value))
        raise compile_error("a date or time property compares with a date or time", span)

    def upper(self, v: ast.Literal_, span: ast.Span) -> tuple[str, p.TimeRef]:
        """The high end of a ``between``: a date covers its whole day."""
        if isinstance(v, ast.DateLit):
            return ("<", p.TimeRef("abs", to_ms(v.end())))
        return ("<=", self.instant(v, span))


def _span(node: Any) -> ast.Span:
    span = getattr(node, "span", ast.NOSPAN)
    return span if isinstance(span, ast.Span) else ast.NOSPAN


def _no_rule(node: ast.Comparison, f: p.FieldRef) -> DslError:
    return compile_error(
        f"no rule for {type(node).__name__} on {f.text()} (a {f.kind} property)", node.span
    )


_COND_RULES: dict[type, Callable[[Lowering, Any], p.CondNode]] = {
    ast.Did: Lowering.did,
    ast.Aggregate: Lowering.aggregate,
    ast.LastFirst: Lowering.last_first,
    ast.Sequence: Lowering.sequence,
    ast.ProfileCond: Lowering.profile,
    ast.InSegment: Lowering.in_segment,
    ast.And: Lowering.and_,
    ast.Or: Lowering.or_,
    ast.Not: Lowering.not_,
    ast.Rule: Lowering.rule,
}


def lower(
    cond: ast.Cond,
    schema: Schema,
    *,
    timezone: str = "UTC",
    resolver: SegmentResolver | None = None,
) -> p.CondNode:
    """The logical plan of ``cond`` (``in segment`` references inlined)."""
    return Lowering(schema, timezone, resolver).cond(cond)
