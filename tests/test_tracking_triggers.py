"""A trigger's send_email to an unsubscribed address is recorded suppressed
(reason ``unsubscribed``); a test send to a literal address still goes."""

from __future__ import annotations

from audience.runtime.node import Node
from audience.runtime.tracking import suppression
from tests.helpers.triggers import add, deliveries, form, seed
from tests.helpers.triggers import store as store  # the fixture


def test_a_trigger_skips_an_unsubscribed_address(store: Node) -> None:
    assert store.path is not None
    seed(store)
    suppression.add(store.path, "Angela@Example.com", suppression.UNSUBSCRIBED)
    store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    [d] = deliveries(store)
    assert (d.status, d.cap, d.email) == ("suppressed", "unsubscribed", "angela@example.com")
    # a send to a literal address is a test send: never suppressed
    add(
        store,
        'on form_compiled\ndo send_email(campaign: "C-1234", to: "angela@example.com",\n'
        "  fields: {first_name: profile.first_name, form: event.form_name})",
        name="Test copy",
    )
    store.ingest_events([form("e2", "c1", "2026-11-21T10:00:00Z")])
    test = [x for x in deliveries(store) if x.test]
    assert [(x.status, x.cap) for x in test] == [("reserved", None)]
