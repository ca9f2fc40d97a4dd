"""Numba's runtime (NRT) started with its own functions' machine code read
from disk, as numba reads a cached kernel's.

Before the first cached kernel is linked, numba's runtime must be started:
``rtsys.initialize`` generates the LLVM IR of a handful of functions
(reference counts, atomics) and compiles it, ~35 ms of every new process's
first evaluation, for the same machine code each time.  ``initialize`` here
does the same, except that the compiled library is kept next to the
kernels' own cache (``cache_dir``) and, when there, loaded instead of
compiled: as numba does for a kernel, the object code and the bitcode other
libraries link against, keyed by what numba keys its cache on (its version,
the target triple, CPU name and features).  Anything unexpected (no cache
directory, an unreadable or stale file, a numba without these internals)
falls back to numba's own compilation.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def initialize(ctx: Any, cache_dir: str | None) -> None:
    """``rtsys.initialize(ctx)``, the NRT's library loaded from ``cache_dir``
    when it was saved there (and saved there when not)."""
    from numba.core.runtime import nrtdynmod, rtsys

    if rtsys._init or cache_dir is None:
        rtsys.initialize(ctx)
        return
    real = nrtdynmod.compile_nrt_functions

    def cached(ctx: Any) -> Any:
        try:
            path = _path(ctx, cache_dir)
            create = nrtdynmod.create_nrt_module
        except Exception:  # a numba without these internals: its own way
            return real(ctx)
        library = _load(ctx, path)
        if library is None:
            # ``compile_nrt_functions``, its object code kept (as numba's
            # compilation of a cached kernel keeps it) to be saved
            ir_mod, library = create(ctx)
            library.enable_object_caching()
            library.add_ir_module(ir_mod)
            library.finalize()
            _save(library, path)
        return library

    # numba's ``initialize`` calls the module's function by name (and holds
    # numba's compiler lock, as every caller of this does)
    with _replaced(nrtdynmod, "compile_nrt_functions", cached):
        rtsys.initialize(ctx)


@contextlib.contextmanager
def _replaced(module: Any, name: str, value: Any) -> Iterator[None]:
    real = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, real)


def _path(ctx: Any, cache_dir: str) -> Path:
    import llvmlite
    import numba

    codegen = ctx.codegen()
    key = repr((numba.__version__, llvmlite.__version__, sys.version, codegen.magic_tuple()))
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return Path(cache_dir) / f"audience-nrt-{digest}.nrtc"


def _load(ctx: Any, path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        state = pickle.loads(data)
        return ctx.codegen().unserialize_library(state)
    except Exception:  # a damaged file: compiled again (and rewritten)
        return None


def _save(library: Any, path: Path) -> None:
    # as numba's cache: code holding addresses of this process is not kept
    if getattr(library, "has_dynamic_globals", True):
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        data = pickle.dumps(library.serialize_using_object_code(), protocol=-1)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except Exception:  # a cache that cannot be written is not one
        with contextlib.suppress(OSError):
            tmp.unlink()
