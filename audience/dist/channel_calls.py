"""The client's side of the channel (dist/channel.py): a query's direct calls
over plain sockets to the workers, each of them the request written to every
owner first, then the replies read, so the owners work at once.

Each worker's endpoint and token come from its Dask comm handler, once per
``Membership`` generation (a worker joining or leaving, or a failed call,
makes a new one).  Connections are pooled per thread and worker: a store may
be queried from several threads at once (the HTTP server), and a connection
carries one request at a time.  A worker without a channel is called over
Dask's comms (dist/direct.py), as is one whose endpoint could not be asked.
A call that fails is returned as its error, as ``direct.call_all`` does, and
its connection is dropped.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from audience.dist import direct
from audience.dist.channel import PING, ChannelError, no_delay, read_frames, send_frames
from audience.dist.worker import CHANNEL_OP

if TYPE_CHECKING:
    from audience.runtime.shards import ShardProgram, ShardRef

# a reply may carry a shard's every member id and more
MAX_REPLY = 1 << 40


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    token: bytes


class Channels:
    """The channels of one client's workers (``channels``)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.members = direct.membership(client)
        self._endpoints: dict[str, Endpoint | None] = {}
        self._generation = -1  # the membership's generation ``_endpoints`` were asked in
        self._lock = threading.Lock()
        self._local = threading.local()  # .pool: Endpoint -> socket, .generation
        self._open: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._closed = False

    def endpoints(
        self, workers: list[str], timeouts: direct.Timeouts
    ) -> dict[str, Endpoint | None]:
        """Each worker's channel (None: none, call it over Dask's comms)."""
        with self._lock:
            generation = self.members.generation
            if generation != self._generation:
                self._endpoints = {}
                self._generation = generation
            missing = [w for w in workers if w not in self._endpoints]
            if missing:
                self._endpoints.update(self._ask(missing, timeouts))
            return {w: self._endpoints[w] for w in workers}

    def _ask(self, workers: list[str], timeouts: direct.Timeouts) -> dict[str, Endpoint | None]:
        async def every() -> list[Any]:
            return await asyncio.gather(
                *(direct._call(self.client, w, CHANNEL_OP, timeouts) for w in workers),
                return_exceptions=True,
            )

        out: dict[str, Endpoint | None] = {}
        for worker, reply in zip(workers, self.client.sync(every), strict=True):
            found = None if isinstance(reply, BaseException) else reply.get("channel")
            out[worker] = None if found is None else Endpoint(**found)
        return out

    def _pool(self) -> dict[Endpoint, socket.socket]:
        local = self._local
        pool: dict[Endpoint, socket.socket] | None = getattr(local, "pool", None)
        if pool is None:
            pool = local.pool = {}
            local.generation = self._generation
        if local.generation != self._generation:
            # connections to endpoints of an earlier membership: closed
            current = set(self._endpoints.values())
            for ep in [ep for ep in pool if ep not in current]:
                pool.pop(ep).close()
            local.generation = self._generation
        return pool

    def _connect(self, ep: Endpoint, timeouts: direct.Timeouts) -> socket.socket:
        pool = self._pool()
        sock = pool.get(ep)
        if sock is None:
            if self._closed:
                raise ChannelError("the client's channels are closed")
            sock = socket.create_connection((ep.host, ep.port), timeout=timeouts.connect_s)
            no_delay(sock)
            sock.sendall(ep.token)
            pool[ep] = sock
            self._open.add(sock)
        return sock

    def _drop(self, ep: Endpoint) -> None:
        sock = self._pool().pop(ep, None)
        if sock is not None:
            sock.close()

    def call_all(
        self,
        calls: Mapping[str, tuple[ShardRef, ...]],
        fn: str,
        program: ShardProgram,
        args: tuple[Any, ...],
        timeouts: direct.Timeouts,
    ) -> dict[str, list[Any] | BaseException]:
        """As ``direct.call_all``: each owner's answer, or its call's error."""
        body = direct.program_bytes(program)

        def request(refs: tuple[ShardRef, ...]) -> list[Any]:
            shards = [[r.store, r.node, r.index, r.count] for r in refs]
            return [msgpack.packb({"fn": fn, "refs": shards, "args": list(args)}), body]

        def answer(frames: list[memoryview]) -> list[Any]:
            results: list[Any] = pickle.loads(frames[1], buffers=frames[2:])
            return results

        return self._round(calls, request, answer, timeouts, fn, program, args)

    def ping_all(self, workers: list[str], timeouts: direct.Timeouts) -> dict[str, int]:
        """Each worker's pid, from an empty call (the round trip alone)."""
        ping = [msgpack.packb({"fn": PING})]
        calls = dict.fromkeys(workers, ())
        replies = self._round(calls, lambda _: ping, None, timeouts, PING, None, ())
        for reply in replies.values():
            if isinstance(reply, BaseException):
                raise reply
        return {w: int(r) for w, r in replies.items()}

    def _round(
        self,
        calls: Mapping[str, tuple[ShardRef, ...]],
        request: Any,
        answer: Any,
        timeouts: direct.Timeouts,
        fn: str,
        program: ShardProgram | None,
        args: tuple[Any, ...],
    ) -> dict[str, Any]:
        """Every request sent, then every reply read (``answer`` of its
        frames; without one, the worker's pid)."""
        endpoints = self.endpoints(list(calls), timeouts)
        deadline = time.monotonic() + timeouts.call_s
        out: dict[str, Any] = {}
        sent: dict[str, tuple[Endpoint, socket.socket]] = {}
        for owner, refs in calls.items():
            ep = endpoints[owner]
            if ep is None:
                continue
            try:
                sock = self._connect(ep, timeouts)
                sock.settimeout(timeouts.call_s)
                send_frames(sock, request(refs))
                sent[owner] = (ep, sock)
            except Exception as exc:
                self._drop(ep)
                out[owner] = exc
        rest = {o: refs for o, refs in calls.items() if endpoints[o] is None}
        if rest and program is not None:
            out.update(direct.call_all(self.client, rest, fn, program, args, timeouts))
        elif rest:
            pids = direct.ping_all(self.client, list(rest), timeouts)
            out.update(pids)
        for owner, (ep, sock) in sent.items():
            try:
                sock.settimeout(max(deadline - time.monotonic(), 1e-3))
                frames = read_frames(sock, MAX_REPLY)
                if frames is None:
                    raise ConnectionResetError(f"{owner} closed the channel")
                header = msgpack.unpackb(frames[0])
                if not header["ok"]:  # the worker's error: the connection holds
                    out[owner] = ChannelError(f"{owner}: {header['error']}")
                else:
                    out[owner] = header["pid"] if answer is None else answer(frames)
            except Exception as exc:  # cut, refused, timed out, not a message
                self._drop(ep)
                out[owner] = exc
        return {o: out[o] for o in calls}

    def close(self) -> None:
        """Close every connection of every thread."""
        self._closed = True
        for sock in list(self._open):
            sock.close()


# the ``Channels`` of a client
channels: direct.PerClient[Channels] = direct.PerClient(Channels)


def close_channels(client: Any) -> None:
    """Close ``client``'s channels, if it has any (as it closes)."""
    found = channels.pop(client)
    if found is not None:
        found.close()
