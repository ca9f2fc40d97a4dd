"""The journeys part of the demo: the seed's welcome journey, end to end.

New subscribers fill the newsletter form on the website (``form_compiled``,
``addUser``, ``WEB``); the journey, live, sends each the "Complete your
profile" email, which leaves over SMTP for a real SMTP server on loopback.
Some of them click its link a day later, through the real tracking endpoint
of a real HTTP server on loopback: the click becomes an event, and the
journey sends them their promotional code.  The scheduler then moves the
clock past the three days of the check: those who did not click leave by
``no``.  The per-step counts close the story.

Everything runs on one injected clock (the journey service, the scheduler,
the tracking server and the sending), which starts at the wall clock: a
message is marked sent at the real time it leaves, and a click is judged
against that (a click seconds after sending would be a link scanner's).
``journeys_story(store, console)`` tells it over a built shop store;
``python -m audience.demo.journeys`` builds a small one first.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import http.client
import re
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from audience.cli.journey_cmds import step_table
from audience.cli.output import plural
from audience.dsl.ast import DndPolicy
from audience.dsl.formatter import format_text
from audience.dsl.parser import parse
from audience.runtime.delivery import DeliveryLog
from audience.runtime.delivery.model import wall_ms
from audience.runtime.delivery.smtp import SmtpConfig
from audience.runtime.delivery.worker import Worker
from audience.runtime.journeys.service import JourneyService
from audience.runtime.node import Node
from audience.runtime.plans.clock import Clock, ManualClock
from audience.runtime.plans.scheduler import Scheduler
from audience.runtime.plans.service import PlanService
from audience.runtime.tracking.sending import Tracker

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
POLICY = "Maison shoes, clothes and accessories"
JOURNEY = "Welcome email and promotional code"
TRIGGER = "Thank newsletter subscribers"
PROFILE_URL = "https://maison.example/account/profile"
SUBSCRIBERS = 12
CLICKERS = 5  # the first five subscribers click a day after their email
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

RULES = f"""delivery "Complete your profile" {{
  template "complete-profile"
  mail group "Welcome"
  from "Maison <news@maison.example>"
  fields {{ first_name: profile.first_name }}
}}

delivery "Your promotional code" {{
  template "promo-code"
  mail group "Welcome"
  from "Maison <news@maison.example>"
  fields {{ first_name: profile.first_name, code: "WELCOME10" }}
}}

journey "{JOURNEY}" {{
  start now
  enter on form_compiled where (form_name = "addUser" and context = "WEB")
  once per contact
  dnd "{POLICY}"
  action "Welcome" send "Complete your profile"
  check "Clicked?" clicked "Welcome" within 3 days
    yes {{
      action "Promo" send "Your promotional code"
      end
    }}
    no {{
      end
    }}
}}
"""

_NAMES = ("Giulia", "Marco", "Sofia", "Luca", "Chiara", "Matteo", "Elena", "Davide", "Sara")


def _seed(store: Node) -> None:
    """The seed's DND policy (when the store has not got it yet) and the two templates."""
    if store.triggers.defs.get_policy(POLICY) is None:
        program = parse((EXAMPLES / "maison.rules").read_text(encoding="utf-8"), filename="seed")
        for d in program.definitions:
            if isinstance(d, DndPolicy) and d.name == POLICY:
                store.triggers.add_policies(format_text(d))
    store.triggers.add_template(
        "complete-profile",
        "Welcome to Maison, {{ first_name }}: complete your profile",
        f'<p>Dear {{{{ first_name }}}},</p><p>tell us your size and style: <a href="{PROFILE_URL}">'
        "complete your profile</a>.</p>",
        f"Dear {{{{ first_name }}}}, tell us your size and style: {PROFILE_URL}",
    )
    store.triggers.add_template(
        "promo-code",
        "{{ first_name }}, your welcome code",
        "<p>Thank you, {{ first_name }}. Your code: <b>{{ code }}</b>, 10% off.</p>",
        "Thank you, {{ first_name }}. Your code: {{ code }}, 10% off.",
    )


