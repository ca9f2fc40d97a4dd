"""The inbound SMTP receiver (``audience inbound STORE``): aiosmtpd on a
socket of its own, taking mail for ``bounces`` and ``bounces+TOKEN`` at the
store's return-path domain and nobody else (a relay it is not).

Each message is handed to ``Inbound.receive`` (record.py) off the event
loop, then answered ``250``: a report recorded or a message recorded as
rejected, either way the sending MTA must not retry or bounce it back.
Limits, so one client cannot stop the others: a message over ``max_bytes``
is refused ``552`` (announced by the SIZE extension, and recorded as
rejected ``too_large``); a client idle for ``timeout`` seconds, or in DATA
that long, is disconnected; a client sending commands that are not SMTP
gets ``500`` and, after a few, is disconnected.  The events are ingested
into their nodes by a thread of the process (the tracking outbox's
``Ingester``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from audience.runtime.bounces import verp
from audience.runtime.bounces.record import MAX_BYTES, TOO_LARGE, Envelope, Inbound, signer_for
from audience.runtime.delivery.log import DeliveryLog
from audience.runtime.delivery.model import wall_ms
from audience.runtime.tracking.config import TrackingConfig
from audience.runtime.tracking.outbox import Ingester, drain_all, node_stores

MAX_RECIPIENTS = 100
log = logging.getLogger("audience.inbound")


class Handler:
    def __init__(self, inbound: Inbound, domain: str | None, executor: ThreadPoolExecutor):
        self.inbound = inbound
        self.domain = domain
        self.executor = executor
        self.after: Callable[[], None] = lambda: None  # called after each recorded message
        self.received = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if not verp.is_ours(address, self.domain):
            return "550 5.1.1 no such mailbox here (this server takes bounces only)"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or b""
        env = Envelope("smtp", envelope.mail_from, tuple(envelope.rcpt_tos))
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.executor, self.inbound.receive, raw, env)
        except Exception:  # the log could not be written: the sender keeps it and retries
            log.exception("a message from %s not recorded", envelope.mail_from)
            return "451 4.3.0 cannot record the message now, try again later"
        self.received += 1
        self.after()
        return "250 2.0.0 OK"


class Receiver(SMTP):
    """aiosmtpd's SMTP session, recording the messages it refuses as too large."""

    def __init__(self, handler: Handler, **kw: Any) -> None:
        super().__init__(handler, **kw)
        self._handler = handler

    async def push(self, status: Any) -> None:
        if str(status).startswith("552") and self.envelope is not None:
            # aiosmtpd refuses an oversized message itself (MAIL SIZE= or DATA):
            # the one place to see it is the reply
            env = Envelope("smtp", self.envelope.mail_from, tuple(self.envelope.rcpt_tos))
            limit = self.data_size_limit or MAX_BYTES
            self._handler.executor.submit(
                self._handler.inbound.reject, env, b"", TOO_LARGE, f"over {limit} bytes: {status}"
            )
        await super().push(status)


async def serve(
    store_root: Path,
    host: str,
    port: int,
    *,
    max_bytes: int = MAX_BYTES,
    timeout: float = 120.0,
    ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or SIGTERM / SIGINT)."""
    cfg = TrackingConfig.load(store_root)
    store_for = node_stores(store_root)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    with DeliveryLog.open(store_root) as dlog, ThreadPoolExecutor(4) as pool:
        handler = Handler(
            Inbound(dlog, signer_for(store_root), wall_ms), cfg.return_path_domain, pool
        )
        ingester = Ingester(dlog, store_for)
        handler.after = ingester.notify
        server = await loop.create_server(
            lambda: Receiver(
                handler,
                data_size_limit=max_bytes,
                timeout=timeout,
                # aiosmtpd would look up the host's FQDN per connection (DNS) without it
                hostname=cfg.return_path_domain or socket.gethostname(),
                ident="audience inbound",
            ),
            host,
            port,
        )
        try:
            bound = server.sockets[0].getsockname()
            if ready is not None:
                ready(str(bound[0]), int(bound[1]))
            await stop.wait()
        finally:
            server.close()
            await server.wait_closed()
            ingester.stop()
            with contextlib.suppress(Exception):  # what is left waits for the next drain
                drain_all(dlog, store_for)
