"""The client's side of the direct path: a query's program sent to the
shards' owners themselves, over Dask's own comms (the pooled connections the
scheduler and workers use among themselves), every owner at once, with no
task and no scheduler in between.  A worker with a channel is called over it
instead (dist/channel_calls.py): this path serves those without one.

The scheduler stays in charge of who is in the cluster: ``Membership`` asks
it for the workers once, then again only when it announces a worker joining
or leaving (or when a call failed).  A call that fails (the worker killed,
gone, hung) is the caller's to answer another way: ``call_all`` returns the
error in place of that owner's answer.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from audience.dist.cluster import EVENTS_TOPIC
from audience.dist.worker import EVALUATE_OP, PING_OP
from audience.runtime.shards import ShardRef

if TYPE_CHECKING:
    from audience.runtime.shards import ShardProgram

T = TypeVar("T")

# the scheduler's events that change who owns the shards
MEMBERSHIP_ACTIONS = frozenset({"add-worker", "remove-worker"})


@dataclass(frozen=True)
class Timeouts:
    """Seconds a direct call may take: to connect (a worker that left
    refuses at once, but Dask's connect retries until its own timeout, 30 s
    by default) and to answer (a hung worker; a query's evaluation on its
    shards must fit in it)."""

    connect_s: float = 5.0
    call_s: float = 120.0


class DirectCallError(Exception):
    """A worker's reply that is not an answer (say, a worker without the
    audience plugin, hence without the handlers)."""


class Membership:
    """The cluster's workers in address order, as the scheduler last told
    this client; asked again after it announced a change or after
    ``invalidate``.  One per client (``membership``), shared by the stores
    on it: the client has one handler per event topic."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._changes = itertools.count(1)
        self.generation = 0  # bumped by each change announced
        self._seen = -1  # the generation ``_workers`` was read in
        self._workers: tuple[str, ...] = ()
        self._lock = threading.Lock()
        # the handler runs on the client's event loop: it only bumps the
        # counter (taking ``_lock`` there could wait on a thread that waits
        # on that loop).  A client that ``connect`` made unsubscribes as it
        # closes; one made by the caller leaves a critical line in the
        # scheduler's log when it closes, nothing worse
        client.subscribe_topic(EVENTS_TOPIC, self._on_event)

    def _on_event(self, event: tuple[float, Any]) -> None:
        _, msg = event
        if isinstance(msg, dict) and msg.get("action") in MEMBERSHIP_ACTIONS:
            self.invalidate()

    def invalidate(self) -> None:
        self.generation = next(self._changes)

    def workers(self) -> tuple[str, ...]:
        with self._lock:
            generation = self.generation
            if self._seen != generation or not self._workers:
                info = self.client.scheduler_info()["workers"]
                if not info:
                    self.client.wait_for_workers(1)
                    info = self.client.scheduler_info()["workers"]
                self._workers = tuple(sorted(info))
                self._seen = generation
            return self._workers


class PerClient(Generic[T]):
    """One ``make(client)`` per Dask client, made on first use and gone with
    the client (weakly keyed): a client's membership, its channels."""

    def __init__(self, make: Callable[[Any], T]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[Any, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, client: Any) -> T:
        with self._lock:
            found = self._made.get(client)
            if found is None:
                found = self._made[client] = self._make(client)
            return found

    def pop(self, client: Any) -> T | None:
        """The client's, if made, forgotten here."""
        with self._lock:
            return self._made.pop(client, None)


# the ``Membership`` of a client
membership: PerClient[Membership] = PerClient(Membership)


async def _call(client: Any, address: str, op: str, timeouts: Timeouts, **msg: Any) -> Any:
    """One message to the worker at ``address`` and its reply, over the
    client's connection pool."""
    from distributed.core import send_recv

    pool = client.rpc
    comm = await asyncio.wait_for(pool.connect(address), timeouts.connect_s)
    try:
        reply = await asyncio.wait_for(
            send_recv(
                comm,
                op=op,
                serializers=pool.serializers,
                deserializers=pool.deserializers,
                **msg,
            ),
            timeouts.call_s,
        )
    finally:
        pool.reuse(address, comm)  # a comm closed by a failure is dropped
    if not isinstance(reply, dict) or reply.get("status") != "OK":
        raise DirectCallError(f"{address} answered {op} with {reply!r:.200}")
    return reply


def call_all(
    client: Any,
    calls: Mapping[str, tuple[ShardRef, ...]],
    fn: str,
    program: ShardProgram,
    args: tuple[Any, ...],
    timeouts: Timeouts,
) -> dict[str, list[Any] | BaseException]:
    """Each owner's answer to ``fn`` (a name of ``worker.direct_functions``)
    over its shards, ``program`` and ``args`` (plain values: ints, bools),
    or the error its call ended with.

    The message is plain msgpack: the program pickled once for every call
    (and once per program: ``program_bytes``), the shards as lists, the
    args as they are; a worker unpickles a program it has not seen yet and
    keeps it.  Dask's serialization of a Python object costs a few tenths of
    a millisecond each way, per call: a share of a short query."""
    body = program_bytes(program)
    plain = list(args)

    async def one(address: str, refs: tuple[ShardRef, ...]) -> list[Any]:
        shards = [[r.store, r.node, r.index, r.count] for r in refs]
        reply = await _call(
            client, address, EVALUATE_OP, timeouts, fn=fn, program=body, refs=shards, args=plain
        )
        results: list[Any] = reply["results"]
        return results

    async def every() -> dict[str, list[Any] | BaseException]:
        replies = await asyncio.gather(
            *(one(a, refs) for a, refs in calls.items()), return_exceptions=True
        )
        return dict(zip(calls, replies, strict=True))

    out: dict[str, list[Any] | BaseException] = client.sync(every)
    return out


# id(program) -> (the program, kept alive so the id stays its own; its pickle)
_pickled: dict[int, tuple[ShardProgram, bytes]] = {}
_pickled_lock = threading.Lock()
PICKLED_PROGRAMS = 256


def program_bytes(program: ShardProgram) -> bytes:
    """``program`` pickled, once per program object (a compiled segment is
    evaluated again and again)."""
    with _pickled_lock:
        hit = _pickled.get(id(program))
        if hit is not None and hit[0] is program:
            return hit[1]
    body = pickle.dumps(program, protocol=pickle.HIGHEST_PROTOCOL)
    with _pickled_lock:
        if len(_pickled) >= PICKLED_PROGRAMS:
            _pickled.clear()
        _pickled[id(program)] = (program, body)
    return body


def ping_all(client: Any, addresses: list[str], timeouts: Timeouts) -> dict[str, int]:
    """Each worker's pid, from an empty direct call (the round trip alone)."""

    async def run() -> list[Any]:
        return await asyncio.gather(*(_call(client, a, PING_OP, timeouts) for a in addresses))

    replies = client.sync(run)
    return {a: r["pid"] for a, r in zip(addresses, replies, strict=True)}
