"""The ads platform part of the demo, against the fake Graph API on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from audience.demo import shop
from audience.demo.meta import INTEGRATION, meta_story
from audience.integrations.meta.graph import GraphConfig
from audience.integrations.meta.tokens import Integrations
from audience.runtime.delivery.log import DeliveryLog
from audience.runtime.plans.clock import wall_clock


def test_meta_story(tmp_path: Path) -> None:
    console = Console(record=True, width=120)
    out = meta_story(tmp_path / "ads", console, shop.DEFAULT_NOW, n_contacts=300)
    assert out.statuses == ["expiring", "active", "inactive"]
    assert out.raised == ["7d", "inactive"]  # the second tick raised nothing
    assert [(b["integration"], b["reminder"], b["days_left"]) for b in out.posted] == [
        (INTEGRATION, "7d", 5),
        (INTEGRATION, "inactive", 59),  # a day after the exchange: 59 days were left
    ]
    # the sync: everyone eligible first, then only the day's difference
    first, daily = out.sync_jobs
    assert (first.state, first.origin, daily.state, daily.origin) == (
        "succeeded",
        "manual",
        "succeeded",
        "schedule",
    )
    c = first.counts
    assert c["sent"] == c["to_add"] == c["eligible"] > 0 and c["no_consent"] > 0
    d = daily.counts
    assert (d["to_add"], d["to_remove"], d["sent"]) == (3, 1, 4)
    assert d["invalid"] == {"email_bad_domain": 1, "email_not_one_at_sign": 1}
    assert d["eligible"] == c["eligible"] + 3 - 1
    # the lead: by the signed webhook, stored once, a forged one refused
    assert out.leads is not None
    assert [(s, b.get("new", b.get("error", {}).get("code"))) for s, b in out.leads.answers] == [
        (200, 1),
        (200, 0),
        (403, "bad_signature"),
    ]
    assert out.leads.profile["first_name"] == "Francesca" and out.leads.lead_received == 1
    text = console.export_text()
    assert "is refused: form field 'size' maps to profile field 'shoe_size'" in text
    assert f"now counts about {c['sent']:,} (Normal)" in text
    assert "EAAG…7f3a" in text and "EAAGdemo-first-token" not in text
    assert "no new reminder (each is raised once)" in text
    assert "the receiver got: integration 'Maison ads' expires in 5 day(s)" in text
    # the store keeps what the story did: the integration, the two sent reminders
    i = Integrations(tmp_path / "ads", GraphConfig(), wall_clock).get(INTEGRATION)
    assert i.refused and i.account_id == "1020304050"
    log = DeliveryLog.open(tmp_path / "ads")
    try:
        assert [(d.kind, d.status) for d in log.list()] == [("webhook", "sent")] * 2
    finally:
        log.close()


def test_the_sync_story_names_the_seed_segments_condition() -> None:
    from audience.demo.meta_sync import CONDITION, SEGMENT
    from audience.demo.run import seed_segments
    from audience.dsl.formatter import format_text

    seed = next(s for s in seed_segments() if s.name == SEGMENT)
    assert CONDITION in format_text(seed)


def test_the_fake_serves_audiences_and_leads_side_by_side() -> None:
    """Both are read by a numeric id: an id one part does not know is the other's."""
    from audience.integrations.meta.fake import FakeGraph, running
    from audience.integrations.meta.fake.audiences import install as audiences
    from audience.integrations.meta.fake.leads import install as leads
    from audience.integrations.meta.graph import GraphClient, GraphError

    fake = FakeGraph()
    fake.add_token("EAAB-both", expires_at=0)
    aud = audiences(fake).create("1", "both")
    lead = leads(fake).add_lead("4000000001", {"email": "x@example.com"}, 1_780_000_000)
    with running(fake) as url:
        client = GraphClient(GraphConfig(base_url=url, max_retries=0), "EAAB-both")
        assert client.get(aud.id, {"fields": "name"})["name"] == "both"
        assert client.get(lead["id"], {"fields": "id,form_id"})["form_id"] == "4000000001"
        with pytest.raises(GraphError) as err:
            client.get("999")
        assert (err.value.code, err.value.subcode) == (100, 33)
