"""Share structurally equal steps: a sub-plan written twice (the same rule in
two places, a saved segment referenced twice) is computed once."""

from __future__ import annotations

from audience.compiler.physical import Program, Step, remap


def dedupe(prog: Program) -> Program:
    seen: dict[Step, int] = {}
    m: dict[int, int] = {}
    out: list[Step] = []
    for i, step in enumerate(prog.steps):
        key = remap(step, m)  # inputs first, so equal sub-trees collapse bottom-up
        if key not in seen:
            seen[key] = len(out)
            out.append(key)
        m[i] = seen[key]
    return _rebuilt(prog, out, m)


def _rebuilt(prog: Program, steps: list[Step], m: dict[int, int]) -> Program:
    return Program(
        tuple(steps),
        m[prog.root],
        tuple((label, m[i]) for label, i in prog.rules),
        tuple((text, m[i]) for text, i in prog.operands),
        prog.logical,
    )
