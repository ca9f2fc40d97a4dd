"""Fuse scans of the same rows: conditions reading the same event filter
(types, predicate, window) share one pass over the partitions, each adding
its reduction (``did X at least 3 times`` and ``last X ...`` over the same X
filter and window read the rows once)."""

from __future__ import annotations

from dataclasses import replace

from audience.compiler.physical import Program, ScanStep, Step, remap
from audience.compiler.plan import RowFilter


def fuse(prog: Program) -> Program:
    first: dict[RowFilter, int] = {}
    merged: dict[int, ScanStep] = {}
    alias: dict[int, int] = {}
    for i, step in enumerate(prog.steps):
        if not isinstance(step, ScanStep):
            continue
        j = first.setdefault(step.filter, i)
        alias[i] = j
        base = merged.get(j, replace(step, reductions=()))
        reds = base.reductions + tuple(r for r in step.reductions if r not in base.reductions)
        merged[j] = replace(base, reductions=reds)
    # drop the absorbed scans, compacting indexes; the kept scan sits at the
    # first occurrence, so it still runs before every test that reads it
    m: dict[int, int] = {}
    out: list[Step] = []
    for i, step in enumerate(prog.steps):
        if isinstance(step, ScanStep) and alias[i] != i:
            m[i] = m[alias[i]]
            continue
        m[i] = len(out)
        out.append(merged.get(i, step) if isinstance(step, ScanStep) else remap(step, m))
    return Program(
        tuple(out),
        m[prog.root],
        tuple((label, m[i]) for label, i in prog.rules),
        tuple((text, m[i]) for text, i in prog.operands),
        prog.logical,
    )
