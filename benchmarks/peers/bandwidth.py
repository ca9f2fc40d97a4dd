"""Memory bandwidth of this machine, measured in the same run, and the lower
bound it puts on each workload: the bytes a workload must read at least,
divided by the bytes per second the machine can stream.

The bytes are counted in our store's encoding (SPEC contract: ts int64,
contact int32, type int32, string codes int32, float/int 8 bytes, bool 1,
date 4), over only the events inside the workload's widest window, which a
time-sorted store can find without reading the rest.  No engine can do
better than reading those bytes once, so ``bound_s`` is a floor, not a target.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from benchmarks.peers.workloads import Workload

EVENT_WIDTH = {
    "product_id": 4, "product_name": 4, "category": 4, "store": 4, "campaign": 4, "url": 4,
    "form_name": 4, "context": 4, "price": 8, "amount": 8, "quantity": 8, "items": 8,
}  # fmt: skip
PROFILE_WIDTH = {
    "email": 4, "first_name": 4, "last_name": 4, "gender": 4, "city": 4, "country": 4,
    "phone": 4, "preferred_store": 4, "loyalty_points": 8, "newsletter": 1, "birth_date": 4,
    "signup_ts": 8,
}  # fmt: skip
TS, CONTACT, TYPE = 8, 4, 4
UNIVERSE = 1 + 8  # has_profile + first_event_ts per contact


def measure(threads: int, gigabytes: float = 2.0, repeat: int = 3) -> float:
    """Read bandwidth in bytes/s: the best of ``repeat`` passes over one array,
    with one thread and with ``threads`` threads summing disjoint slices
    (numpy's sum releases the GIL); a floor must use the fastest way to read."""
    a = np.ones(int(gigabytes * 2**30) // 8, dtype=np.float64)
    best = float("inf")
    for k in sorted({1, max(1, threads)}):
        parts = np.array_split(a, k)
        with ThreadPoolExecutor(max_workers=k) as pool:
            for _ in range(repeat):
                t0 = time.perf_counter()
                total = sum(pool.map(np.sum, parts))
                best = min(best, time.perf_counter() - t0)
                assert total == a.size  # every element was read
    return a.nbytes / best


@dataclass(frozen=True)
class Bound:
    bytes: int
    seconds: float


def must_read(w: Workload, events_in_window: int, n_contacts: int) -> int:
    """The bytes ``w`` must read at least (see the module docstring)."""
    per_event = TS + CONTACT + (TYPE if w.reads_type else 0)
    per_event += sum(EVENT_WIDTH[c] for c in w.event_columns)
    per_contact = sum(PROFILE_WIDTH[c] for c in w.profile_columns)
    per_contact += UNIVERSE if w.universe else 0
    return events_in_window * per_event + n_contacts * per_contact


def lower_bound(w: Workload, ts_ms: np.ndarray, now_ms: int, n_contacts: int, bps: float) -> Bound:
    """The bound of ``w`` over a store whose sorted event times are ``ts_ms``."""
    hi = int(np.searchsorted(ts_ms, now_ms, side="right"))
    lo = 0
    if w.window_days is not None:
        lo = int(np.searchsorted(ts_ms, now_ms - int(w.window_days * 86_400_000), side="right"))
    n = must_read(w, hi - lo, n_contacts)
    return Bound(n, n / bps)
