"""A small shop store for the journey runtime tests: subscribers, a template,
a delivery, a DND policy, and journeys built as ASTs (the runtime's input)
with the text they are saved under.

Clicks and opens are the built-in tracking events (email_clicked with its
delivery_key, link, link_text and bot flag), as the tracking endpoints record them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from audience.dsl.ast import Action, Arg, Duration, StringLit, Trigger
from audience.dsl.ast_journeys import (
    ActionStep,
    CheckStep,
    Clicked,
    EndStep,
    EnterOn,
    EnterSegment,
    Journey,
    ReEntry,
    StartNow,
    Step,
    WaitStep,
)
from audience.dsl.parser import parse
from audience.runtime.journeys.service import JourneyService
from audience.runtime.node import Node
from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.definitions import PlanDefinitions

DAY = 86_400_000
HOUR = 3_600_000
MINUTE = 60_000

SCHEMA = """
[profile]
email = "string"
first_name = "string"
city = "string"
tags = "list<string>"

[events.form_compiled]
form_name = "string"

[events.purchased]
amount = "float"


"""

DELIVERIES = """delivery "Complete your profile" {
  template "profile"
  mail group "Welcome"
  fields { first_name: profile.first_name }
}

delivery "Your promotional code" {
  template "promo"
  mail group "Welcome"
  fields { first_name: profile.first_name }
}
"""

POLICY = """dnd "Caps" {
  max 1 per day
}
"""

T0 = int(dt.datetime(2027, 1, 10, 9, 0, tzinfo=dt.UTC).timestamp() * 1000)


def contact(i: int) -> str:
    return f"c{i:05d}"


def build(root: Path, n: int = 10) -> Node:
    """Contacts c00000..: every fifth has no email."""
    root.parent.mkdir(parents=True, exist_ok=True)
    schema_path = root.parent / f"{root.name}-schema.toml"
    schema_path.write_text(SCHEMA)
    st = Node.init(root, schema_path)
    profiles = []
    for i in range(n):
        rec: dict[str, Any] = {"contact_id": contact(i), "first_name": f"Name{i}"}
        if i % 5 != 4:
            rec["email"] = f"{contact(i)}@example.com"
        profiles.append(rec)
    st.ingest_profiles(profiles)
    st.triggers.add_template(
        "profile", "Complete your profile", "<p>Hi {{ first_name }}</p>", "Hi {{ first_name }}"
    )
    st.triggers.add_template(
        "promo", "Your code", "<p>{{ first_name }}: PROMO</p>", "{{ first_name }}: PROMO"
    )
    st.triggers.add_policies(POLICY)
    defs = PlanDefinitions.for_store(root)
    program = parse(DELIVERIES)
    with defs.transaction() as conn:
        for d in program.definitions:
            from audience.runtime.plans.service import source_of

            defs.save_delivery(conn, st.node, d.name, source_of(DELIVERIES, d))
    return st


def enter_on_form() -> EnterOn:
    t = parse(
        'trigger "x" { on form_compiled where form_name = "addUser" do add_tag("x") }'
    ).definitions[0]
    assert isinstance(t, Trigger)
    return EnterOn(t.events, t.where, t.condition)


def days(n: int) -> Duration:
    return Duration(n, "day")


def welcome(
    name: str = "Welcome",
    *,
    within: int = 3,
    entry: EnterOn | EnterSegment | None = None,
    again_after: Duration | None = None,
    dnd: str | None = None,
    wait_first: int | None = None,
    wait: Duration | None = None,
) -> Journey:
    """The seed's welcome journey: send, check a click within ``within`` days,
    a promo on yes, end on no."""
    steps: list[Step] = []
    if wait_first is not None or wait is not None:
        steps.append(WaitStep(wait or days(wait_first or 0)))
    steps += [
        ActionStep("Welcome", send="Complete your profile"),
        CheckStep(
            "Clicked?",
            Clicked("Welcome"),
            days(within),
            yes=(ActionStep("Promo", send="Your promotional code"), EndStep()),
            no=(EndStep(),),
        ),
    ]
    return Journey(
        name,
        StartNow(),
        tuple(steps),
        entry=entry if entry is not None else enter_on_form(),
        reentry=ReEntry(again_after),
        dnd=dnd,
    )


def tag_journey(name: str = "Tagger") -> Journey:
    return Journey(
        name,
        StartNow(),
        (
            ActionStep("Tag", call=Action("add_tag", (Arg(None, StringLit("welcomed")),))),
            WaitStep(Duration(2, "hour")),
            ActionStep("Tag again", call=Action("add_tag", (Arg(None, StringLit("later")),))),
        ),
        entry=None,
    )


def service(st: Node, clock: ManualClock) -> JourneyService:
    return JourneyService(st, clock)


def text_of(journey: Journey) -> str:
    from audience.dsl.formatter import format_text

    return str(format_text(journey))


def save(svc: JourneyService, journey: Journey, live: bool = True) -> None:
    """Add the journey's text (checked against the store, as the CLI and the API do)."""
    [saved] = svc.add(text_of(journey), f"{journey.name}.rules")
    assert saved.name == journey.name
    if live:
        svc.go_live(journey.name)


def form(i: int, cid: str, ts: int, form_name: str = "addUser") -> dict[str, Any]:
    return {
        "id": f"f{i}",
        "contact_id": cid,
        "type": "form_compiled",
        "ts": iso(ts),
        "form_name": form_name,
    }


def click(
    i: int, cid: str, key: str, ts: int, bot: bool = False, link: str = "https://x.example/p"
) -> dict[str, Any]:
    return {
        "id": f"k{i}",
        "contact_id": cid,
        "type": "email_clicked",
        "ts": iso(ts),
        "delivery_key": key,
        "link": link,
        "link_text": "Complete it",
        "bot": bot,
    }


def iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t / 1000, dt.UTC).isoformat().replace("+00:00", "Z")
