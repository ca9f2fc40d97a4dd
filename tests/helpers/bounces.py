"""What the bounce tests share: a store whose deliveries were sent through a
real SMTP server (aiosmtpd) with VERP return paths, and the corpus of
reports filled in with those deliveries' addresses."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

from audience.runtime.delivery import DeliveryLog, DeliveryRequest
from audience.runtime.delivery.model import Delivery, wall_ms
from audience.runtime.delivery.smtp import SmtpConfig
from audience.runtime.delivery.worker import run_worker
from audience.runtime.node import Node
from audience.runtime.tracking.config import secret, write_setting
from audience.runtime.tracking.outbox import pending
from audience.runtime.tracking.tokens import Signer
from tests.helpers.mail_servers import SmtpSink, smtp_server

SCHEMA = Path(__file__).resolve().parents[2] / "audience" / "examples" / "maison.toml"
CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "feedback"
DOMAIN = "bounces.shop.example"


@dataclass
class Sent:
    root: Path
    deliveries: list[Delivery]
    verp: list[str]  # each delivery's envelope sender, as the SMTP server saw it
    sink: SmtpSink | None = None

    def values(self) -> dict[str, str]:
        """The corpus placeholders: the first delivery's, then _2, _3, ..."""
        out: dict[str, str] = {}
        signer = Signer(secret(self.root))
        for i, (d, v) in enumerate(zip(self.deliveries, self.verp, strict=True)):
            suffix = "" if i == 0 else f"_{i + 1}"
            out |= {
                "VERP" + suffix: v,
                "TOKEN" + suffix: signer.sign("b", d.id),
                "RCPT" + suffix: d.email or "",
                "MESSAGE_ID" + suffix: d.message_id or "",
                "DELIVERY_KEY" + suffix: d.key,
            }
        return out

    def report(self, name: str, first: int = 0) -> bytes:
        """Corpus file ``name`` about delivery ``first`` (its _2, _3: the next ones)."""
        vals = Sent(self.root, self.deliveries[first:], self.verp[first:]).values()
        text = (CORPUS / name).read_bytes().decode("latin-1")
        return Template(text).safe_substitute(vals).encode("latin-1").replace(b"\r\n", b"\n")

    def events(self, etype: str, where: str = "") -> set[str]:
        """Contacts with an ``etype`` event (``where``: a condition on it), once ingested."""
        with DeliveryLog.open(self.root) as log:
            deadline = time.monotonic() + 60
            while pending(log):
                assert time.monotonic() < deadline, "the outbox was never drained"
                time.sleep(0.02)
        cond = f"did {etype}" + (f" where ({where})" if where else "") + " in last 30 days"
        hits = Node.open(self.root).compile(cond).evaluate(as_of=wall_ms() + 86_400_000)
        return set(hits.ids())


def send_all(
    root: Path,
    people: list[str],
    replies: dict[str, str] | None = None,
    data_replies: dict[str, str] | None = None,
    **worker: object,
) -> Sent:
    """A store with a contact per name of ``people`` (``NAME@gmail.com``), a
    marketing email to each sent through aiosmtpd (refusing at RCPT with
    ``replies``, after DATA with ``data_replies``)."""
    store = Node.init(root, SCHEMA)
    store.ingest_profiles([{"contact_id": p, "email": f"{p}@gmail.com"} for p in people])
    write_setting(root, "tracking.return_path_domain", DOMAIN)
    sink = SmtpSink(replies=replies or {}, data_replies=data_replies or {})
    with DeliveryLog.open(root) as log:
        ds = [
            log.request(
                DeliveryRequest(
                    f"plan:main:Spring:1:0:{p}",
                    "main",
                    p,
                    f"{p}@gmail.com",
                    "email",
                    "send_email",
                    {"to": f"{p}@gmail.com", "subject": "Spring", "text": "Hello"},
                    wall_ms() - 1000,
                    source="plan:Spring",
                )
            )
            for p in people
        ]
        with smtp_server(sink) as port:
            cfg = SmtpConfig(host="127.0.0.1", port=port)
            run_worker(root, once=True, smtp=cfg, **worker)  # type: ignore[arg-type]
        sent = [log.get(d.id) for d in ds]
    by_to = {str(m["To"]): f for m, f in zip(sink.received, sink.mail_from, strict=True)}
    got = [d for d in sent if d is not None]
    return Sent(root, got, [by_to.get(d.email or "", "") for d in got], sink)
