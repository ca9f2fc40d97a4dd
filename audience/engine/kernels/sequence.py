"""``then`` / ``then not``: a merge scan over two small filtered row sets."""

from __future__ import annotations

import numpy as np
from numba import types

from audience.engine.kernels._checks import check_1d, check_out
from audience.engine.kernels.config import I32, I64, NJIT, B, njit, ro, rw

# a contact with no pending E1 in ``sequence_stream``'s work array
NO_STATE = int(np.iinfo(np.int64).min)


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


@njit([B(ro(I64))], **NJIT)
def _ascending(t: np.ndarray) -> bool:
    # no early exit: a branch-free loop vectorizes, several times faster
    down = False
    for i in range(1, len(t)):
        down |= t[i] < t[i - 1]
    return not down


def ascending(t: np.ndarray) -> bool:
    """Whether ``t`` is sorted ascending (ties allowed)."""
    return bool(_ascending(check_1d("t", t, (np.int64,))))


@njit([types.void(ro(I32), ro(I64), ro(I64), ro(I32), ro(I64), B, rw(I64), rw(B))], **NJIT)
def _sequence_stream(
    c1: np.ndarray,
    t1: np.ndarray,
    deadline: np.ndarray,
    c2: np.ndarray,
    t2: np.ndarray,
    then_not: bool,
    state: np.ndarray,
    out: np.ndarray,
) -> None:
    # One merge of the two ts-ordered streams, E2 first on equal ts (an E2
    # follows only a strictly older E1).  ``then``: state[c] is the latest
    # deadline among c's E1s seen so far, and an E2 at or before it matches.
    # ``then not``: state[c] is the earliest deadline among c's E1s not yet
    # followed; an E2 is later than all of them, so it follows each one whose
    # deadline it does not pass: if it passes the earliest, that E1 matched.
    none = np.int64(-(2**63))
    i = 0
    j = 0
    n1 = len(c1)
    n2 = len(c2)
    while i < n1 or j < n2:
        if j < n2 and (i >= n1 or t2[j] <= t1[i]):
            c = c2[j]
            s = state[c]
            if s != none:
                if not then_not:
                    if t2[j] <= s:
                        out[c] = True
                else:
                    if t2[j] > s:
                        out[c] = True
                    state[c] = none
            j += 1
        else:
            c = c1[i]
            d = deadline[i]
            s = state[c]
            if s == none or (d > s if not then_not else d < s):
                state[c] = d
            i += 1
    # only the E1s' contacts hold a state, and they go back to ``none``:
    # ``state`` leaves as it came, so the caller can keep it for the next call
    # instead of filling it.  Fewer E1s than contacts (millions of contacts,
    # few events each): visit their contacts only; else one pass over all
    if n1 < len(state):
        for i in range(n1):
            c = c1[i]
            if then_not and state[c] != none:
                out[c] = True
            state[c] = none
    else:
        for c in range(len(state)):
            if then_not and state[c] != none:
                out[c] = True
            state[c] = none


def sequence_stream(
    c1: np.ndarray,
    t1: np.ndarray,
    deadline: np.ndarray,
    c2: np.ndarray,
    t2: np.ndarray,
    then_not: bool,
    n_contacts: int,
    state: np.ndarray | None = None,
) -> np.ndarray:
    """Same answer as ``sequence_match`` for rows in ts order (each side sorted
    by ts, as a time-ordered scan yields them), with no sort: one merge pass
    with per-contact state.  ``deadline`` must not be INT64_MIN.  ``state``,
    when given, is the work array: an int64 per contact, every one INT64_MIN
    (``NO_STATE``), and left so (a caller keeps it from call to call)."""
    c1 = check_1d("c1", c1, (np.int32,))
    t1 = check_1d("t1", t1, (np.int64,), len(c1))
    deadline = check_1d("deadline", deadline, (np.int64,), len(c1))
    c2 = check_1d("c2", c2, (np.int32,))
    t2 = check_1d("t2", t2, (np.int64,), len(c2))
    for c, t in ((c1, t1), (c2, t2)):
        if not ascending(t):
            raise ValueError("rows must be sorted by ts")
        if len(c) and (c.min() < 0 or c.max() >= n_contacts):
            raise ValueError("contact index outside the contact universe")
    if len(deadline) and deadline.min() == np.iinfo(np.int64).min:
        raise ValueError("a deadline cannot be INT64_MIN")
    if state is None:
        state = np.full(n_contacts, NO_STATE, dtype=np.int64)
    state = check_out("state", state, np.int64, n_contacts)
    out = np.zeros(n_contacts, dtype=np.bool_)
    _sequence_stream(c1, t1, deadline, c2, t2, then_not, state, out)
    return out
