"""The one place the numba flags of every kernel come from.

``cache=True`` writes the compiled machine code next to the sources, so a
process pays the compilation once per kernel signature ever, never per query:
kernels are generic over the plan (lookup tables, op codes and bounds are
arguments), so a never-seen segment text runs already-compiled code.
``nogil=True`` lets several threads evaluate at once.
"""

from __future__ import annotations

from typing import Any

NJIT: dict[str, Any] = dict(cache=True, nogil=True)
PARALLEL: dict[str, Any] = dict(cache=True, nogil=True, parallel=True)

# Comparison op codes shared by the compare kernels and the compiler.
OP_CODES: dict[str, int] = {"=": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}
