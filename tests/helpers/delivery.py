"""What the delivery tests share: times, DND policies read from their text, a
delivery request for an email."""

from __future__ import annotations

from audience.dsl.ast import DndPolicy
from audience.dsl.parser import parse
from audience.runtime.delivery import DeliveryRequest, Policy
from audience.runtime.delivery.model import wall_ms

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def policy(text: str) -> Policy:
    d = parse(text).definitions[0]
    assert isinstance(d, DndPolicy)
    return Policy.from_ast(d)


MAISON = policy('dnd "Maison" {\n max 1 per day\n max 3 per week\n global\n}')


def email_req(i: int, *, to: str | None = None, test: bool = False) -> DeliveryRequest:
    return DeliveryRequest(
        key=f"trigger:e{i}:0",
        node="main",
        contact_id=f"c{i}",
        email=f"c{i}@example.com",
        channel="email",
        kind="send_email",
        payload={
            "to": to or f"c{i}@example.com",
            "subject": f"Welcome {i}",
            "text": f"Hello {i}",
            "html": f"<p>Hello {i}</p>",
            "campaign": "C-1234",
        },
        due_ms=wall_ms() - 1000,
        policy=MAISON,
        test=test,
        source="trigger:Thank newsletter subscribers",
    )
