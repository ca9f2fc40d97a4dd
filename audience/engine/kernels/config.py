"""The one place the numba flags of every kernel come from.

``cache=True`` writes the compiled machine code next to the sources, so a
process pays the compilation once per kernel signature ever, never per query:
kernels are generic over the plan (lookup tables, op codes and bounds are
arguments), so a never-seen segment text runs already-compiled code.
``nogil=True`` lets several threads evaluate at once.

Every kernel is declared with explicit signatures whose input arrays are
read-only C arrays: a writable array converts to that type, so a store's
read-only (memory-mapped Arrow) arrays and the evaluator's own arrays share
one compiled version, and a call with unforeseen types fails loudly instead
of compiling on the query path.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from numba import types

NJIT: dict[str, Any] = dict(cache=True, nogil=True)
PARALLEL: dict[str, Any] = dict(cache=True, nogil=True, parallel=True)
# below this many rows a pass runs on one thread: waking the pool and merging
# the threads' per-contact outputs cost more than they save, and on a busy
# machine a thread that waits for a core stalls the whole pass
PARALLEL_MIN_ROWS = 2_000_000
# ``count_distinct`` pairs get threads sooner: its threads own disjoint
# buckets of contacts, so there are no per-thread outputs to merge (at 10M
# events, 1.2M pairs: 16 ms on two threads against 20 ms on one)
PARALLEL_MIN_PAIRS = 200_000

# Comparison op codes shared by the compare kernels and the compiler.
OP_CODES: dict[str, int] = {"=": 0, "!=": 1, "<": 2, "<=": 3, ">": 4, ">=": 5}

B = types.boolean
I32 = types.int32
I64 = types.int64
F64 = types.float64
U8 = types.uint8


def ro(dtype: Any) -> types.Array:
    """A read-only (input) 1-d C array type."""
    return types.Array(dtype, 1, "C", readonly=True)


def rw(dtype: Any) -> types.Array:
    """A writable (output) 1-d C array type."""
    return types.Array(dtype, 1, "C")


# the value dtypes a compare or aggregate kernel reads: int, float, date, bool (as uint8)
VALUE_TYPES = (I64, F64, I32, U8)


def njit(sigs: Any = None, **flags: Any) -> Any:
    """``numba.njit``, except that the explicit signatures are compiled (or,
    as a rule, loaded from the on-disk cache) on the kernel's first use, not
    at import: a process that evaluates one segment loads the kernels it runs
    only, and one that does not evaluate (the CLI's help, a store command)
    loads none.  Once loaded, a kernel is exactly what ``numba.njit(sigs)``
    makes: its compilation is disabled, so a call with unforeseen types fails.
    Without signatures, a kernel is numba's lazy one (a version per argument
    types of its calls).  Either way, machine code in numba's cache is loaded
    without numba's refresh of its registries (see ``_load_cached``)."""
    if callable(sigs):  # ``@njit`` without arguments
        return njit()(sigs)
    listed = None if sigs is None else list(sigs) if isinstance(sigs, list | tuple) else [sigs]

    options = dict(flags)
    cache = options.pop("cache", False)
    options["nopython"] = True
    options.setdefault("boundscheck", None)

    def wrap(fn: Any) -> Any:
        disp = _lazy_dispatcher()(fn, {}, options)
        disp.pending = listed
        if cache and listed is None:
            disp.enable_caching()  # numba's lazy kernel: its first call compiles
        elif cache:
            # numba's cache of a kernel (a locator that tests its directory by
            # writing a file) is made at its first load: most kernels a
            # process imports, it never loads
            disp.cache_wanted = True
        return disp

    return wrap


_LAZY: Any = None


