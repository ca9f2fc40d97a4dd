"""The ads platform part of the demo: a Meta ads account connected with an access
token, its status, the reminders that keep the token alive, and a custom
audience kept in step with a segment.

It runs against the fake Graph API the package carries
(``audience.integrations.meta.fake``), started on loopback, and a small webhook
receiver, also on loopback, standing in for the team's chat or ticket system.
Its store is its own (``ads`` in the demo's directory, the shop's profiles), so
that the delivery worker it runs sends only the reminders.

1. The account is connected with a token that ends in 5 days: ``expiring``.
2. The scheduler's tick raises the "7 days before" reminder as a webhook
   delivery; a second tick raises nothing more; the worker posts it.
3. Re-authorized with a short-lived token, exchanged for a 60-day one: active.
   The female contacts with newsletter consent go to a new custom audience by
   email; a day later the scheduled run sends only the difference (meta_sync.py).
   A lead form is connected; a lead comes by the signed webhook to the server
   and becomes a profile and a ``lead_received`` event (meta_leads.py).
4. The platform revokes the token; a check marks the integration inactive and
   the next tick raises the "inactive" reminder, which the worker posts.

The story runs on a manual clock, started two days before the wall clock's now
(the deliveries it makes are due by then, so the worker sends them);
``python -m audience.demo.meta`` runs it alone.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

from audience.demo import shop
from audience.demo.meta_leads import LeadsDemo
from audience.integrations.meta.fake import APP_ID, APP_SECRET, VERSION, FakeGraph, running
from audience.integrations.meta.fake.audiences import install as install_audiences
from audience.integrations.meta.graph import GraphConfig
from audience.integrations.meta.reminders import save_settings
from audience.integrations.meta.sync.definitions import Job
from audience.integrations.meta.tokens import DAY_MS, Integrations, integration_json
from audience.runtime.delivery.worker import run_worker
from audience.runtime.node import Node
from audience.runtime.plans.clock import ManualClock, wall_clock
from audience.runtime.plans.scheduler import Scheduler

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
INTEGRATION = "Maison ads"
ACCOUNT = "act_1020304050"
FIRST_TOKEN = "EAAGdemo-first-token-7f3a"
SHORT_TOKEN = "EAAGdemo-short-lived-token-91c2"


@dataclass
class Receiver:
    """Keeps the JSON bodies POSTed to it."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def running(self) -> Iterator[str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.bodies.append(json.loads(raw))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


@dataclass
class MetaDemo:
    """What the story did, for the tests."""

    statuses: list[str]  # the integration's status after each step
    raised: list[str]  # the reminders each tick raised anew ("7d", "inactive")
    posted: list[dict[str, Any]]  # what the webhook receiver got
    sync_jobs: list[Job] = field(default_factory=list)  # the custom audience sync's runs
    leads: LeadsDemo | None = None  # the lead that came by webhook


def meta_story(root: Path, console: Console, now: dt.datetime, n_contacts: int = 2_000) -> MetaDemo:
    console.print(Rule("[bold]Ads platform (Meta)[/]: an account, reminders, a sync, a lead"))
    store = Node.init(root, EXAMPLES / "maison.toml")
    store.ingest_profiles(shop.profiles(n_contacts, now=now))
    # whole seconds, as the platform's; two days back, so that the deliveries the story
    # makes (a day on) are due by the wall clock and the worker sends them
    clock = ManualClock(wall_clock() // 1000 * 1000 - 2 * DAY_MS)
    fake = FakeGraph(now=lambda: clock.ms // 1000)
    receiver = Receiver()
    out = MetaDemo([], [], receiver.bodies)
    with running(fake) as graph_url, receiver.running() as hook:
        console.print(
            f"  a fake Graph API on [cyan]{graph_url}[/] and a webhook receiver on "
            f"[cyan]{hook}[/] (both on loopback), the store [cyan]{escape(str(root))}[/]"
        )
        config = GraphConfig(
            base_url=graph_url, version=VERSION, app_id=APP_ID, app_secret=APP_SECRET
        )
        ints = Integrations(root, config, clock)
        fake.add_token(FIRST_TOKEN, expires_at=(clock.ms + 5 * DAY_MS) // 1000)
        ints.connect(INTEGRATION, ACCOUNT, FIRST_TOKEN)
        _status(console, ints, out, "connected with a token that ends in 5 days")
        save_settings(ints, hook + "/ads-reminders")
        console.print("  reminders go to the receiver, 7 and 1 days before a token ends")
        _tick(console, root, clock, out)
        _tick(console, root, clock, out)  # nothing more: raised once
        _send(console, root, receiver)

        fake.add_token(SHORT_TOKEN, expires_at=(clock.ms + 3_600_000) // 1000)
        ints.reauthorize(INTEGRATION, SHORT_TOKEN)
        _status(console, ints, out, "re-authorized with a 1-hour token, exchanged for 60 days")

        from audience.demo.meta_sync import sync_story

        install_audiences(fake)
        out.sync_jobs = sync_story(root, store, ints, config, clock, console, INTEGRATION)

        from audience.demo.meta_leads import leads_story

        out.leads = leads_story(root, store, config, clock, fake, console, INTEGRATION)

        exchanged = list(fake.tokens.values())[-1]  # the token the exchange made
        exchanged.is_valid = False
        ints.check(INTEGRATION)
        _status(
            console,
            ints,
            out,
            "the platform revoked it (its user changed a password); a check says",
        )
        _tick(console, root, clock, out)
        _send(console, root, receiver)
    console.print(
        "  [dim]`audience integrations list|check|reminders STORE` and /v1/integrations show "
        "the same; `audience scheduler` raises the reminders, `audience worker` posts them.[/]"
    )
    return out


def _status(console: Console, ints: Integrations, out: MetaDemo, what: str) -> None:
    row = integration_json(ints.get(INTEGRATION), ints.clock())
    out.statuses.append(row["status"])
    table = Table("integration", "account", "token", "status", "ends", box=None, padding=(0, 2))
    table.add_row(
        *(escape(str(row[k] or "")) for k in ("name", "account_id", "token", "status", "ends"))
    )
    console.print(f"  {what}:")
    console.print(table)
    if row["refused"]:
        console.print(f"    [dim]{escape(row['refused'])}[/]")


def _tick(console: Console, root: Path, clock: ManualClock, out: MetaDemo) -> None:
    sched = Scheduler(root, clock=clock)
    try:
        report = sched.tick()
    finally:
        sched.close()
    new = [r for r in report.reminders if r.new]
    out.raised += [r.reminder.threshold for r in new]
    if not new:
        console.print("  a scheduler tick: no new reminder (each is raised once)")
    for r in new:
        console.print(
            f"  a scheduler tick raises the [bold]{r.reminder.threshold}[/] reminder: "
            f"webhook delivery {r.delivery_id}"
        )


def _send(console: Console, root: Path, receiver: Receiver) -> None:
    seen = len(receiver.bodies)
    run_worker(root, once=True)
    for body in receiver.bodies[seen:]:
        console.print(f"  the receiver got: [cyan]{escape(body['message'])}[/]", soft_wrap=True)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="audience-meta-") as tmp:
        meta_story(Path(tmp) / "ads", Console(), shop.DEFAULT_NOW)
