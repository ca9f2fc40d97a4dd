"""What the trigger tests share: the Maison examples, a form event, the seed
trigger added to a store, and the deliveries it reserved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audience.runtime.delivery import Delivery
from audience.runtime.store import Store

EXAMPLES = Path(__file__).resolve().parents[2] / "audience" / "examples"


def form(eid: str | None, contact: str, ts: str, **kw: Any) -> dict[str, Any]:
    rec = {"contact_id": contact, "type": "form_compiled", "ts": ts, "context": "WEB"}
    rec["form_name"] = "addUser"
    if eid is not None:
        rec["id"] = eid
    rec.update(kw)
    return rec


def seed(st: Store) -> None:
    st.triggers.add((EXAMPLES / "maison.rules").read_text(), "maison.rules")


def deliveries(st: Store) -> list[Delivery]:
    return st.triggers.log.list()
