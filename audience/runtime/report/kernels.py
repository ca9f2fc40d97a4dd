"""The report's passes over the events, compiled (numba): one to give each
delivery its send's (domain, period) key, one to flag what happened to it
after, and one to tally the deliveries.
Each reads a partition's columns where they lie (no copies of 10 million
rows), which is what keeps the whole report within a second."""

from __future__ import annotations

import numpy as np
from numba import njit

from audience.engine.kernels.config import NJIT

# kinds of event (kind_of[type code]): -1 other, 0 a send, then these
OPEN, CLICK, BOUNCE, COMPLAINT, UNSUB = 1, 2, 3, 4, 5
# flags of a delivery
F_OPEN, F_HUMAN_OPEN, F_HUMAN_CLICK = 1, 2, 4
F_HARD, F_SOFT, F_BLOCK, F_UNDETERMINED = 8, 16, 32, 64
F_COMPLAINT, F_UNSUB = 128, 256
# rows of the tally, in compute.COUNTS order
ROWS = 11


@njit(**NJIT)
def _ok(valid: np.ndarray, i: int) -> bool:
    return valid.size == 0 or valid[i]


@njit(**NJIT)
def mark_sends(
    type_: np.ndarray,
    kind_of: np.ndarray,
    ts: np.ndarray,
    did: np.ndarray,
    did_valid: np.ndarray,
    group: np.ndarray,
    group_valid: np.ndarray,
    want_group: int,
    contact: np.ndarray,
    dom_of: np.ndarray,
    starts: np.ndarray,
    last: int,
    lo: int,
    key: np.ndarray,
    unattributed: np.ndarray,
) -> None:
    """key[delivery - lo] = domain * periods + period of its send (a later
    send of the same delivery wins); ``want_group`` -2: any group."""
    periods = starts.size - 1
    for i in range(ts.size):
        t = ts[i]
        if kind_of[type_[i]] != 0 or t < starts[0] or t > last or not _ok(did_valid, i):
            continue
        if want_group != -2:
            g = group[i] if _ok(group_valid, i) else -1
            if g != want_group:
                continue
        c = contact[i]
        d = dom_of[c] if c < dom_of.size else -1
        if d < 0:
            unattributed[0] += 1
            continue
        p = np.searchsorted(starts, t, side="right") - 1
        key[did[i] - lo] = d * periods + p


@njit(**NJIT)
def mark_after(
    type_: np.ndarray,
    kind_of: np.ndarray,
    ts: np.ndarray,
    did: np.ndarray,
    did_valid: np.ndarray,
    bounce: np.ndarray,
    bounce_valid: np.ndarray,
    class_of: np.ndarray,
    bot: np.ndarray,
    bot_valid: np.ndarray,
    first: int,
    last: int,
    lo: int,
    key: np.ndarray,
    flags: np.ndarray,
) -> None:
    """Flag, per delivery sent in the span, the events after its send."""
    for i in range(ts.size):
        k = kind_of[type_[i]]
        if k <= 0 or ts[i] < first or ts[i] > last or not _ok(did_valid, i):
            continue
        s = did[i] - lo
        if s < 0 or s >= key.size or key[s] < 0:
            continue
        human = not (bot[i] and _ok(bot_valid, i))
        if k == OPEN:
            flags[s] |= F_OPEN | (F_HUMAN_OPEN if human else 0)
        elif k == CLICK:
            if human:
                flags[s] |= F_HUMAN_CLICK
        elif k == BOUNCE:
            c = class_of[bounce[i] + 1] if _ok(bounce_valid, i) else -1
            if c == 0:
                flags[s] |= F_HARD
            elif c == 1:
                flags[s] |= F_SOFT
            elif c == 2:
                flags[s] |= F_BLOCK
            else:
                flags[s] |= F_UNDETERMINED
        elif k == COMPLAINT:
            flags[s] |= F_COMPLAINT
        elif k == UNSUB:
            flags[s] |= F_UNSUB


@njit(**NJIT)
def tally(key: np.ndarray, flags: np.ndarray, out: np.ndarray) -> None:
    """out[row, key] += 1 per delivery: sent, delivered, its gravest bounce
    class (hard, block, soft, undetermined), and, delivered only, what its
    reader did (rows in compute.COUNTS order)."""
    for s in range(key.size):
        k = key[s]
        if k < 0:
            continue
        f = flags[s]
        out[0, k] += 1
        if f & F_HARD:
            out[2, k] += 1
        elif f & F_BLOCK:
            out[4, k] += 1
        elif f & F_SOFT:
            out[3, k] += 1
        elif f & F_UNDETERMINED:
            out[5, k] += 1
        else:
            out[1, k] += 1
            if f & F_OPEN:
                out[6, k] += 1
            if f & F_HUMAN_OPEN:
                out[7, k] += 1
            if f & F_HUMAN_CLICK:
                out[8, k] += 1
            if f & F_UNSUB:
                out[9, k] += 1
            if f & F_COMPLAINT:
                out[10, k] += 1
