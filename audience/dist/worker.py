"""What runs inside a Dask worker: its cache of opened shards, the kernels
warmed once, the task that evaluates one shard, and the comm handlers a client
calls directly (Dask's own RPC, without the scheduler: see dist/direct.py; or
the worker's channel, a plain socket: see dist/channel.py).

Everything here is module-level state of the worker process, so a shard
opened for one query stays open (its memory maps and dictionaries) for the
next.  The functions are shipped to workers by reference (module and name):
no numba dispatcher ever travels in a pickle, since an unpickled dispatcher
compiles itself again (numba issue 3026).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import os
import pickle
import pkgutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from audience.runtime.ids import arrow_of, member_ids
from audience.runtime.shards import ShardProgram, ShardRef, open_shard
from audience.runtime.shards.program import run_on

_lock = threading.Lock()
_shards: dict[ShardRef, Any] = {}  # ShardRef -> Store, opened on this worker
_opens: dict[ShardRef, int] = {}  # how many times each shard was opened here
_kernel_threads: int | None = None  # numba threads per task (set by the plugin)
# direct calls in progress, finished (those of them through the channel),
# the programs they unpickled, and the channel's connections refused for
# a wrong token.  Its own lock, held for a count alone: the event loop takes it
_calls = {"waiting": 0, "served": 0, "channel": 0, "unpickled": 0, "refused": 0}
_calls_lock = threading.Lock()
# the programs called directly, by their pickle (the least recently used
# first): a segment's next query needs no unpickling
_programs: dict[bytes, ShardProgram] = {}
_programs_lock = threading.Lock()
KEPT_PROGRAMS = 64
# the share of a shard's contacts from which ``ids_of`` filters rather than takes
# (measured: a take is faster at 53% members, a filter at 86%)
DENSE_SHARE = 0.75

# a worker started with this set to 1 opens no channel (dist/channel.py)
NO_CHANNEL_ENV = "AUDIENCE_NO_CHANNEL"
# the comm handlers' names on a worker (the client's ``op``)
EVALUATE_OP = "audience_evaluate"
PING_OP = "audience_ping"
CHANNEL_OP = "audience_channel"


@dataclass(frozen=True)
class ShardResult:
    """One shard's answer: its members and where the time went inside the worker."""

    index: int
    members: pa.Array  # their contact ids; with ``dense``: their dense indexes (int64)
    open_ms: float  # 0 when the shard was already open
    eval_ms: float
    worker_pid: int
    version: int  # the shard's version it answered from
    contacts: int  # the shard's contacts in that version


def shard(ref: ShardRef) -> tuple[Any, float]:
    """The open shard ``ref`` (opened on first use) and the ms its opening took."""
    with _lock:
        store = _shards.get(ref)
        if store is not None:
            return store, 0.0
        t0 = time.perf_counter()
        store = open_shard(ref)
        store.snapshot().read_files()  # now, not in the first query's time
        _shards[ref] = store
        _opens[ref] = _opens.get(ref, 0) + 1
        return store, (time.perf_counter() - t0) * 1000


def evaluate_shard(
    ref: ShardRef, program: ShardProgram, as_of_ms: int, dense: bool = False
) -> ShardResult:
    """The task of one shard in one query.  ``dense``: the members' dense
    indexes rather than their ids (a client that reads the shard itself, as a
    plan's freeze does for profile fields: contact codes only ever grow, so
    they hold in any later version of the shard)."""
    use_kernel_threads()
    store, open_ms = shard(ref)
    t0 = time.perf_counter()
    # shard_members' work, keeping the snapshot: its version and contact
    # count travel back with the members
    snap = store.snapshot()
    mask, _ = run_on(snap, program, int(as_of_ms))
    members = pa.array(np.flatnonzero(mask)) if dense else ids_of(snap.contact_ids, mask)
    eval_ms = (time.perf_counter() - t0) * 1000
    return ShardResult(
        ref.index, members, open_ms, eval_ms, os.getpid(), snap.version, len(snap.contact_ids)
    )


def use_kernel_threads() -> None:
    """This worker's kernel threads (set by its plugin) for the calling
    thread: numba's thread count is per thread, so it is set where a task
    or a direct call runs."""
    if _kernel_threads is not None:
        import numba

        numba.set_num_threads(_kernel_threads)


