"""What the trigger tests share: the Maison examples, a form event, the seed
trigger added to a store, and the deliveries it reserved."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from audience.runtime.delivery import Delivery
from audience.runtime.node import Node

EXAMPLES = Path(__file__).resolve().parents[2] / "audience" / "examples"


def form(eid: str | None, contact: str, ts: str, **kw: Any) -> dict[str, Any]:
    rec = {"contact_id": contact, "type": "form_compiled", "ts": ts, "context": "WEB"}
    rec["form_name"] = "addUser"
    if eid is not None:
        rec["id"] = eid
    rec.update(kw)
    return rec


def seed(st: Node) -> None:
    st.triggers.add((EXAMPLES / "maison.rules").read_text(), "maison.rules")


def deliveries(st: Node) -> list[Delivery]:
    return st.triggers.log.list()


POLICY = """dnd "Maison shoes, clothes and accessories" {
  max 1 per day
  max 3 per week
  global
}
"""
DAY = 86_400_000


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture
def store(tmp_path: Path) -> Node:
    st = Node.init(tmp_path / "shop", EXAMPLES / "maison.toml")
    st.triggers.add_template(
        "C-1234",
        "Welcome {{ first_name }}",
        "<p>Hi {{ first_name }}, thanks for {{ form }}</p>",
        "Hi {{ first_name }}, thanks for {{ form }}",
    )
    st.ingest_profiles(
        [
            {"contact_id": "c1", "email": "angela@example.com", "first_name": "<Angela>"},
            {"contact_id": "c2", "first_name": "Bruno"},  # no email: the `if` is false
            {"contact_id": "c3", "email": "Carla@Example.com", "first_name": "Carla"},
        ]
    )
    return st


def add(st: Node, body: str, name: str = "T") -> None:
    st.triggers.add(f'trigger "{name}" {{\n{body}\n}}\n' + POLICY)
