"""What the journeys' CLI and HTTP tests share: a small shop store with the two
deliveries of the welcome journey (and their templates), subscribers with and
without an email, and the welcome journey's text."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from audience.runtime.plans.service import PlanService
from audience.runtime.store import Store

EXAMPLES = Path(__file__).resolve().parents[1] / "audience" / "examples"
HOUR = 3_600_000
DAY = 24 * HOUR
NAME = "Welcome"


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def iso(t: int) -> str:
    return (
        dt.datetime.fromtimestamp(t / 1000, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


T0 = ms("2027-01-10T09:00:00Z")

DELIVERIES = """delivery "Complete your profile" {
  template "complete-profile"
  mail group "Welcome"
  fields { first_name: profile.first_name }
}

delivery "Your promotional code" {
  template "promo-code"
  mail group "Welcome"
  fields { first_name: profile.first_name }
}
"""

JOURNEY = """journey "Welcome" {
  start now
  enter on form_compiled where (form_name = "addUser" and context = "WEB")
  once per contact
  action "Welcome" send "Complete your profile"
  check "Clicked?" clicked "Welcome" within 3 days
    yes {
      action "Promo" send "Your promotional code"
      end
    }
    no {
      end
    }
}
"""


def contact(i: int) -> str:
    return f"s{i:03d}"


def build(root: Path, n: int = 6) -> Store:
    """Subscribers s000..: every third has no email; the templates and the
    deliveries the welcome journey sends."""
    st = Store.init(root, EXAMPLES / "maison.toml")
    profiles: list[dict[str, Any]] = []
    for i in range(n):
        rec: dict[str, Any] = {"contact_id": contact(i), "first_name": f"Name{i}"}
        if i % 3 != 2:
            rec["email"] = f"{contact(i)}@example.com"
        profiles.append(rec)
    st.ingest_profiles(profiles)
    st.triggers.add_template(
        "complete-profile",
        "Complete your profile, {{ first_name }}",
        '<p>Dear {{ first_name }}, <a href="https://maison.example/profile">complete it</a></p>',
        "Dear {{ first_name }}, complete it: https://maison.example/profile",
    )
    st.triggers.add_template(
        "promo-code",
        "Your code, {{ first_name }}",
        "<p>{{ first_name }}, your code is WELCOME10</p>",
        "{{ first_name }}, your code is WELCOME10",
    )
    PlanService(st).add(DELIVERIES, "deliveries.rules", plans=False)
    return st


def subscription(i: int, at_ms: int, event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"form-{i}",
        "contact_id": contact(i),
        "type": "form_compiled",
        "ts": iso(at_ms),
        "context": "WEB",
        "form_name": "addUser",
    }