def _lazy_dispatcher() -> Any:
    """The dispatcher class (made once: it subclasses numba's)."""
    global _LAZY
    if _LAZY is not None:
        return _LAZY
    import threading

    import numpy as np
    from numba.core import sigutils, typeinfer
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.errors import NumbaNotImplementedError
    from numba.core.registry import CPUDispatcher
    from numba.np import numpy_support

    from audience.engine.kernels import nrt_cache

    class LazyDispatcher(CPUDispatcher):
        # numba's constructor signature is kept (it rebuilds dispatchers so);
        # ``pending``, the signatures not loaded yet, is set by ``njit``
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.pending: list[Any] | None = None
            self.cache_wanted = False  # enable numba's caching at the first load
            self._load_lock = threading.Lock()

        def load(self) -> None:
            """Compile (load from the cache) the declared signatures now."""
            self._load_some(None)

        def _load_some(self, args: tuple[Any, ...] | None) -> None:
            """Load the pending signatures a call with ``args`` takes (a
            kernel declared for four value types and run on one loads one:
            each load costs), or all of them (``args`` None, or see
            ``_fitting``).  Compilation is disabled from the first load on; a
            later call that no loaded signature takes loads the ones it
            needs in ``_search_new_conversions``."""
            with self._load_lock:
                if self.pending is None:
                    return
                if self.cache_wanted:
                    self.enable_caching()
                    self.cache_wanted = False
                todo = self.pending if args is None else self._fitting(args)
                self.disable_compile(False)  # (``compile`` loads only when enabled)
                try:
                    with typeinfer.register_dispatcher(self):
                        for sig in todo:
                            self.compile(sig)
                finally:
                    self.disable_compile()
                rest = [s for s in self.pending if s not in todo]
                self.pending = rest or None

        def _fitting(self, args: tuple[Any, ...]) -> list[Any]:
            """The pending signatures every one of ``args`` converts to, if
            each of them differs from each other pending one in the element
            type (or dimensions) of an array argument: arrays do not convert
            across element types, so no call a loaded signature takes could
            have taken a pending one instead, and the one numba picks is the
            one it would pick among all.  Otherwise every pending one."""
            pending = list(self.pending or [])
            try:
                actual = [self.typeof_pyval(a) for a in args]
            except Exception:  # an argument numba cannot type: numba says so
                return pending
            formal = {s: sigutils.normalize_signature(s)[0] for s in pending}
            fits = [
                s
                for s in pending
                if len(formal[s]) == len(actual)
                and all(
                    self.typingctx.can_convert(a, f) is not None
                    for a, f in zip(actual, formal[s], strict=True)
                )
            ]
            rest = [s for s in pending if s not in fits]
            if fits and all(_apart(formal[f], formal[r]) for f in fits for r in rest):
                return fits
            return pending

        def _search_new_conversions(self, *args: Any, **kws: Any) -> bool:
            # numba's dispatcher calls this when no loaded signature takes a
            # call's arguments as they are (compilation disabled): first the
            # conversions to the loaded ones (a writable array to a read-only
            # one), then, if none, the pending signatures the call needs
            found: bool = super()._search_new_conversions(*args, **kws)  # type: ignore[misc]
            if found or self.pending is None:
                return found
            self._load_some(None if kws else args)
            return bool(super()._search_new_conversions(*args, **kws))  # type: ignore[misc]

        def compile(self, sig: Any) -> Any:
            # a cache hit as numba's own, less the refresh; anything else
            # (a miss, compilation disabled) is numba's
            if getattr(self, "_can_compile", False) and self._load_cached(sig):
                args, _ = sigutils.normalize_signature(sig)
                return self.overloads[tuple(args)].entry_point  # type: ignore[attr-defined]
            return super().compile(sig)

        def _load_cached(self, sig: Any) -> bool:
            """Load one signature from numba's on-disk cache, as ``compile``
            does on a hit, but without the refresh of numba's whole typing and
            lowering registries that ``compile`` does first (importing and
            installing them is 0.2-0.3 s of a new process's first kernel, and
            machine code read from the cache needs none of it; a real
            compilation still refreshes them itself).  False: not cached."""
            load = getattr(self._cache, "_load_overload", None)  # type: ignore[attr-defined]
            if load is None:  # caching off
                return False
            args, _ = sigutils.normalize_signature(sig)
            with global_compiler_lock:  # (two threads' first calls load once)
                if tuple(args) in self.overloads:
                    return True
                # the runtime's symbols (allocation, reference counts) must be
                # known before cached code that uses them is linked
                cache_dir = getattr(self._cache, "_cache_path", None)  # type: ignore[attr-defined]
                nrt_cache.initialize(self.targetctx, cache_dir)
                with _environments_unimported():
                    cres = load(sig, self.targetctx)
                if cres is None:
                    return False
                self._cache_hits[sig] += 1  # type: ignore[attr-defined]
                if not cres.objectmode:
                    self.targetctx.insert_user_function(
                        cres.entry_point, cres.fndesc, [cres.library]
                    )
                self.add_overload(cres)
            return True

        def _compile_for_args(self, *args: Any, **kws: Any) -> Any:
            # the first call from Python: load the signatures; what this
            # returns is called with the arguments, so hand back the
            # dispatcher, which now chooses among them as an eager one does
            if self.pending is not None:
                self._load_some(None if kws else args)
                return self
            return super()._compile_for_args(*args, **kws)  # type: ignore[misc]

        def get_call_template(self, args: Any, kws: Any) -> Any:
            # the first call from another kernel being compiled
            if self.pending is not None:
                self.load()
            return super().get_call_template(args, kws)

        def typeof_pyval(self, val: Any) -> Any:
            # numba's dispatcher asks this the first time it meets an array of
            # a new kind (dtype, dimensions, layout); numba's answer checks
            # for a ``numpy.ma`` masked array first, which imports numpy.ma
            # (~40 ms of a new process's first kernel call).  A plain ndarray
            # is not one: its type is read off it as numba does (typeof.py)
            if type(val) is not np.ndarray:
                return super().typeof_pyval(val)
            try:
                dtype = numpy_support.from_dtype(val.dtype)
            except NumbaNotImplementedError:  # numba words the error
                return super().typeof_pyval(val)
            layout = numpy_support.map_layout(val)
            tp = types.Array(dtype, val.ndim, layout, readonly=not val.flags.writeable)
            self._types_active_call.add(tp)  # type: ignore[attr-defined]  # as numba's own
            return tp

    _LAZY = LazyDispatcher
    return _LAZY


