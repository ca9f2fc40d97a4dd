"""Touch every kernel once with the common signatures, so a server pays the
(disk-cached) kernel loading at start-up rather than on its first query."""

from __future__ import annotations

import numpy as np

from audience.compiler.kernels import filters, reduce, sequence


def warmup() -> None:
    i32 = np.zeros(2, dtype=np.int32)
    i64 = np.zeros(2, dtype=np.int64)
    f64 = np.zeros(2, dtype=np.float64)
    yes = np.ones(2, dtype=np.bool_)
    lut = np.ones(1, dtype=np.bool_)
    for valid in (None, yes):
        filters.lut_mask(i32, lut, valid)
        for arr in (i64, i32, yes):
            filters.compare_mask(arr, valid, 0, 0)
        filters.compare_mask(f64, valid, 0, 0.0)
        filters.list_mask(np.zeros(3, dtype=np.int32), i32, valid, lut)
        filters.list_mask(np.zeros(3, dtype=np.int32), i32, valid, None)
    filters.gather(i32, yes)
    for mask in (None, yes):
        reduce.count_into(i32, mask, np.zeros(1, dtype=np.int64))
        reduce.ts_extreme_into(i32, mask, i64, True, np.zeros(1, dtype=np.int64))
        for vals in (i64, f64):
            reduce.agg_into(i32, mask, vals, None, "sum", np.zeros(1), np.zeros(1, dtype=np.int64))
    reduce.distinct_counts(i32, i64, 1)
    reduce.distinct_counts(i32, f64, 1)
    sequence.sequence_match(i32, i64, i64, i32, i64, False, 1)
