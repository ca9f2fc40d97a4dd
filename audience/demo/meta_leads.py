"""The lead forms part of the ads demo (audience.demo.meta): a Lead Ads form
connected to the node with a mapping, a lead arriving by the platform's signed
webhook at the real server (on loopback), fetched from the fake Graph API by the
lead worker, and stored as a profile and a ``lead_received`` event; the same
notification delivered again stores nothing more, a forged one is refused."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from audience.integrations.meta.fake import FakeGraph
from audience.integrations.meta.fake.leads import install as install_leads
from audience.integrations.meta.graph import GraphConfig
from audience.integrations.meta.leads.forms import LeadForms, parse_mapping
from audience.integrations.meta.leads.mapping import LeadFormError
from audience.integrations.meta.leads.worker import LeadWorker
from audience.runtime.node import Node
from audience.runtime.plans.clock import ManualClock
from audience.server.app import create_app
from audience.server.auth import Sources
from audience.server.context import ServerConfig
from audience.server.serve import ServerThread

PAGE, FORM = "5000000001", "4000000001"
FORM_NAME = "Spring lookbook"
SOURCE = "fb-spring-lookbook"
MAPPING = ("email=email", "first_name=first_name", "city=city")
VERIFY = "maison-verify"
ANSWERS: dict[str, str | list[str]] = {
    "email": "francesca.moretti@example.com",
    "first_name": "Francesca",
    "city": "Turin",
}


@dataclass(frozen=True)
class LeadsDemo:
    contact_id: str
    profile: dict[str, Any]
    answers: list[tuple[int, dict[str, Any]]]  # the webhook's answers: status, body
    lead_received: int  # contacts in "did lead_received"


def _get(url: str, path: str, token: str | None = None) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def leads_story(
    root: Path,
    store: Node,
    config: GraphConfig,
    clock: ManualClock,
    fake: FakeGraph,
    console: Console,
    integration: str,
) -> LeadsDemo:
    leads = install_leads(fake)
    leads.add_form(FORM, PAGE)
    forms = LeadForms(root, clock)
    common: dict[str, Any] = {
        "node": store.node,
        "schema": store.schema,
        "integration": integration,
        "page_id": PAGE,
        "source": SOURCE,
    }
    try:
        forms.connect(
            "Broken", form_id="4000000002", fields=parse_mapping(["size=shoe_size"]), **common
        )
    except LeadFormError as err:
        console.print(
            f"  a form mapped to a field the schema lacks is refused: {escape(str(err))}",
            soft_wrap=True,
        )
    forms.connect(FORM_NAME, form_id=FORM, fields=parse_mapping(MAPPING, ["email"]), **common)
    console.print(
        f"  the lead form {escape(repr(FORM_NAME))} (form {FORM}) is connected to node "
        f"{escape(store.node)}: {', '.join(MAPPING)}, with its metadata and the source tag "
        f"{SOURCE!r}",
        soft_wrap=True,
    )
    token = Sources(root).create(store.node, "demo", "read")[1]
    app = create_app(
        ServerConfig(root, clock=clock, ingest_thread=False, graph=config, meta_verify_token=VERIFY)
    )
    with ServerThread(app) as server:
        hook = server.url + "/hooks/meta"
        query = f"hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={VERIFY}"
        status, body = _get(server.url, f"/hooks/meta?{query}")
        console.print(
            f"  the platform's subscription handshake: {status}, challenge {body.decode()} echoed"
        )
        lead = leads.add_lead(FORM, ANSWERS, clock() // 1000)
        answers = [
            leads.deliver_leadgen(hook, [lead]),
            leads.deliver_leadgen(hook, [lead]),  # delivered twice, as the platform may
            leads.deliver_leadgen(hook, [lead], secret="not-the-app-secret"),
        ]
        decoded = [(s, json.loads(b)) for s, b in answers]
        for what, (s, b) in zip(("signed", "again", "forged"), decoded, strict=True):
            note = b.get("error", {}).get("code") or b
            console.print(f"  webhook ({what}): {s} {escape(str(note))}")
        LeadWorker.of(root, clock, config=config).drain()  # `audience serve` runs it
        contact = f"lead:{lead['id']}"
        status, body = _get(server.url, f"/v1/profiles/{contact}", token)
        profile = json.loads(body)["profile"]
    shown = {k: profile.get(k) for k in ("email", "first_name", "city")}
    console.print(f"  the lead worker fetched it: profile {escape(contact)} {escape(str(shown))}")
    newcomers = store.compile("did lead_received").evaluate().ids()
    console.print(
        f"  and a lead_received event: 'did lead_received' finds {len(newcomers)} contact(s), "
        "so a trigger or a journey can welcome them"
    )
    return LeadsDemo(contact, profile, decoded, len(newcomers))
