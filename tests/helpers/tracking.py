"""What the tracking tests share: a store on disk with one contact, the real
API server (waitress) on loopback with an injected clock, a real SMTP server
(aiosmtpd) catching what the worker sends, and reading the tracked links
back out of the sent message."""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

from audience.runtime.delivery import DeliveryLog, DeliveryRequest
from audience.runtime.delivery.model import Delivery, wall_ms
from audience.runtime.delivery.smtp import SmtpConfig
from audience.runtime.delivery.worker import run_worker
from audience.runtime.node import Node
from audience.runtime.tracking.config import write_setting
from audience.runtime.tracking.outbox import pending
from audience.server.app import create_app
from audience.server.context import ServerConfig
from audience.server.serve import ServerThread
from tests.helpers.mail_servers import SmtpSink, smtp_server

SCHEMA = Path(__file__).resolve().parents[2] / "audience" / "examples" / "maison.toml"
HTML = (
    "<html><body><p>Hello Angela,</p>"
    '<p><a href="https://shop.example/profile?step=1&amp;src=mail">Complete your profile</a></p>'
    '<p><a href="https://shop.example/sale">The <b>sale</b></a> '
    '<a href="mailto:care@shop.example">write to us</a> <a href="#top">top</a> '
    '<a data-notrack href="https://shop.example/legal">legal</a></p>'
    '<a style="display:none" href="https://shop.example/trap">.</a>'
    "</body></html>"
)
TEXT = "Hello Angela,\nComplete your profile: https://shop.example/profile?step=1&src=mail.\n"


@dataclass
class Clock:
    """The server's "now" (epoch ms), moved by the test."""

    now: int = field(default_factory=wall_ms)

    def __call__(self) -> int:
        return self.now


@dataclass
class Site:
    root: Path
    url: str
    clock: Clock
    log: DeliveryLog
    sink: SmtpSink
    smtp_port: int

    def send(
        self, contact: str = "angela", email: str = "Angela@Shop.example", **kw: object
    ) -> Delivery:
        """Record a marketing email to ``contact`` and let the worker send it."""
        req = DeliveryRequest(
            key=str(kw.get("key", f"plan:main:Welcome:1:0:{contact}")),
            node="main",
            contact_id=contact,
            email=email,
            channel="email",
            kind="send_email",
            payload={
                "to": email,
                "subject": "Welcome",
                "html": HTML,
                "text": TEXT,
                "campaign": "Complete your profile",
                "delivery": "Complete your profile",
                "mail_group": "Onboarding",
            },
            due_ms=wall_ms() - 1000,
            test=bool(kw.get("test", False)),
            source="plan:Welcome",
        )
        d = self.log.request(req)
        self.sink.received.clear()
        run_worker(self.root, once=True, smtp=SmtpConfig(host="127.0.0.1", port=self.smtp_port))
        got = self.log.get(d.id)
        assert got is not None
        return got

    def message(self) -> EmailMessage:
        [msg] = self.sink.received
        return msg

    def path(self, url: str) -> str:
        assert url.startswith(self.url + "/t/"), url
        return url[len(self.url) :]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def store(self) -> Node:
        return Node.open(self.root)

    def count(self, text: str) -> int:
        """How many contacts the condition holds for, a day after the clock, once
        the server's ingester has emptied the outbox."""
        deadline = time.monotonic() + 60
        while pending(self.log):
            assert time.monotonic() < deadline, "the tracking outbox was never drained"
            time.sleep(0.01)
        return len(self.store().compile(text).evaluate(as_of=self.clock.now + 86_400_000))


@contextmanager
def site(root: Path, *, base_url: bool = True) -> Iterator[Site]:
    store = Node.init(root, SCHEMA)
    store.ingest_profiles([{"contact_id": "angela", "email": "Angela@Shop.example"}])
    clock = Clock()
    server = ServerThread(create_app(ServerConfig(root, clock=clock)))
    if base_url:
        write_setting(root, "tracking.base_url", server.url)
    sink = SmtpSink()
    log = DeliveryLog.open(root)
    with server, smtp_server(sink) as port:
        try:
            yield Site(root, server.url, clock, log, sink, port)
        finally:
            log.close()


def part(msg: EmailMessage, subtype: str) -> str:
    body = msg.get_body(preferencelist=(subtype,))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def click_urls(msg: EmailMessage) -> list[str]:
    """The tracked links of the HTML part, in order."""
    return re.findall(r'href="([^"]*/t/c/[^"]*)"', part(msg, "html"))


def header_url(msg: EmailMessage) -> str:
    m = re.fullmatch(r"<([^>]+)>", str(msg["List-Unsubscribe"]).strip())
    assert m is not None, msg["List-Unsubscribe"]
    return m.group(1)
