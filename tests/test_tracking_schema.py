"""The email tracking event types are built into every schema (docs/schema.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audience.runtime.delivery import DeliveryLog
from audience.runtime.delivery.model import wall_ms
from audience.runtime.node import Node
from audience.runtime.tracking.outbox import drain, to_outbox
from audience.schema import TRACKING_EVENTS, Schema, SchemaError


def test_every_schema_has_them_and_may_add_properties() -> None:
    schema = Schema.from_toml('[events.email_clicked]\ncampaign_id = "string"\nlink = "string"\n')
    assert schema.events["email_clicked"] == {
        **TRACKING_EVENTS["email_clicked"],
        "campaign_id": "string",
    }
    assert schema.events["unsubscribed"] == TRACKING_EVENTS["unsubscribed"]
    assert Schema().events == TRACKING_EVENTS
    # written back without the built-in tables it does not extend
    text = schema.to_toml()
    assert "[events.email_clicked]" in text and "[events.email_opened]" not in text
    assert Schema.from_toml(text) == schema


def test_a_tracking_property_may_not_be_retyped() -> None:
    with pytest.raises(SchemaError, match=r"events\.email_clicked\.link_index is a built-in"):
        Schema.from_toml('[events.email_clicked]\nlink_index = "string"\n')


def test_a_store_whose_own_events_use_a_tracking_name_keeps_working(tmp_path: Path) -> None:
    # a store made before tracking, whose form events have an int "step"
    schema = Schema.from_toml('[events.form_compiled]\nstep = "int"\nsource = "string"\n')
    assert "step" not in schema.events["email_clicked"]
    assert schema.events["email_clicked"]["source"] == "string"
    store = Node.init(tmp_path / "old", schema)
    store.ingest_events([{"contact_id": "a", "type": "form_compiled", "ts": wall_ms(), "step": 2}])
    with DeliveryLog.open(tmp_path / "old") as log:
        with log.transaction() as conn:
            event = {"id": "c1", "contact_id": "a", "type": "email_clicked", "ts": wall_ms()}
            to_outbox(conn, "main", {**event, "step": "Welcome", "link": "https://x.example"})
        assert drain(log, lambda node: Node.open(tmp_path / "old", node)) == 1
    again = Node.open(tmp_path / "old")
    assert again.rejected() == []
    found = again.compile('did email_clicked where link = "https://x.example"')
    assert len(found.evaluate(as_of=wall_ms() + 60_000)) == 1
