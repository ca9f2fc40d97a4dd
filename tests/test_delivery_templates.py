"""A template that cannot be rendered when a trigger fires: the delivery is
recorded "failed" with the reason, the worker never sends it, and the other
deliveries of the same ingest reach a real SMTP server."""

from __future__ import annotations

import json
from pathlib import Path

from audience.runtime.delivery import DeliveryLog, DeliveryRequest
from audience.runtime.delivery.smtp import SmtpConfig
from audience.runtime.delivery.worker import run_worker
from audience.runtime.node import Node
from tests.helpers.mail_servers import SmtpSink, smtp_server

EXAMPLES = Path(__file__).resolve().parents[1] / "audience" / "examples"

RULES = """
trigger "Welcome" {
  on form_compiled where form_name = "addUser"
  do send_email(campaign: "welcome", to: profile.email,
                fields: {first_name: profile.first_name})
}
trigger "Thanks" {
  on form_compiled where form_name = "addUser"
  do send_email(campaign: "thanks", to: profile.email, fields: {form: event.form_name})
}
trigger "Gone" {
  on form_compiled where form_name = "addUser"
  do send_email(campaign: "never-saved", to: profile.email, fields: {})
}
"""


def test_render_failures_are_recorded_and_the_rest_is_sent(tmp_path: Path) -> None:
    st = Node.init(tmp_path / "shop", EXAMPLES / "maison.toml")
    st.ingest_profiles([{"contact_id": "c1", "email": "angela@example.com", "first_name": "An"}])
    eng = st.triggers
    eng.add_template("welcome", "Hi {{ first_name }}", "<p>{{ first_name }}</p>", "-")
    eng.add_template("thanks", "Thanks", "<p>{{ form }}</p>", "{{ form }}")
    eng.add_template("never-saved", "Gone", "<p>-</p>", "-")
    eng.add(RULES)  # a trigger names an existing template only
    eng.defs.delete_template("never-saved")  # deleted after the trigger was saved
    # changed after the trigger was checked: it now needs a field the trigger does not give
    eng.add_template("welcome", "Hi {{ nickname }}", "<p>{{ first_name }}</p>", "-")
    report = st.ingest_events(
        [
            {
                "id": "e1",
                "contact_id": "c1",
                "type": "form_compiled",
                "ts": "2026-11-20T10:00:00Z",
                "form_name": "addUser",
            }
        ]
    )
    assert report.triggers is not None and report.triggers.fired == 3 and not eng.errors
    by_source = {d.source: d for d in eng.log.list()}
    welcome, gone = by_source["trigger:Welcome"], by_source["trigger:Gone"]
    assert welcome.status == "failed"
    assert welcome.last_error == (
        "template 'welcome' uses nickname, which the sender does not give"
    )
    assert gone.status == "failed" and gone.last_error == "no template named 'never-saved'"
    assert by_source["trigger:Thanks"].status == "reserved"
    outcomes = {f.trigger: json.loads(f.outcome)[0] for f in eng.state.firings().list()}
    assert outcomes["Welcome"]["status"] == "failed"
    assert outcomes["Welcome"]["delivery"] == welcome.id
    assert "nickname" in outcomes["Welcome"]["reason"]

    sink = SmtpSink()
    with smtp_server(sink) as port:
        cfg = SmtpConfig(host="127.0.0.1", port=port, from_addr="shop@maison.example")
        stats = run_worker(tmp_path / "shop", once=True, smtp=cfg)
    assert (stats.sent, stats.failed, stats.retried) == (1, 0, 0)
    [msg] = sink.received
    assert msg["X-Audience-Campaign"] == "thanks" and msg["To"] == "angela@example.com"
    statuses = {d.source: (d.status, d.attempts) for d in eng.log.list()}
    assert statuses == {
        "trigger:Welcome": ("failed", 0),
        "trigger:Thanks": ("sent", 1),
        "trigger:Gone": ("failed", 0),
    }


def test_a_message_that_cannot_be_built_fails_and_the_worker_goes_on(tmp_path: Path) -> None:
    log = DeliveryLog.open(tmp_path)

    def email(key: str, to: str, subject: str, **more: str) -> DeliveryRequest:
        payload = {"to": to, "subject": subject, "text": "hi", "html": "<p>hi</p>", **more}
        return DeliveryRequest(key, "main", key, to, "email", "send_email", payload, 0)

    # a line break in an address would inject a header: refused
    bad = log.request(email("bad", "a@example.com\nBcc: b@example.com", "Hi"))
    broken = log.request(email("broken", "c@example.com", "Hi", reply_to="c@x.com\r\nX: y"))
    folded = log.request(email("folded", "d@example.com", "Hi Ann\nMarie"))
    sink = SmtpSink()
    with smtp_server(sink) as port:
        cfg = SmtpConfig(host="127.0.0.1", port=port, from_addr="shop@maison.example")
        stats = run_worker(tmp_path, once=True, smtp=cfg)
    assert (stats.sent, stats.failed, stats.retried) == (1, 2, 0)
    [msg] = sink.received
    assert msg["To"] == "d@example.com" and msg["Subject"] == "Hi Ann Marie"
    for d in (bad, broken):
        row = log.get(d.id)
        assert row is not None and row.status == "failed" and row.attempts == 1
        assert row.last_error is not None
        assert row.last_error.startswith("the message cannot be built: ")
    assert log.get(folded.id).status == "sent"  # type: ignore[union-attr]
