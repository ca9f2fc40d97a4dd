"""Real servers on loopback for the delivery tests: SMTP (aiosmtpd) and HTTP."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpSink:
    """Keeps every message it accepted; ``slow_step`` delays one SMTP step (for
    "data": the answer, after the message is queued)."""

    slow_step: str | None = None  # "rcpt" or "data"
    delay: float = 0.0
    refuse_rcpt: set[str] = field(default_factory=set)
    replies: dict[str, str] = field(default_factory=dict)  # recipient -> its RCPT refusal
    data_replies: dict[str, str] = field(default_factory=dict)  # recipient -> DATA's refusal
    rcpts_per_mail: list[int] = field(default_factory=list)  # RCPTs of each accepted message
    received: list[EmailMessage] = field(default_factory=list)
    mail_from: list[str] = field(default_factory=list)  # each received message's envelope sender
    entered: list[str] = field(default_factory=list)  # steps begun, in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        self.entered.append("rcpt")
        if self.slow_step == "rcpt":
            await asyncio.sleep(self.delay)
        if address in self.refuse_rcpt:
            return "550 no such user here"
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.entered.append("data")
        refusal = next(
            (self.data_replies[r] for r in envelope.rcpt_tos if r in self.data_replies), None
        )
        if refusal is not None:  # refused after reading it (a content filter): not queued
            return refusal
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.received.append(msg)  # queued, as an MTA does before it answers
            self.mail_from.append(envelope.mail_from)
            self.rcpts_per_mail.append(len(envelope.rcpt_tos))
        if self.slow_step == "data":
            await asyncio.sleep(self.delay)  # the answer is late: the client may never see it
        return "250 Message accepted for delivery"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [str(m["Message-ID"]) for m in self.received]


@contextmanager
def smtp_server(sink: SmtpSink) -> Iterator[int]:
    port = free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield port
    finally:
        ctl.stop()


@dataclass
class HttpSink:
    """Answers POSTs with ``statuses`` in turn (then 200) and keeps what came."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)


@contextmanager
def http_server(sink: HttpSink) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            sink.requests.append((self.path, dict(self.headers), json.loads(body)))
            status = sink.statuses.pop(0) if sink.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
