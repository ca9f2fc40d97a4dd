"""The one place the numba flags of every kernel come from.

``cache=True`` writes the compiled machine code next to the sources, so a
process pays the compilation once per kernel signature ever, never per query:
kernels are generic over the plan (lookup tables, op codes and bounds are
arguments), so a never-seen segment text runs already-compiled code.
``nogil=True`` lets several threads evaluate at once.

Every kernel is declared with explicit signatures whose input arrays are
read-only C arrays: a writable array converts to that type, so a store's
read-only (memory-mapped Arrow) arrays and the evaluator's own arrays share
one compiled version, and a call with unforeseen types fails loudly instead
of compiling on the query path.
"""

from __future__ import annotations

from typing import Any

from numba import types

NJIT: dict[str, Any] = dict(cache=True, nogil=True)
PARALLEL: dict[str, Any] = dict(cache=True, nogil=True, parallel=True)
# below this many rows a pass runs on one thread: waking the pool and merging
# the threads' per-contact outputs cost more than they save, and on a busy
# machine a thread that waits for a core stalls the whole pass
PARALLEL_MIN_ROWS = 2_000_000
# ``count_distinct`` pairs get threads sooner: its threads own disjoint
# buckets of contacts, so there are no per-thread outputs to merge (at 10M
# events, 1.2M pairs: 16 ms on two threads against 20 ms on one)
PARALLEL_MIN_PAIRS = 200_000

# Comparison op codes shared by the compare kernels and the compiler.
OP_CODES: dict[str, int] = {"=": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}

B = types.boolean
I32 = types.int32
I64 = types.int64
F64 = types.float64
U8 = types.uint8


def ro(dtype: Any) -> types.Array:
    """A read-only (input) 1-d C array type."""
    return types.Array(dtype, 1, "C", readonly=True)


def rw(dtype: Any) -> types.Array:
    """A writable (output) 1-d C array type."""
    return types.Array(dtype, 1, "C")


# the value dtypes a compare or aggregate kernel reads: int, float, date, bool (as uint8)
VALUE_TYPES = (I64, F64, I32, U8)
