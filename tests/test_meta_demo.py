"""The ads platform part of the demo, against the fake Graph API on loopback."""

from __future__ import annotations

from pathlib import Path

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
    text = console.export_text()
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
