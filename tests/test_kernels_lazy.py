"""Kernels are loaded (from numba's on-disk cache) on first use, not at import,
and once loaded behave as eagerly compiled ones: every declared signature,
compilation disabled, a call with unforeseen types refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from audience.engine.kernels import filters, postings
from audience.engine.kernels.config import njit


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