def subscriber(i: int) -> str:
    return f"subscriber-{i + 1:02d}"


def _subscribers(start_ms: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """New contacts' profiles and their form events, a few minutes apart."""
    profiles, events = [], []
    for i in range(SUBSCRIBERS):
        cid = subscriber(i)
        name = _NAMES[i % len(_NAMES)]
        profiles.append({"contact_id": cid, "first_name": name, "email": f"{cid}@example.com"})
        events.append(
            {
                "id": f"form-{cid}",
                "contact_id": cid,
                "type": "form_compiled",
                "ts": _iso(start_ms + i * 7 * MINUTE),
                "context": "WEB",
                "properties": {"form_name": "addUser"},
            }
        )
    return profiles, events


def _iso(ms: int) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------- the servers
@dataclass
class Inbox:
    """An SMTP server's handler (aiosmtpd): keeps every message it accepts."""

    received: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.received.append(msg)
        return "250 Message accepted for delivery"

    def take(self) -> list[EmailMessage]:
        with self.lock:
            got, self.received = self.received, []
        return got


@contextmanager
def smtp_server(inbox: Inbox) -> Iterator[int]:
    """An SMTP server on a free loopback port (its port)."""
    from aiosmtpd.controller import Controller

    with socket.socket() as s:  # aiosmtpd needs the port beforehand
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield port
    finally:
        ctl.stop()


def send_due(log: DeliveryLog, smtp: SmtpConfig, clock: Clock) -> int:
    """Send every delivery due by the clock, as ``audience worker`` does; how many."""
    assert log.path is not None
    worker = Worker(log, smtp, tracking=Tracker.for_store(log, log.path.parent))
    sent = 0
    try:
        while (d := log.claim(clock(), worker.lease_ms)) is not None:
            worker.process(d)
            sent += 1
    finally:
        worker.close()
    return sent


_CLICK = re.compile(r'href="([^"]*/t/c/[^"]+)"')


def click(msg: EmailMessage) -> tuple[int, str]:
    """Follow the first tracked link of ``msg`` as a mail program would (without
    following the redirect): the status and where it points."""
    body = msg.get_body(("html",))
    assert body is not None, "the message has no HTML part"
    found = _CLICK.search(str(body.get_content()))
    assert found is not None, "the message has no tracked link"
    url = urlsplit(found.group(1))
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        conn.request("GET", url.path, headers={"User-Agent": "Mozilla/5.0 (demo mail reader)"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("Location") or ""
    finally:
        conn.close()


@contextmanager
def _tracking_at(store_root: Path, url: str) -> Iterator[None]:
    """The store's tracked links point to ``url`` meanwhile (the demo's own
    server), then to what they pointed to before."""
    from audience.runtime.tracking.config import read_settings, write_setting

    before = read_settings(store_root).get("base_url")
    write_setting(store_root, "tracking.base_url", url)
    try:
        yield
    finally:
        write_setting(store_root, "tracking.base_url", before)


def settled(log: DeliveryLog, timeout_s: float = 60.0) -> None:
    """Wait until the tracking server has ingested every hit's event (it does
    so right after answering, from its outbox)."""
    from audience.runtime.tracking.outbox import pending

    give_up = time.monotonic() + timeout_s
    while pending(log):
        if time.monotonic() > give_up:
            raise TimeoutError("the tracking server did not ingest its clicks")
        time.sleep(0.01)


# ---------------------------------------------------------------------------- the story
def journeys_story(store: Node, console: Console) -> list[dict[str, Any]]:
    """Tell the journeys story over ``store``; returns the per-step counts at its end."""
    from audience.server.app import create_app
    from audience.server.context import ServerConfig
    from audience.server.serve import ServerThread

    assert store.path is not None, "the journey's servers need a store on disk"
    console.print(Rule("[bold]Journeys[/] (a path per subscriber: an email, a click, a code)"))
    # the wall clock, to the minute: the worker marks messages sent at real time
    start = wall_ms() // MINUTE * MINUTE
    clock = ManualClock(start)
    _seed(store)
    if store.triggers.defs.set_enabled(TRIGGER, False) is not None:
        console.print(f"  the journey now welcomes subscribers: the trigger '{TRIGGER}' is off")
    PlanService(store, clock).add(RULES, "welcome.rules", plans=False)
    svc = JourneyService(store, clock)
    svc.add(RULES, "welcome.rules")
    for line in RULES[RULES.index("journey ") :].rstrip().splitlines():
        console.print(f"  [cyan]{escape(line)}[/]", soft_wrap=True)
    svc.go_live(JOURNEY)
    console.print("  saved as a draft with its two deliveries, then made live")

    inbox = Inbox()
    with (
        DeliveryLog.open(store.path) as log,
        smtp_server(inbox) as smtp_port,
        ServerThread(create_app(ServerConfig(store.path, clock=clock))) as server,
        _tracking_at(store.path, server.url),
    ):
        smtp = SmtpConfig(host="127.0.0.1", port=smtp_port, from_addr="news@maison.example")

        profiles, events = _subscribers(clock.ms + HOUR)
        store.ingest_profiles(profiles)
        clock.ms += HOUR
        store.ingest_events(events)
        clock.ms += SUBSCRIBERS * 7 * MINUTE
        console.print(
            f"  {SUBSCRIBERS} new subscribers fill the newsletter form on the website "
            f"({_iso(start + HOUR)} onwards): each enters the journey"
        )
        sent = send_due(log, smtp, clock)
        # the subscribers' messages (any other message due is sent too, as a worker would)
        welcomes = [m for m in inbox.take() if str(m["To"]).startswith("subscriber-")]
        others = sent - len(welcomes)
        console.print(
            f"  sent {plural(len(welcomes), 'welcome email')} over SMTP to the server on "
            f"127.0.0.1:{smtp_port}"
            + (f" (and {plural(others, 'other message')} due by then)" if others else "")
            + f"; their links point to the tracking server {server.url}/t/c/..."
        )
        first = welcomes[0]
        console.print(
            f"  one of them, to {escape(str(first['To']))}: {escape(repr(str(first['Subject'])))}"
            + (", with a one-click unsubscribe link" if first["List-Unsubscribe"] else "")
        )

        clock.ms += DAY
        for msg in welcomes[:CLICKERS]:
            status, where = click(msg)
            console.print(
                f"  a day later {escape(str(msg['To']))} clicks 'complete your profile': "
                f"{status}, on to {escape(where)}"
            )
        settled(log)
        sent = send_due(log, smtp, clock)
        promos = inbox.take()
        console.print(
            f"  the clicks moved {plural(len(promos), 'subscriber')} to 'yes': "
            f"{plural(sent, 'promotional code')} sent"
        )

        scheduler = Scheduler(store.path, clock=clock)
        try:
            clock.ms = start + HOUR + 3 * DAY + SUBSCRIBERS * 7 * MINUTE + MINUTE
            scheduler.tick()
        finally:
            scheduler.close()
        console.print(
            f"  the scheduler moves the clock to {_iso(clock.ms)}, past every 3-day deadline: "
            "those who did not click leave by 'no'"
        )
    steps = svc.step_counts(JOURNEY)
    console.print("  where the subscribers went:")
    for line in step_table(steps):
        console.print(f"    {escape(line)}")
    show = f"audience journeys show {shlex.quote(str(store.path))} {shlex.quote(JOURNEY)}"
    console.print(
        f"  [dim]`{escape(show)}` prints these counts; `audience journeys history` with a "
        f"contact (e.g. {subscriber(0)}) shows the path they took and why.[/]",
        soft_wrap=True,
    )
    return steps


def main(n_events: int = 100_000, n_contacts: int = 5_000) -> None:
    """Build a small shop in a temporary directory and tell the journeys story."""
    from audience.demo.run import small_shop

    console = Console()
    with small_shop(n_events, n_contacts, console, "audience-journeys-") as store:
        journeys_story(store, console)


if __name__ == "__main__":
    main()