@contextlib.contextmanager
def _environments_unimported() -> Iterator[None]:
    """While cached machine code is read: a function's environment (its
    module's globals, for object mode, and its constants) is rebuilt without
    importing a module not imported yet.  Numba imports it: a kernel that
    takes a view of an array or allocates one carries an environment of
    ``numba.np.arrayobj``, whose import (with the string and unicode support
    it pulls) is ~0.1 s of a new process's first kernel, for globals that
    nopython code never reads (it reads the constants, rebuilt as numba
    does).  Our kernels are all nopython (``njit``)."""
    from numba.core import environment

    real = environment._rebuild_env

    def rebuild(modname: str, consts: list[Any], env_name: str) -> Any:
        env = environment.lookup_environment(env_name)
        if env is not None:
            return env
        mod = sys.modules.get(modname)
        env = environment.Environment(mod.__dict__ if mod is not None else {"__name__": modname})
        env.consts[:] = consts
        env.env_name = env_name
        environment.Environment._memo[env_name] = env
        return env

    environment._rebuild_env = rebuild  # (callers hold numba's compiler lock)
    try:
        yield
    finally:
        environment._rebuild_env = real


def _apart(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Whether two argument lists have arrays of different element types or
    dimensions at some position (no array converts to the other)."""
    return any(
        isinstance(x, types.Array)
        and isinstance(y, types.Array)
        and (x.dtype != y.dtype or x.ndim != y.ndim)
        for x, y in zip(a, b, strict=False)
    )
