"""Kernels are loaded (from numba's on-disk cache) on first use, not at import,
and once loaded behave as eagerly compiled ones: the declared signatures
(each loaded when a call first needs it), compilation disabled, a call with
unforeseen types refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from audience.engine.kernels import filters, postings
from audience.engine.kernels.config import njit

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_kernels_loads_none_of_them() -> None:
    code = textwrap.dedent(
        """
        import json
        from numba.core.dispatcher import Dispatcher
        from audience.engine.kernels import filters, lanes, postings, reduce, sequence
        loaded = [
            f"{m.__name__}.{name}"
            for m in (filters, lanes, postings, reduce, sequence)
            for name, obj in vars(m).items()
            if isinstance(obj, Dispatcher) and obj.overloads
        ]
        kernels = sum(
            isinstance(obj, Dispatcher)
            for m in (filters, lanes, postings, reduce, sequence)
            for obj in vars(m).values()
        )
        print(json.dumps([loaded, kernels]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded, kernels = json.loads(proc.stdout.strip().splitlines()[-1])
    assert kernels > 10
    assert loaded == []


def test_a_used_kernel_has_every_declared_signature_and_compiles_no_other() -> None:
    codes = np.array([0, 1, 5], dtype=np.int32)
    out = filters.lut_mask(codes, np.array([False, True]))
    assert out.tolist() == [False, True, False]
    kernel = filters._lut_mask
    assert len(kernel.signatures) == 1 and not kernel._can_compile
    with pytest.raises(TypeError):
        kernel(codes.astype(np.int64), np.array([True]), np.array([True]), False, out)
    assert postings is not None


def test_the_lazy_decorator_compiles_declared_signatures_only() -> None:
    from numba import types

    calls: list[int] = []

    def twice(x: np.ndarray) -> int:
        return int(x.sum() * 2)

    ro = types.Array(types.int64, 1, "C", readonly=True)
    kernel = njit([types.int64(ro)], cache=False)(twice)
    assert not kernel.overloads  # nothing compiled at decoration
    calls.append(kernel(np.arange(4, dtype=np.int64)))  # a writable array converts
    assert calls == [12]
    assert list(kernel.overloads) == [(ro,)]
    with pytest.raises(TypeError):
        kernel(np.arange(4, dtype=np.float64))
    plain = njit(cache=False)(twice)  # no signatures: numba's own lazy njit
    assert plain(np.arange(3, dtype=np.int64)) == 6


def _scaled(x: np.ndarray, k: float) -> float:
    return x.sum() * k  # type: ignore[no-any-return]


def test_a_kernel_loads_the_signature_a_call_needs_and_the_others_when_needed() -> None:
    from numba import types

    ints, floats = (
        types.Array(types.int64, 1, "C", readonly=True),
        types.Array(types.float64, 1, "C", readonly=True),
    )
    sigs = [types.float64(floats, types.float64), types.int64(ints, types.int64)]
    kernel = njit(sigs, cache=False)(_scaled)
    assert kernel(np.array([1.5, 2.0]), 2.0) == 7.0  # writable arrays convert
    assert list(kernel.overloads) == [(floats, types.float64)]
    assert not kernel._can_compile
    assert kernel(np.array([1.5, 2.0]), 3) == 10.5  # an int scalar converts: no new load
    assert len(kernel.overloads) == 1
    assert kernel(np.array([1, 2], dtype=np.int64), 3) == 9  # the other one, loaded now
    assert set(kernel.overloads) == {(floats, types.float64), (ints, types.int64)}
    assert kernel.pending is None
    with pytest.raises(TypeError):  # unforeseen: refused, not compiled
        kernel(np.array([1, 2], dtype=np.int32), 3)
    assert len(kernel.overloads) == 2


def test_signatures_a_call_could_take_by_conversion_load_together() -> None:
    # same array type, the scalar differs: an int call converts to the float
    # signature too, so which one numba picks must be chosen among both
    from numba import types

    floats = types.Array(types.float64, 1, "C", readonly=True)
    sigs = [types.float64(floats, types.float64), types.float64(floats, types.int64)]
    kernel = njit(sigs, cache=False)(_scaled)
    assert kernel(np.array([1.5, 2.0]), 2) == 7.0
    assert len(kernel.overloads) == 2 and kernel.pending is None


def test_an_unforeseen_call_first_loads_every_signature_and_is_refused() -> None:
    from numba import types

    floats = types.Array(types.float64, 1, "C", readonly=True)
    ints = types.Array(types.int64, 1, "C", readonly=True)
    sigs = [types.float64(floats, types.float64), types.int64(ints, types.int64)]
    kernel = njit(sigs, cache=False)(_scaled)
    with pytest.raises(TypeError):
        kernel(np.array([1, 2], dtype=np.int16), 3)
    assert len(kernel.overloads) == 2 and not kernel._can_compile


_CACHED_KERNELS = """
import numpy as np
from numba import prange, types

from audience.engine.kernels.config import NJIT, PARALLEL, njit, ro


@njit([types.int64[::1](ro(types.int64))], **NJIT)
def doubled(x):  # allocates: needs numba's runtime once loaded
    out = np.empty(x.shape[0], dtype=np.int64)
    for i in range(x.shape[0]):
        out[i] = 2 * x[i]
    return out


@njit([types.int64(ro(types.int64))], **PARALLEL)
def total(x):  # threads: needs the threading layer once loaded
    s = 0
    for i in prange(x.shape[0]):
        s += x[i]
    return s
"""

_USE_THEM = """
import json, sys
import numpy as np
import kernels_under_test as k
x = np.arange(100_000, dtype=np.int64)
results = [int(k.doubled(x)[-1]), int(k.total(x))]
hits = sum(sum(d.stats.cache_hits.values()) for d in (k.doubled, k.total))
misses = sum(sum(d.stats.cache_misses.values()) for d in (k.doubled, k.total))
# numba.np.linalg is imported only by numba's refresh of its registries;
# numba.np.arrayobj holds np.empty, whose environment a loaded kernel
# carries (rebuilt without importing it)
mods = [m in sys.modules for m in ("numba.np.linalg", "numba.np.arrayobj")]
print(json.dumps([results, hits, misses, mods]))
"""


def test_a_cached_kernel_loads_without_numbas_registries_and_runs_as_compiled(
    tmp_path: Path,
) -> None:
    # the first process compiles (a cache miss takes numba's own path), the
    # second loads the machine code; both give the same answers, threads and
    # allocations included
    (tmp_path / "kernels_under_test.py").write_text(_CACHED_KERNELS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}

    def run() -> list[object]:
        proc = subprocess.run(
            [sys.executable, "-c", _USE_THEM],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        out: list[object] = json.loads(proc.stdout.strip().splitlines()[-1])
        return out

    expected = [199_998, 4_999_950_000]
    assert run() == [expected, 0, 2, [True, True]]
    assert run() == [expected, 2, 0, [False, False]]
