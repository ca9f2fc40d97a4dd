"""The worker's side of the channel: a plain TCP socket a client reaches the
worker through for its direct calls, without Dask's comms.

A direct call over Dask's comms crosses the client's event loop, the
worker's, its executor, and Dask's message encoding both ways: about 2 ms a
query, most of a short query's time beyond its shards.  Here one thread per
connection reads a request, evaluates it in that thread and writes the
answer back: the program's pickle in, the answers' pickle out with their
Arrow buffers beside it, as they are.

Only a client that can talk to Dask can use it: the worker's endpoint and
its random token are handed out by a Dask comm handler (``CHANNEL_OP``), and
a connection whose first bytes are not the token is closed before anything
it sent is read further, let alone unpickled.

The wire: a message is ``_HEAD`` (its frame count and the bytes that
follow), each frame's length, then the frames, each padded to ``ALIGN``
bytes (so an Arrow buffer read back lies where its numbers can be read in
place).  A request's frames: a msgpack header and the program's pickle; a
reply's: a msgpack header, then (for an answer) the pickle and its buffers.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import pickle
import secrets
import socket
import struct
import threading
from collections.abc import Sequence
from typing import Any

import msgpack

TOKEN_BYTES = 32
ALIGN = 8
_HEAD = struct.Struct("!IQ")
_ZEROS = bytes(ALIGN)
MAX_FRAMES = 1 << 16
# a request is a header and a program: far under this
MAX_REQUEST = 1 << 30
# a client has this long to send the token after connecting
HELLO_S = 10.0
# the buffers one sendmsg takes (Linux's IOV_MAX is 1024)
IOV_CHUNK = 512
# a request's ``fn`` for the empty call (the round trip alone)
PING = "ping"


class ChannelError(Exception):
    """A channel's message that is not one (cut short, too big), or a worker's
    error in answering it."""


# ----------------------------------------------------------------- the wire
def _padded(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def send_frames(sock: socket.socket, frames: Sequence[Any]) -> None:
    """``frames`` (bytes-like objects, ``PickleBuffer``s) as one message,
    none of them copied."""
    views = [f.raw() if isinstance(f, pickle.PickleBuffer) else memoryview(f) for f in frames]
    views = [v if v.format == "B" and v.ndim == 1 else v.cast("B") for v in views]
    lengths = [v.nbytes for v in views]
    body = 8 * len(views) + sum(_padded(n) for n in lengths)
    parts: list[Any] = [_HEAD.pack(len(views), body) + struct.pack(f"!{len(views)}Q", *lengths)]
    for v, n in zip(views, lengths, strict=True):
        parts.append(v)
        if _padded(n) != n:
            parts.append(_ZEROS[: _padded(n) - n])
    _send_all(sock, parts)


def _send_all(sock: socket.socket, parts: list[Any]) -> None:
    i = 0
    while i < len(parts):
        sent = sock.sendmsg(parts[i : i + IOV_CHUNK])
        # past the parts sent whole; the rest of one sent in part
        while i < len(parts) and sent >= len(parts[i]):
            sent -= len(parts[i])
            i += 1
        if sent:
            parts[i] = memoryview(parts[i])[sent:]


def recv_exactly(sock: socket.socket, n: int) -> bytearray | None:
    """``n`` bytes from ``sock``, or None when it closed before the first."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            if got == 0:
                return None
            raise ChannelError("the connection closed in the middle of a message")
        got += k
    return buf


def read_frames(sock: socket.socket, limit: int) -> list[memoryview] | None:
    """The frames of the next message (views of one buffer read in place),
    or None when the connection closed between messages."""
    head = recv_exactly(sock, _HEAD.size)
    if head is None:
        return None
    count, body = _HEAD.unpack(head)
    if count > MAX_FRAMES or body > limit or body < 8 * count:
        raise ChannelError(f"a message of {count} frames in {body} bytes")
    buf = recv_exactly(sock, body) if body else bytearray()
    if buf is None:
        raise ChannelError("the connection closed in the middle of a message")
    view = memoryview(buf)
    frames = []
    at = 8 * count
    for length in struct.unpack_from(f"!{count}Q", buf):
        if at + length > body:
            raise ChannelError("a frame longer than its message")
        frames.append(view[at : at + length])
        at += _padded(length)
    return frames


def no_delay(sock: socket.socket) -> None:
    # a request and its reply are single messages: nothing to wait for
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --------------------------------------------------------- the worker's side
class ChannelServer:
    """The listening socket of one worker process and its connections' threads."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.token = secrets.token_bytes(TOKEN_BYTES)
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="audience-channel", daemon=True).start()

    def endpoint(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "token": self.token}

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._conns.add(conn)
            threading.Thread(
                target=self._serve, args=(conn,), name="audience-channel-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        from audience.dist import worker

        try:
            no_delay(conn)
            conn.settimeout(HELLO_S)
            hello = recv_exactly(conn, TOKEN_BYTES)
            if hello is None or not hmac.compare_digest(bytes(hello), self.token):
                worker.count_call("refused")
                return
            conn.settimeout(None)
            while (frames := read_frames(conn, MAX_REQUEST)) is not None:
                send_frames(conn, answer(frames))
        except (OSError, ChannelError):
            pass  # the client left, or sent what is not a message: it goes
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = list(self._conns)
        # a shutdown wakes a thread blocked in accept or recv; a close alone does not
        for sock in (self._listener, *conns):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._listener.close()


def answer(frames: list[memoryview]) -> list[Any]:
    """The reply's frames to one request's, evaluated in this thread."""
    from audience.dist import worker

    try:
        header = msgpack.unpackb(frames[0])
        fn = header["fn"]
        if fn == PING:
            return [msgpack.packb({"ok": True, "pid": os.getpid()})]
        run, shards = worker.direct_call(fn, header["refs"])
        with worker.counted(channel=True):
            results = run(shards, worker.unpickled(bytes(frames[1])), *header["args"])
        buffers: list[pickle.PickleBuffer] = []
        body = pickle.dumps(results, protocol=5, buffer_callback=buffers.append)
        return [msgpack.packb({"ok": True}), body, *buffers]
    except Exception as exc:  # the client's to report; the connection goes on
        return [msgpack.packb({"ok": False, "error": f"{type(exc).__name__}: {exc}"})]


_server: ChannelServer | None = None
_server_lock = threading.Lock()


def start(address: str) -> ChannelServer | None:
    """This process's channel (started on first call) for a worker at
    ``address``; None for a worker not on plain TCP (TLS, UCX, in-process),
    whose clients keep to Dask's comms."""
    global _server
    scheme, _, rest = address.partition("://")
    if scheme != "tcp":
        return None
    host = rest.rsplit(":", 1)[0].strip("[]")
    with _server_lock:
        if _server is None:
            _server = ChannelServer(host)
        return _server


def stop() -> None:
    """Close this process's channel, if it has one."""
    global _server
    with _server_lock:
        if _server is not None:
            _server.close()
            _server = None


def endpoint() -> dict[str, Any] | None:
    """This process's channel endpoint and token, None without one."""
    server = _server
    return None if server is None else server.endpoint()
