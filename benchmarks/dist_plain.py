"""What the machine allows each workload, without any cluster: the shards'
evaluation in plain processes (bench_dist's "plain" configurations).

Each process opens the store, keeps the shards it is given and evaluates
them as a worker does (``evaluate_shard``, its kernels on the same thread
count, freed memory kept as a worker keeps it), one query at a time, when
this process sends it the program over a pipe.  Only the evaluation times
come back: no member ids travel and nothing is merged, so two processes
against one is the most any cluster of two workers could gain on that
workload, on this machine, in this run."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
from typing import Any

from audience.dist import QueryTimes
from audience.runtime.node import ShardedNode
from audience.runtime.shards import ShardRef


def _serve(conn: Any, refs: list[ShardRef], threads: int | None) -> None:
    """A plain process: evaluate this process's shards for each program
    sent, until None comes."""
    from audience.dist.worker import evaluate_shard, keep_freed_memory

    if threads is not None:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    keep_freed_memory()
    conn.send(os.getpid())
    while (request := conn.recv()) is not None:
        body, at = request
        program = pickle.loads(body)
        conn.send([evaluate_shard(ref, program, at).eval_ms for ref in refs])


class PlainProcesses:
    """``groups[i]``: the shard indexes of ``store`` the i-th process
    evaluates.  Quacks as a ``ClusterStore`` does for bench_dist's query
    loop (``sharded``, ``run``); ``close`` ends the processes."""

    def __init__(self, store: ShardedNode, groups: list[list[int]], threads: int | None) -> None:
        self.sharded = store
        self.groups = groups
        every = store.refs()
        ctx = multiprocessing.get_context("spawn")  # numba's threads do not survive a fork
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        for indexes in groups:
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_serve, args=(theirs, [every[i] for i in indexes], threads), daemon=True
            )
            proc.start()
            self._conns.append(mine)
            self._procs.append(proc)
        self.pids = [conn.recv() for conn in self._conns]
        self._bodies: dict[int, tuple[Any, bytes]] = {}

    def run(self, program: Any, at: int, refs: Any = None) -> tuple[None, QueryTimes]:
        """Every process evaluates its shards at once; their times (the
        total is the round over the pipes, which carry no answers)."""
        if refs is not None:
            raise ValueError("plain processes evaluate every shard of their store")
        kept = self._bodies.get(id(program))
        if kept is None or kept[0] is not program:
            kept = self._bodies[id(program)] = (program, pickle.dumps(program, protocol=5))
        t0 = time.perf_counter()
        for conn in self._conns:
            conn.send((kept[1], at))
        replies = [conn.recv() for conn in self._conns]
        total = (time.perf_counter() - t0) * 1000
        shards = tuple(ms for reply in replies for ms in reply)
        pids = tuple(pid for pid, reply in zip(self.pids, replies, strict=True) for _ in reply)
        times = QueryTimes(
            shards_ms=shards,
            opens_ms=(0.0,) * len(shards),
            merge_ms=0.0,
            total_ms=total,
            worker_pids=pids,
        )
        return None, times

    def close(self) -> None:
        for conn in self._conns:
            conn.send(None)
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()

    def __enter__(self) -> PlainProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
