"""What the journeys' CLI and HTTP tests share: the runtime tests' store
(tests/journeys_support.py: subscribers, every fifth without an email, the
welcome journey's deliveries) with the seed's DND policy, the seed's welcome
journey as text, and its subscription events."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from audience.runtime.store import Store
from tests.helpers.language import SPEC_DND, SPEC_JOURNEY
from tests.journeys_support import DAY, HOUR, T0, contact
from tests.journeys_support import build as build_runtime_store

__all__ = ["DAY", "HOUR", "JOURNEY", "NAME", "T0", "build", "contact", "iso", "subscription"]

NAME = "Welcome email and promotional code"
JOURNEY = SPEC_JOURNEY  # the seed's welcome journey


def build(root: Path, n: int = 10) -> Store:
    """The runtime tests' store, with the seed's DND policy the journey obeys."""
    st = build_runtime_store(root, n)
    st.triggers.add_policies(SPEC_DND)
    return st


def iso(t: int) -> str:
    """Epoch ms as the CLI and the API print times."""
    when = dt.datetime.fromtimestamp(t / 1000, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def subscription(i: int, at_ms: int) -> dict[str, Any]:
    """Contact ``i`` fills the newsletter form on the web at ``at_ms``."""
    return {
        "id": f"form-{i}",
        "contact_id": contact(i),
        "type": "form_compiled",
        "ts": iso(at_ms),
        "context": "WEB",
        "form_name": "addUser",
    }
