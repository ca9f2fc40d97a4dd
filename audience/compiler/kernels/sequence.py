"""``then`` / ``then not``: a merge scan over two small filtered row sets."""

from __future__ import annotations

import numpy as np
from numba import njit, types

from audience.compiler.kernels._checks import check_1d
from audience.compiler.kernels.config import I32, I64, NJIT, B, ro, rw


@njit([types.void(ro(I32), ro(I64), ro(I64), ro(I32), ro(I64), B, rw(B))], **NJIT)
def _sequence(
    c1: np.ndarray,
    t1: np.ndarray,
    deadline: np.ndarray,
    c2: np.ndarray,
    t2: np.ndarray,
    then_not: bool,
    out: np.ndarray,
) -> None:
    # Both sides are sorted by (contact, ts), so the "first E2 strictly later
    # than this E1" pointer only moves forward: one linear pass.
    j = 0
    n2 = len(c2)
    for i in range(len(c1)):
        c = c1[i]
        t = t1[i]
        while j < n2 and (c2[j] < c or (c2[j] == c and t2[j] <= t)):
            j += 1
        follows = j < n2 and c2[j] == c and t2[j] <= deadline[i]
        if follows != then_not:
            out[c] = True


def sequence_match(
    c1: np.ndarray,
    t1: np.ndarray,
    deadline: np.ndarray,
    c2: np.ndarray,
    t2: np.ndarray,
    then_not: bool,
    n_contacts: int,
) -> np.ndarray:
    """Contacts with an E1 row followed by an E2 row strictly later and at or
    before that row's ``deadline`` (``then_not``: with no such E2 row).  Each
    side must be sorted by (contact, ts)."""
    c1 = check_1d("c1", c1, (np.int32,))
    t1 = check_1d("t1", t1, (np.int64,), len(c1))
    deadline = check_1d("deadline", deadline, (np.int64,), len(c1))
    c2 = check_1d("c2", c2, (np.int32,))
    t2 = check_1d("t2", t2, (np.int64,), len(c2))
    for c, t in ((c1, t1), (c2, t2)):
        if len(c) > 1:
            step_c = np.diff(c.astype(np.int64))
            if (step_c < 0).any() or ((step_c == 0) & (np.diff(t) < 0)).any():
                raise ValueError("rows must be sorted by (contact, ts)")
        if len(c) and (c.min() < 0 or c.max() >= n_contacts):
            raise ValueError("contact index outside the contact universe")
    out = np.zeros(n_contacts, dtype=np.bool_)
    _sequence(c1, t1, deadline, c2, t2, then_not, out)
    return out


def sort_by_contact_ts(contact: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The permutation sorting rows by (contact, ts)."""
    order: np.ndarray = np.lexsort((ts, contact))
    return order
