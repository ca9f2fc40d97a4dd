"""The ordered compile-time passes over the physical program.  (Time
resolution runs at evaluation time: see ``audience.engine.resolve_time``.)"""

from __future__ import annotations

from collections.abc import Callable

from audience.compiler.passes.dedupe import dedupe
from audience.compiler.passes.fuse import fuse
from audience.compiler.physical import Program

# dedupe first: it collapses equal tests, so fuse sees each scan need once
PASSES: tuple[Callable[[Program], Program], ...] = (dedupe, fuse, dedupe)


def run_passes(prog: Program) -> Program:
    for pass_ in PASSES:
        prog = pass_(prog)
    return prog
