"""Numba's runtime started from machine code kept on disk (nrt_cache.py): the
first process compiles and saves it, the next ones load it without compiling,
and in either case kernels that allocate (and new compilations that link the
runtime) run as with numba's own start; a damaged file is compiled again."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A new process: start the runtime through nrt_cache with ``cache_dir``, then
# compile and run a function that allocates (it links the runtime's library)
# and run an allocating kernel of ours; report whether the runtime's IR was
# generated (compiled) in this process.
_PROBE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import numba
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target
    from numba.core.runtime import nrtdynmod
    from audience.engine.kernels import nrt_cache

    built = []
    real = nrtdynmod.create_nrt_module
    nrtdynmod.create_nrt_module = lambda ctx: built.append(1) or real(ctx)
    with global_compiler_lock:
        nrt_cache.initialize(cpu_target.target_context, sys.argv[1])

    @numba.njit
    def fresh(n):
        a = np.empty(n, dtype=np.int64)
        for i in range(n):
            a[i] = i * i
        return a

    from audience.engine.kernels import masks
    members = masks.indexes(np.arange(100) % 20 == 0)  # (the kernel, not numpy: see masks.py)
    print(json.dumps([len(built), fresh(5).tolist(), members.tolist()]))
    """
)


def _probe(cache_dir: Path) -> list[object]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(cache_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    out: list[object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_the_runtime_is_compiled_once_then_loaded(tmp_path: Path) -> None:
    first = _probe(tmp_path)
    saved = list(tmp_path.glob("audience-nrt-*.nrtc"))
    assert first == [1, [0, 1, 4, 9, 16], [0, 20, 40, 60, 80]] and len(saved) == 1
    second = _probe(tmp_path)
    assert second == [0, [0, 1, 4, 9, 16], [0, 20, 40, 60, 80]]  # loaded: nothing generated


def test_a_damaged_file_is_compiled_again_and_rewritten(tmp_path: Path) -> None:
    _probe(tmp_path)
    (saved,) = tmp_path.glob("audience-nrt-*.nrtc")
    saved.write_bytes(b"not a pickle")
    assert _probe(tmp_path) == [1, [0, 1, 4, 9, 16], [0, 20, 40, 60, 80]]
    assert saved.read_bytes() != b"not a pickle"
    assert _probe(tmp_path)[0] == 0


def test_a_cache_directory_that_cannot_be_written_costs_a_compilation_only(tmp_path: Path) -> None:
    missing = tmp_path / "no such directory"
    assert _probe(missing) == [1, [0, 1, 4, 9, 16], [0, 20, 40, 60, 80]]
    assert not missing.exists()
