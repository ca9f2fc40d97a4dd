"""Input validation shared by the public kernel wrappers."""

from __future__ import annotations

import numpy as np

EMPTY_BOOL = np.zeros(0, dtype=np.bool_)


def as_valid(valid: np.ndarray | None, n: int) -> tuple[np.ndarray, bool]:
    """``(array, has_valid)``: kernels take a flag instead of an optional array
    so that one compiled signature serves columns with and without nulls."""
    if valid is None:
        return EMPTY_BOOL, False
    if valid.dtype != np.bool_ or valid.ndim != 1 or len(valid) != n:
        raise ValueError(f"validity mask must be a 1-d bool array of length {n}")
    return np.ascontiguousarray(valid), True


def check_1d(
    name: str, arr: np.ndarray, dtypes: tuple[type, ...], n: int | None = None
) -> np.ndarray:
    """``arr`` as a C-contiguous array (the kernels' declared layout), after
    checking its rank, dtype and length."""
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got {arr.ndim}-d")
    if arr.dtype.type not in dtypes:
        names = ", ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(f"{name} must have dtype {names}, got {arr.dtype}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has length {len(arr)}, expected {n}")
    out: np.ndarray = np.ascontiguousarray(arr)
    return out


def check_out(name: str, arr: np.ndarray, dtype: type, n: int | None = None) -> np.ndarray:
    """An output array: written in place, so it must already be a writable
    C-contiguous array (a copy would silently drop the results)."""
    check_1d(name, arr, (dtype,), n)
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        raise ValueError(f"{name} must be a writable C-contiguous array")
    return arr
