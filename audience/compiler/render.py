"""Readable text of plans and steps (``plan_text``, explain labels)."""

from __future__ import annotations

import json
from typing import Any

from audience.compiler import plan as p
from audience.dsl import ast


def _lit(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def duration_text(d: ast.Duration) -> str:
    return f"{d.n} {d.unit}{'' if d.n == 1 else 's'}"


def time_lit_text(t: ast.TimeLit | None) -> str:
    if isinstance(t, ast.DateLit):
        return t.value.isoformat()
    if isinstance(t, ast.DateTimeLit):
        return t.value.isoformat()
    return "?"


def window_text(w: p.WindowRef | None) -> str:
    if w is None:
        return "all time"
    win = w.window
    tz = "" if w.tz == "UTC" else f" [{w.tz}]"
    if win.kind == "last":
        assert win.duration is not None
        return f"in last {duration_text(win.duration)}{tz}"
    if win.kind in ("since", "on"):
        return f"{win.kind} {time_lit_text(win.start)}{tz}"
    if win.kind == "before":
        return f"before {time_lit_text(win.end)}{tz}"
    if win.kind == "between":
        return f"between {time_lit_text(win.start)} and {time_lit_text(win.end)}{tz}"
    return win.kind.replace("_", " ") + tz


def recency_text(r: ast.Recency) -> str:
    if r.duration is not None:
        d = duration_text(r.duration)
        return {"more_than_ago": f"more than {d} ago", "less_than_ago": f"less than {d} ago"}.get(
            r.kind, f"in last {d}"
        )
    if r.kind == "between":
        return f"between {time_lit_text(r.start)} and {time_lit_text(r.end)}"
    return f"{r.kind} {time_lit_text(r.start if r.kind == 'since' else r.end)}"


def test_text(t: p.Test) -> str:
    if isinstance(t, p.StrTest):
        if t.op in ("in", "not_in"):
            return f"{t.op.replace('_', ' ')} ({', '.join(_lit(v) for v in t.values)})"
        if t.op == "between":
            return f"between {_lit(t.values[0])} and {_lit(t.values[1])}"
        return f"{t.op.replace('_', ' ')} {_lit(t.values[0])}"
    if isinstance(t, p.NumTest | p.TimeTest):
        atoms = [f"{op} {v.text() if isinstance(v, p.TimeRef) else _lit(v)}" for op, v in t.atoms]
        return f" {t.combine} ".join(atoms) if len(atoms) > 1 else atoms[0]
    if isinstance(t, p.ListTest):
        return f"{'no' if t.negated else 'some'} element {test_text(t.test)}"
    return "is not set" if t.negated else "is set"


def pred_text(pred: p.PredNode) -> str:
    if isinstance(pred, p.PLeaf):
        return f"{pred.field.text()} {test_text(pred.test)}"
    if isinstance(pred, p.PNot):
        return f"not ({pred_text(pred.child)})"
    sep = " and " if isinstance(pred, p.PAnd) else " or "
    return "(" + sep.join(pred_text(c) for c in pred.children) + ")"


def filter_text(f: p.RowFilter) -> str:
    types = "anything" if f.types is None else ",".join(f.types)
    where = "" if f.pred is None else f" where {pred_text(f.pred)}"
    return f"{types}{where} {window_text(f.window)}"


_COUNT = {"at_least": ">=", "at_most": "<=", "exactly": "="}


def leaf_text(node: p.CondNode) -> str:
    if isinstance(node, p.CountCond):
        if node.op == "between":
            test = f"count between {node.n} and {node.high}"
        else:
            test = f"count {_COUNT[node.op]} {node.n}"
        return f"{test} of [{filter_text(node.filter)}]"
    if isinstance(node, p.AggCond):
        value = node.value if isinstance(node.value, int) else format(node.value, "g")
        agg = f"{node.func}({node.field.text()}) {node.op} {value}"
        return f"{agg} of [{filter_text(node.filter)}]"
    if isinstance(node, p.RecencyCond):
        return f"{node.which} [{filter_text(node.filter)}] {recency_text(node.recency)}"
    if isinstance(node, p.SeqCond):
        then = "then not" if node.then_not else "then"
        return (
            f"[{filter_text(node.first)}] {then} [{filter_text(node.second)}] "
            f"within {duration_text(node.within)}"
        )
    if isinstance(node, p.ProfileTest):
        return f"profile {pred_text(node.pred)}"
    raise ValueError(f"no rule for {type(node).__name__}")


def cond_lines(node: p.CondNode, depth: int = 0) -> list[str]:
    pad = "  " * depth
    if isinstance(node, p.AndNode | p.OrNode):
        head = "and" if isinstance(node, p.AndNode) else "or"
        return [pad + head] + [ln for c in node.children for ln in cond_lines(c, depth + 1)]
    if isinstance(node, p.NotNode):
        return [pad + "not", *cond_lines(node.child, depth + 1)]
    if isinstance(node, p.RuleNode):
        return [f"{pad}rule {_lit(node.label)}", *cond_lines(node.child, depth + 1)]
    if isinstance(node, p.SegmentNode):
        return [f"{pad}segment {_lit(node.name)}", *cond_lines(node.child, depth + 1)]
    return [pad + leaf_text(node)]


def cond_text(node: p.CondNode) -> str:
    """A one-line label of a condition (explain's operand names)."""
    if isinstance(node, p.RuleNode):
        return node.label
    if isinstance(node, p.SegmentNode):
        return f"in segment {_lit(node.name)}"
    if isinstance(node, p.NotNode):
        return f"not ({cond_text(node.child)})"
    if isinstance(node, p.AndNode | p.OrNode):
        sep = " and " if isinstance(node, p.AndNode) else " or "
        return "(" + sep.join(cond_text(c) for c in node.children) + ")"
    return leaf_text(node)