def evaluate_shards(
    refs: tuple[ShardRef, ...], program: ShardProgram, as_of_ms: int, dense: bool = False
) -> list[ShardResult]:
    """The task of one worker in one query: every shard it owns, in turn
    (one task a worker rather than one a shard: each task is a round of
    messages between client, scheduler and worker)."""
    return [evaluate_shard(ref, program, as_of_ms, dense) for ref in refs]


def ids_of(contact_ids: Any, mask: np.ndarray) -> pa.Array:
    """The ids of the contacts ``mask`` holds, in order: the same array as
    ``member_ids(contact_ids, np.flatnonzero(mask))``.  When most contacts
    are members, Arrow's filter reads the ids in order, which the memory's
    prefetching serves; a take jumps to each member's id, and each jump
    waits on the memory, longer while the other workers scan (at 50M
    events, 370k members of a shard's 416k: 3 ms against 9 to 12)."""
    arr = arrow_of(contact_ids)
    dense = np.count_nonzero(mask) >= DENSE_SHARE * len(mask)
    if arr is not None and len(arr) == len(mask) and dense:
        return arr.filter(pa.array(mask, pa.bool_()))
    return member_ids(contact_ids, np.flatnonzero(mask))


def ping() -> int:
    """The empty task: the scheduling round trip alone."""
    return 0


def stats() -> dict[str, Any]:
    """This worker's open shards and open counts (read with ``client.run``)."""
    with _lock:
        return {
            "pid": os.getpid(),
            "open": sorted((r.store, r.node, r.index) for r in _shards),
            "opens": {f"{r.store}#{r.node}#{r.index}": n for r, n in _opens.items()},
            "kernels": kernel_stats(),
            "direct_calls": calls(),
        }


def calls() -> dict[str, int]:
    """The direct calls' counters (see ``_calls``), without waiting on a shard's opening."""
    with _calls_lock:
        return dict(_calls)


def forget_shards() -> int:
    """Close every shard this worker holds (a store changed on disk); how many."""
    with _lock:
        n = len(_shards)
        _shards.clear()
        return n


# ------------------------------------------------------------------- kernels
def kernel_modules() -> list[str]:
    import audience.engine.kernels as kernels

    return [f"{kernels.__name__}.{m.name}" for m in pkgutil.iter_modules(kernels.__path__)]


def warm_kernels(threads: int | None = None) -> int:
    """Import the evaluator's kernels and load every one of them now (from
    numba's on-disk cache, compiling what is not there); how many.  With
    ``threads``, the kernels' thread pool is limited to that many."""
    import numba

    from audience.engine.kernels.config import _lazy_dispatcher

    global _kernel_threads
    if threads is not None:
        most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
        _kernel_threads = max(1, min(threads, most))
    lazy = _lazy_dispatcher()
    loaded = 0
    for name in kernel_modules():
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, lazy):
                value.load()
                loaded += 1
    # the evaluator's modules too, so the first query imports nothing
    importlib.import_module("audience.engine.execute")
    importlib.import_module("audience.runtime.store")
    return loaded


def kernel_stats() -> dict[str, int]:
    """Over every numba dispatcher this process has loaded from audience: the
    compiled signatures and numba's cache misses (each a compilation)."""
    from numba.core.dispatcher import Dispatcher

    signatures = misses = 0
    seen: set[int] = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("audience.") or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher) and id(value) not in seen:
                seen.add(id(value))
                signatures += len(value.signatures)
                misses += sum(value.stats.cache_misses.values())
    return {"dispatchers": len(seen), "signatures": signatures, "cache_misses": misses}


# glibc's mallopt parameters (malloc.h) and the values set in a worker: an
# allocation up to 32 MiB (glibc's largest mmap threshold) comes from the
# heap, and up to 64 MiB freed at its top stays there for the next query
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 64 * 2**20


