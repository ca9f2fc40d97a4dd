"""The plans part of the demo: scheduled sends over the Maison shop.

1. A one-shot plan reminds "Milan store loyal customers" of a store event the
   day before it: saved as a draft, made ready, previewed, then run by the
   scheduler at its due instant.
2. A repeated plan ("every day at 09:00") sends picks to recent viewers and
   the loyal customers under the DND policy: those the reminder reached the
   day before, and everyone at three sends this week, are held back.

The scheduler runs on an injected clock, so the demo moves through the days
at once.  ``plans_story(store, console, now)`` tells it over a built shop
store (``audience.demo.run.build_store``); ``python -m audience.demo.plans``
builds a small one first.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from audience.demo import shop
from audience.dsl.ast import DndPolicy, Segment
from audience.dsl.formatter import format_text
from audience.dsl.parser import parse
from audience.runtime.node import Node
from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.definitions import PlanRun
from audience.runtime.plans.preview import preview
from audience.runtime.plans.scheduler import Scheduler
from audience.runtime.plans.service import PlanService

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LOYAL = "Milan store loyal customers"
POLICY = "Maison shoes, clothes and accessories"
DAY = dt.timedelta(days=1)


def _rules(event_day: dt.date) -> str:
    eve = event_day - DAY
    start = eve + DAY  # the daily picks start the day after the reminder
    return f"""delivery "Spring event reminder" {{
  template "spring-event"
  mail group "Events"
  subject "See you tomorrow at Maison Brera, {{{{ first_name }}}}"
  from "Maison <news@maison.example>"
  reply to "care@maison.example"
  fields {{ first_name: profile.first_name }}
  test list ("qa@maison.example")
}}

delivery "Daily picks" {{
  template "picks"
  mail group "Picks"
  fields {{ first_name: profile.first_name }}
}}

plan "Spring event eve" {{
  who "{LOYAL}"
  when once at {eve.isoformat()} 10:00 timezone "Europe/Rome"
  send "Spring event reminder"
}}

plan "Daily picks for viewers" {{
  who (did viewed_product in last 30 days or in segment "{LOYAL}")
  when every day at 09:00 timezone "Europe/Rome" from {start.isoformat()}
  dnd "{POLICY}"
  send "Daily picks"
}}
"""


def _seed(store: Node) -> None:
    """The seed's segment and DND policy, and the two templates."""
    program = parse((EXAMPLES / "maison.rules").read_text(encoding="utf-8"), filename="seed")
    for d in program.definitions:
        if isinstance(d, Segment) and d.name == LOYAL and store.get_segment(LOYAL) is None:
            store.save_segment(d.name, format_text(d))
        if isinstance(d, DndPolicy) and store.triggers.defs.get_policy(POLICY) is None:
            store.triggers.add_policies(format_text(d))
    store.triggers.add_template(
        "spring-event",
        "Our spring event",
        "<p>Dear {{ first_name }}, our spring collection opens tomorrow in Brera.</p>",
        "Dear {{ first_name }}, our spring collection opens tomorrow in Brera.",
    )
    store.triggers.add_template(
        "picks",
        "Picked for you, {{ first_name }}",
        "<p>{{ first_name }}, a few things you may like.</p>",
        "{{ first_name }}, a few things you may like.",
    )


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def _run_line(run: PlanRun) -> str:
    c = run.counts
    held = ", ".join(f"{n} by '{cap}'" for cap, n in (c.get("by_cap") or {}).items())
    when = dt.datetime.fromtimestamp(run.occurrence_ms / 1000, dt.UTC)
    return (
        f"{run.plan} at {when:%Y-%m-%d %H:%M} UTC: {run.state}; audience {c.get('audience', 0):,}, "
        f"without email {c.get('without_email', 0):,}, to send {c.get('reserved', 0):,}"
        + (f", held back {c.get('suppressed', 0):,} ({held})" if c.get("suppressed") else "")
    )


def plans_story(store: Node, console: Console, now: dt.datetime) -> list[PlanRun]:
    """Tell the plans story over ``store`` (the shop, its data up to ``now``);
    returns the runs it made."""
    assert store.path is not None, "the scheduler needs a store on disk"
    console.print(Rule("[bold]Plans[/] (scheduled sends, run exactly once by the scheduler)"))
    _seed(store)
    event_day = (now + 10 * DAY).date()
    clock = ManualClock(_ms(now))
    svc = PlanService(store, clock)
    text = _rules(event_day)
    result = svc.add(text, "plans.rules")
    for line in text.rstrip().splitlines():
        console.print(f"  [cyan]{escape(line)}[/]", soft_wrap=True)
    console.print(
        f"  saved {len(result.deliveries)} deliveries and {len(result.plans)} plans, as drafts"
    )
    for plan in result.plans:
        svc.make_ready(plan.name)
    console.print("  both plans made ready (checked: segments, deliveries, templates, policy)")

    eve = svc.describe(svc.get_plan("Spring event eve"))
    due = _ms(dt.datetime.fromisoformat(str(eve["next_occurrence"]).replace("Z", "+00:00")))
    seen: dict[str, Any] = preview(store, "Spring event eve", due, clock=clock)
    console.print(
        f"  preview of 'Spring event eve' at {eve['next_occurrence']}: audience "
        f"{seen['audience']:,}, without email {seen['without_email']:,}, to send "
        f"{seen['to_send']:,} [dim](writes nothing)[/]"
    )
    runs: list[PlanRun] = []
    scheduler = Scheduler(store.path, clock=clock)
    try:
        # the scheduler, on the injected clock: the eve, then four mornings
        for t in [due] + [due + int((23 + 24 * k) * 3600 * 1000) for k in range(4)]:
            clock.ms = t
            for run in scheduler.tick().ran:
                runs.append(run)
                console.print(f"  {escape(_run_line(run))}", soft_wrap=True)
    finally:
        scheduler.close()
    console.print(
        "  [dim]The loyal customers got the reminder less than a day before the first "
        "picks ('max 1 per day'); 'max 3 per week' holds everyone back on the fourth "
        "morning. `audience scheduler STORE` runs plans on the wall clock; "
        "`audience worker STORE` sends what they recorded.[/]"
    )
    return runs


def main(n_events: int = 300_000, n_contacts: int = 10_000) -> None:
    """Build a small shop in a temporary directory and tell the plans story."""
    from audience.demo.run import small_shop

    console = Console()
    with small_shop(n_events, n_contacts, console, "audience-plans-") as store:
        plans_story(store, console, shop.DEFAULT_NOW)


if __name__ == "__main__":
    main()
