"""One kernel call per partition and group of lanes over the same rows
(``kernels.lanes``): each lane's rows, mask and values checked against its
source and laid out as the private kernel takes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audience.engine.context import EvalContext
from audience.engine.kernels import config, lanes
from audience.engine.predicates import event_field
from audience.engine.scanplan import Group
from audience.snapshot import Partition

# the rows [a, b) a scan reads in a partition, and the type table its rows
# must still pass there (None: every row of the source has its types)
Source = tuple[Partition, int, int, np.ndarray | None]


@dataclass(frozen=True)
class Rows:
    """The rows of a scan's source in ``[a, b)`` that pass its tests: a bool
    mask over ``[a, b)``, or the passing row numbers (``positions``, from an
    index); both None: every row passes."""

    mask: np.ndarray | None = None
    positions: np.ndarray | None = None
    contact: np.ndarray | None = None  # the contacts at ``positions``

    def as_mask(self, a: int, b: int) -> np.ndarray | None:
        if self.positions is None:
            return self.mask
        out = np.zeros(b - a, dtype=np.bool_)
        out[self.positions - a] = True
        return out


ALL = Rows()


def run_lanes(
    ctx: EvalContext,
    sources: list[Source],
    masks: list[Rows],
    group: Group,
    outputs: tuple[np.ndarray, ...],
    one: tuple[np.ndarray, ...],
) -> None:
    """The lanes of ``group``: all over the same types, so the same source
    (a lane whose window misses the partition has none: it is skipped).
    ``outputs``: the pass's per-thread outputs (3-d); ``one``: thread 0's
    alone (2-d)."""
    chunk = group.lanes
    src = None
    for ln in chunk:
        own, a, b, _ = sources[ln.scan]
        if a < b:
            if src is None:
                src = own
            elif own is not src:
                raise ValueError("lanes of one group must read the same rows")
    if src is None:
        return
    k_n = len(chunk)
    # the per-lane arguments as rows of two arrays (each row a C array)
    lane_lo, lane_hi, mask_base, val_base = np.zeros((4, k_n), dtype=np.int64)
    has_mask, has_pos = np.zeros((2, k_n), dtype=np.bool_)
    # each array laid out once (by identity), made on first use
    flats: dict[str, _Flat] = {}
    rows_read = 0
    n_rows = len(src)
    # the kernel reads ``contact`` and ``ts`` at every lane's rows unchecked:
    # both must hold them, as C arrays (a strided view, which a hand-made
    # partition may hold, is copied)
    src_contact = np.ascontiguousarray(src.contact)
    src_ts = np.ascontiguousarray(src.ts)
    if len(src_contact) != n_rows or len(src_ts) != n_rows:
        raise ValueError(f"a source has {len(src_contact)} contacts for its {n_rows} rows")
    for k, ln in enumerate(chunk):
        _, a, b, _ = sources[ln.scan]
        rows = masks[ln.scan]
        mask, positions = rows.mask, rows.positions
        if positions is not None and len(positions) == 0:
            continue  # no row passes
        if a < b and ln.kind in _FOLDS:
            fd = event_field(ctx, ln.red[2], src, a, b)
            if fd.values is None:
                continue  # the column does not exist here: no value to fold
            if len(fd.values) != b - a:
                raise ValueError("a column's values must cover the lane's rows")
            if fd.valid is not None:
                mask = fd.valid if mask is None else (mask & fd.valid)
            if ln.kind in (lanes.IMIN, lanes.IMAX):
                at = _flat(flats, "ivals").add(fd.values.astype(np.int64, copy=False))
            else:
                at = _flat(flats, "vals").add(fd.values.astype(np.float64, copy=False))
            val_base[k] = a - at
        if a >= b:
            continue
        if not 0 <= a <= b <= n_rows:
            raise ValueError("a lane's rows must be its source's")
        if positions is not None:
            at = _flat(flats, "pos").add(positions)
            contact = rows.contact
            assert contact is not None
            if _flat(flats, "pos_contact").add(contact) != at or len(contact) != len(positions):
                raise ValueError("positions and their contacts must be laid out alike")
            lane_lo[k], lane_hi[k] = at, at + len(positions)
            has_pos[k] = True
            rows_read += len(positions)
        else:
            lane_lo[k], lane_hi[k] = a, b
            rows_read += b - a
        if mask is not None:
            if len(mask) != b - a:
                raise ValueError("a lane's mask must cover its rows")
            has_mask[k] = True
            mask_base[k] = a - _flat(flats, "masks").add(mask)
    if rows_read == 0:
        return
    kernel = lanes._scan_lanes
    counts, accs, tss, iaccs, flags = one
    # (read from its module: a test sets it there for every reader)
    if rows_read >= config.PARALLEL_MIN_ROWS and outputs[0].shape[0] > 1:
        kernel = lanes._scan_lanes_par
        counts, accs, tss, iaccs, flags = outputs
    # the private kernel, without ``scan_lanes``' checks of every input at
    # every call (a third of a small store's evaluation): the outputs are
    # ``fused.run_plan``'s own, made to the kernel's dtypes and shapes; every
    # lane's rows, mask and values are checked above against its source;
    # positions come from the source's own index, within the lane's rows
    # (``postings``).  The kernel still checks every contact against the
    # outputs, and a wrong dtype or layout finds no compiled signature.
    masks_, pos, pos_contact, vals, ivals = [
        (flats[name] if name in flats else _Flat()).array(dt) for name, dt in _LAID_OUT
    ]
    bad = kernel(
        src_contact, src_ts, lane_lo, lane_hi, group.kind, group.slot, has_mask, mask_base,
        masks_, has_pos, pos, pos_contact, val_base, vals, ivals, counts, accs, tss, iaccs, flags,
    )  # fmt: skip
    if bad:
        raise ValueError(f"{bad} rows have a contact index outside the output arrays")


_FOLDS = frozenset(kd for kd in lanes.KINDS.values() if lanes.folds(kd))


def _flat(flats: dict[str, _Flat], name: str) -> _Flat:
    hit = flats.get(name)
    if hit is None:
        hit = flats[name] = _Flat()
    return hit


# the arrays ``run_lanes`` lays out, each empty when no lane reads it
_LAID_OUT = (
    ("masks", np.bool_),
    ("pos", np.int32),
    ("pos_contact", np.int32),
    ("vals", np.float64),
    ("ivals", np.int64),
)


class _Flat:
    """Arrays laid end to end in one buffer (each array once, by identity)."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.at: dict[int, int] = {}
        self.size = 0

    def add(self, arr: np.ndarray) -> int:
        """The offset of ``arr`` in the buffer."""
        at = self.at.get(id(arr))
        if at is None:
            at = self.at[id(arr)] = self.size
            self.parts.append(arr)
            self.size += len(arr)
        return at

    def array(self, dtype: Any) -> np.ndarray:
        if not self.parts:
            return _EMPTY[np.dtype(dtype).char]
        if len(self.parts) == 1:
            return self.parts[0]
        return np.concatenate(self.parts)


_EMPTY = {
    np.dtype(t).char: np.zeros(0, dtype=t) for t in (np.bool_, np.float64, np.int64, np.int32)
}