def keep_freed_memory() -> bool:
    """Let this process's malloc keep the memory a query frees for the next
    query; False where the C library is not glibc.

    Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536``
    (distributed.yaml, ``pre-spawn-environ``), which also fixes glibc's mmap
    threshold at 128 KiB: every per-contact array of a query is then mapped
    fresh and returned at its end, and the next query faults its pages in
    again (at 25M events a shard, 200 to 4,000 page faults a query: 1 to
    2 ms of a 2 ms query).  A worker started by any nanny gets this here,
    as it starts."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl has no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def _plugin_base() -> type:
    from distributed.diagnostics.plugin import WorkerPlugin

    return WorkerPlugin


class WarmKernels(_plugin_base()):  # type: ignore[misc]
    """Loads the kernels once per worker, as it starts (and as a restarted one
    starts again), so no query compiles or loads a kernel."""

    name = "audience-warm-kernels"

    def __init__(self, threads: int | None = None, channel: bool = True) -> None:
        self.threads = threads
        # False: no channel (dist/channel.py); clients call over Dask's comms
        self.channel = channel

    def setup(self, worker: Any) -> None:
        from audience.dist import channel

        keep_freed_memory()
        warm_kernels(self.threads)
        install_handlers(worker)
        if self.channel and os.environ.get(NO_CHANNEL_ENV) != "1":
            channel.start(worker.address)
        else:
            channel.stop()
        # what is loaded now (Dask, numba, the kernels: most of the worker's
        # objects) lives as long as the worker: kept out of the collector's
        # full passes, which otherwise walk it all (a few ms) inside a query
        gc.collect()
        gc.freeze()

    def teardown(self, worker: Any) -> None:
        from audience.dist import channel

        channel.stop()


# -------------------------------------------------------------- direct calls
def install_handlers(worker: Any) -> None:
    """The worker answers ``EVALUATE_OP`` and ``PING_OP`` from a client that
    calls it directly, over the comms Dask's servers use among themselves,
    and ``CHANNEL_OP`` with its channel's endpoint and token (None without
    one): a client that can talk to Dask may use the channel."""

    async def evaluate(fn: str, program: bytes, refs: list[list[Any]], args: list[Any]) -> dict:
        try:
            run, shards = direct_call(fn, refs)
        except LookupError as exc:
            return {"status": "error", "reason": str(exc)}
        # off the event loop, in the worker's own executor (its threads, the
        # same budget as its tasks): heartbeats and other comms go on meanwhile
        with counted():
            executor = worker.executors["default"]
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(executor, run, shards, unpickled(program), *args)
        return {"status": "OK", "results": _pickled(results)}

    async def ping() -> dict:
        return {"status": "OK", "pid": os.getpid()}

    async def channel_endpoint() -> dict:
        from audience.dist import channel

        return {"status": "OK", "channel": channel.endpoint()}

    worker.handlers[EVALUATE_OP] = evaluate
    worker.handlers[PING_OP] = ping
    worker.handlers[CHANNEL_OP] = channel_endpoint


def direct_call(fn: str, refs: list[list[Any]]) -> tuple[Any, tuple[ShardRef, ...]]:
    """The function a direct call names (``direct_functions``) and the
    shards it lists; LookupError for a name that is not one."""
    run = direct_functions().get(fn)
    if run is None:
        raise LookupError(f"no function {fn!r} to call directly")
    return run, tuple(ShardRef(*ref) for ref in refs)


def direct_functions() -> dict[str, Any]:
    """What a client may have a worker run by a direct call, by name: each
    takes the worker's shards first and returns a list, one item a shard."""
    from audience.dist.details import answer_shards

    return {"members": evaluate_shards, "details": answer_shards}


@contextlib.contextmanager
def counted(channel: bool = False) -> Iterator[None]:
    """One direct call, counted while it waits and once served (``channel``:
    one that came through the channel)."""
    count_call("waiting")
    try:
        yield
    finally:
        with _calls_lock:
            _calls["waiting"] -= 1
            _calls["served"] += 1
            if channel:
                _calls["channel"] += 1


def count_call(counter: str) -> None:
    with _calls_lock:
        _calls[counter] += 1


def _pickled(value: Any) -> Any:
    """``value`` pickled inside a message (a message is otherwise msgpack):
    pickled as it is, its Arrow buffers beside the pickle rather than
    copied into it; not through Dask's serializers, whose look-up by type
    for each item costs more than the pickle of a shard's answer."""
    from distributed.protocol.serialize import ToPickle

    return ToPickle(value)


def unpickled(body: bytes) -> ShardProgram:
    """The program pickled in ``body``: unpickled once, kept for the next
    queries of the same segment."""
    with _programs_lock:
        program = _programs.pop(body, None)
    if program is None:
        program = pickle.loads(body)
        count_call("unpickled")
        if not isinstance(program, ShardProgram):
            raise TypeError(f"not a program: {type(program).__name__}")
    with _programs_lock:
        while len(_programs) >= KEPT_PROGRAMS:
            del _programs[next(iter(_programs))]
        _programs[body] = program  # the newest last
    return program
