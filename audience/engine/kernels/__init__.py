"""Numba kernels of the evaluator.

Each public function validates its inputs (dtypes, lengths) and calls a
private ``@njit`` kernel (stumpy's ``stump``/``_stump`` style), so a bad call
fails with a Python error instead of a segfault or a fresh compilation.
"""
