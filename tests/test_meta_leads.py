"""Lead forms without HTTP in front: connecting a form (the mapping checked
against the node's schema), the worker storing leads from the inbox into a real
store (profiles, lead_received events, triggers), the fake Graph server over
real HTTP with its faults, and the backfill."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audience.dsl.parser import parse
from audience.integrations.meta.fake import Fail
from audience.integrations.meta.graph import TokenInvalid
from audience.integrations.meta.leads.backfill import backfill
from audience.integrations.meta.leads.mapping import FieldMap, LeadFormError, convert
from audience.integrations.meta.leads.webhook import BadNotification, leads_of
from audience.integrations.meta.tokens import INACTIVE
from audience.runtime.journeys.service import JourneyService
from audience.runtime.node import Node
from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.definitions import PlanDefinitions
from audience.runtime.plans.service import source_of
from tests.meta_leads_support import (
    ANGELA,
    EXAMPLES,
    FORM,
    PAGE,
    T0,
    T0_S,
    World,
    lead_events,
    profile,
    world,
)


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path) as w:
        yield w


def notify(w: World, *leads: dict) -> int:
    return w.worker().inbox.add(leads_of(w.leads.notification(list(leads))), "webhook", w.clock())


# ---------------------------------------------------------------- connecting
def test_mapping_to_a_field_the_schema_lacks_is_refused_naming_it(tmp_path: Path) -> None:
    with world(tmp_path, connect=False) as w:
        bad = (FieldMap("email", "email"), FieldMap("job", "job_title"))
        with pytest.raises(LeadFormError) as e:
            w.connect(fields=bad)
        assert e.value.code == "unknown_field" and "'job_title'" in str(e.value)
        assert "'job'" in str(e.value)
        assert w.worker().forms.all() == []  # nothing written


@pytest.mark.parametrize(
    ("kw", "code", "words"),
    [
        ({"fields": (FieldMap("a", "email"), FieldMap("b", "email"))}, "bad_mapping", "two"),
        ({"fields": (FieldMap("a", "email"), FieldMap("a", "city"))}, "bad_mapping", "twice"),
        ({"source_field": "loyalty_points"}, "bad_field_type", "int, not a string"),
        ({"source_field": "nope"}, "unknown_field", "'nope'"),
        ({"match_field": "tags"}, "bad_field_type", "list<string>"),
        ({"metadata": ("ad_id", "colour")}, "bad_metadata", "'colour'"),
        ({"source": " "}, "bad_source", "source tag"),
        ({"form_id": "12ab"}, "bad_form_id", "digits"),
    ],
)
def test_bad_connections_are_refused(tmp_path: Path, kw: dict, code: str, words: str) -> None:
    with world(tmp_path, connect=False) as w:
        with pytest.raises(LeadFormError) as e:
            w.connect(**kw)
        assert e.value.code == code and words in str(e.value)
        assert w.worker().forms.all() == []


def test_the_schema_must_declare_lead_received(tmp_path: Path) -> None:
    with world(tmp_path, connect=False) as w:
        text = (EXAMPLES / "maison.toml").read_text()
        no_event = text[: text.index("# A lead from an ads platform")]
        other = Node.init(w.root, no_event, node="noleads")
        with pytest.raises(LeadFormError) as e:
            w.connect(node="noleads", schema=other.schema)
        assert e.value.code == "no_lead_event" and "events.lead_received" in str(e.value)
        wrong = no_event + '\n[events.lead_received]\nleadgen_id = "string"\nsource = "int"\n'
        bad = Node.init(w.root, wrong, node="badleads")
        with pytest.raises(LeadFormError) as e:
            w.connect(node="badleads", schema=bad.schema, metadata=())
        assert e.value.code == "bad_lead_event" and "source is a int" in str(e.value)


def test_a_form_is_connected_once(w: World) -> None:
    with pytest.raises(LeadFormError) as e:
        w.connect("again")
    assert e.value.code == "lead_form_exists" and "already connected as 'spring'" in str(e.value)


def test_answers_convert_to_the_field_types() -> None:
    assert convert(["12"], "int") == 12 and convert(["1.5"], "float") == 1.5
    assert convert(["Yes"], "bool") is True and convert(["no"], "bool") is False
    assert convert(["04/30/1990"], "date") == "1990-04-30"
    assert convert(["a", "b"], "list<string>") == ["a", "b"]
    assert convert(["a", "b"], "string") == "a, b"
    for values, ftype in ((["x"], "int"), (["1", "2"], "int"), (["maybe"], "bool")):
        with pytest.raises(ValueError):
            convert(values, ftype)


# ---------------------------------------------------------------- storing
def test_leads_become_profiles_and_lead_received_events(w: World) -> None:
    known = w.lead(
        {"email": " ANGELA@example.com", "first_name": "Angie", "interests": ["shoes", "bags"]}, 10
    )
    organic = w.lead({"email": "new@example.com", "points": "12", "city": "Milan"}, 20, ad_id=None)
    assert notify(w, known, organic) == 2
    assert w.worker().drain() == 2
    st = w.store()
    # an existing contact is found by email (case and spaces ignored)
    assert profile(st, ANGELA)["first_name"] == "Angie"
    assert profile(st, ANGELA)["tags"] == ["shoes", "bags"]  # both answers of a multi-choice
    new = profile(st, f"lead:{organic['id']}")
    assert (new["email"], new["city"], new["loyalty_points"]) == ("new@example.com", "Milan", 12)
    first, second = lead_events(st)
    assert first["contact_id"] == ANGELA and first["ts"] == (T0_S + 10) * 1000
    assert first["source"] == "fb-spring-2026"
    assert (first["ad_id"], first["adgroup_id"], first["page_id"], first["form_id"]) == (
        "6000000001",
        "6000000001",
        PAGE,
        FORM,
    )
    assert first["created_time"] == (T0_S + 10) * 1000 and first["organic"] is False
    assert second["organic"] is True and second["ad_id"] is None and second["adgroup_id"] is None


def test_metadata_kept_is_what_the_form_chose(tmp_path: Path) -> None:
    with world(tmp_path, connect=False) as w:
        w.connect(metadata=("form_id",), source="tag-2")
        notify(w, w.lead({"email": "x@example.com"}))
        w.worker().drain()
        (ev,) = lead_events(w.store())
        assert ev["form_id"] == FORM and ev["leadgen_id"] and ev["source"] == "tag-2"
        assert ev["ad_id"] is None and ev["page_id"] is None and ev["created_time"] is None


def test_unmapped_fields_and_missing_required_ones_are_kept_and_counted(w: World) -> None:
    odd = w.lead({"first_name": "Zoe", "points": "lots", "favourite_colour": "red"})
    notify(w, odd)
    w.worker().drain()
    row = w.worker().inbox.get(odd["id"])
    assert row.state == "done" and row.missing == ("email",)
    assert row.unmapped is not None and row.unmapped["favourite_colour"] == ["red"]
    assert "not a whole number" in row.unmapped["points"]["problem"]
    st = w.store()
    assert profile(st, f"lead:{odd['id']}")["first_name"] == "Zoe"  # stored all the same
    (ev,) = lead_events(st)
    assert ev["missing"] == "email" and "favourite_colour" in ev["unmapped"]
    counts = w.worker().inbox.counts(FORM)
    assert counts["done"] == 1 and counts["with_unmapped"] == 1 and counts["with_missing"] == 1


def test_two_leads_of_one_new_person_share_a_contact(w: World) -> None:
    a = w.lead({"email": "same@example.com", "city": "Rome"}, 1)
    b = w.lead({"email": " Same@Example.com", "city": "Milan"}, 2)
    notify(w, a, b)
    w.worker().drain()
    contacts = {e["contact_id"] for e in lead_events(w.store())}
    assert contacts == {f"lead:{a['id']}"}
    assert profile(w.store(), f"lead:{a['id']}")["city"] == "Milan"  # the later answer


def test_a_lead_delivered_twice_is_stored_once(w: World) -> None:
    lead = w.lead({"email": "twice@example.com"})
    assert notify(w, lead) == 1
    assert notify(w, lead, lead) == 0
    w.worker().drain()
    assert notify(w, lead) == 0  # after it is stored too
    assert w.worker().drain() == 0
    assert len(lead_events(w.store())) == 1


def test_a_lead_received_event_fires_a_trigger(w: World) -> None:
    st = w.store()
    st.triggers.add_template("WELCOME", "Welcome", "<p>Hi {{ first_name }}</p>", "Hi")
    st.triggers.add(
        'trigger "Welcome leads" {\n'
        '  on lead_received where source = "fb-spring-2026"\n'
        "  if profile.email is set\n"
        '  do send_email(campaign: "WELCOME", to: profile.email,\n'
        "                fields: {first_name: profile.first_name})\n"
        "}\n",
        "leads.rules",
    )
    lead = w.lead({"email": "welcome@example.com", "first_name": "Wendy"})
    notify(w, lead)
    w.worker().drain()
    sent = Node.open(w.root).triggers.log.list()
    assert [(d.contact_id, d.email) for d in sent] == [
        (f"lead:{lead['id']}", "welcome@example.com")
    ]


def test_a_lead_received_event_enters_a_journey(w: World) -> None:
    st = w.store()
    st.triggers.add_template("welcome-lead", "Welcome", "<p>Hi {{ first_name }}</p>", "Hi")
    deliveries = (
        'delivery "Welcome lead" {\n  template "welcome-lead"\n'
        "  fields { first_name: profile.first_name }\n}\n"
    )
    defs = PlanDefinitions.for_store(w.root)
    with defs.transaction() as conn:
        for d in parse(deliveries).definitions:
            defs.save_delivery(conn, st.node, d.name, source_of(deliveries, d))
    journeys = JourneyService(st, ManualClock(T0 - 3_600_000))
    journeys.add(
        'journey "Welcome leads" {\n  start now\n'
        '  enter on lead_received where source = "fb-spring-2026"\n'
        '  action "Hello" send "Welcome lead"\n}\n',
        "leads.rules",
    )
    journeys.go_live("Welcome leads")
    lead = w.lead({"email": "j@example.com", "first_name": "Jo"}, 10)
    notify(w, lead)
    w.worker().drain()
    later = JourneyService(Node.open(w.root), ManualClock(T0 + 60_000))
    (run,) = later.position("Welcome leads", f"lead:{lead['id']}")
    assert run["cause"] == f"event:lead_received:{lead['id']}"
    assert later.step_counts("Welcome leads")[0]["entered"] == 1


def test_a_lead_of_a_form_not_connected_waits_until_one_is(tmp_path: Path) -> None:
    with world(tmp_path, connect=False) as w:
        lead = w.lead({"email": "early@example.com"})
        notify(w, lead)
        w.worker().drain()
        assert w.worker().inbox.get(lead["id"]).state == "unrouted"
        w.connect()
        assert w.worker().drain() == 1
        assert w.worker().inbox.get(lead["id"]).state == "done"


# ---------------------------------------------------------------- faults
def test_dropped_connections_are_retried_and_nothing_is_lost(w: World) -> None:
    lead = w.lead({"email": "drop@example.com"})
    notify(w, lead)
    path = rf"{lead['id']}"
    w.fake.fail_next(path, "drop", "drop")
    assert w.worker().drain() == 1  # the client's own retries got through
    assert w.worker().inbox.get(lead["id"]).state == "done"
    other = w.lead({"email": "drop2@example.com"})
    notify(w, other)
    w.fake.fail_next(rf"{other['id']}", "drop", "drop", "drop", "drop")
    w.worker(max_retries=1).drain()
    row = w.worker().inbox.get(other["id"])
    assert row.state == "pending" and row.attempts == 1 and "no answer" in (row.last_error or "")
    assert w.worker().drain() == 0  # not due yet
    w.clock.advance(10_000)
    assert w.worker().drain() == 1  # the retry stores it
    assert w.worker().inbox.get(other["id"]).state == "done"
    assert len(lead_events(w.store())) == 2


def test_a_rate_limit_then_success(w: World) -> None:
    lead = w.lead({"email": "rl@example.com"})
    notify(w, lead)
    w.fake.fail_next(lead["id"], w.fake.rate_limit(80005), w.fake.rate_limit(80005))
    w.worker().drain()
    assert w.worker().inbox.get(lead["id"]).state == "done" and len(w.sleeps) == 2


def test_a_dead_token_marks_the_integration_inactive_and_keeps_the_lead(w: World) -> None:
    lead = w.lead({"email": "dead@example.com"})
    notify(w, lead)
    w.fake.fail_next(lead["id"], Fail(190, "Session has expired", subcode=463))
    w.worker().drain()
    row = w.worker().inbox.get(lead["id"])
    assert row.state == "pending" and "190/463" in (row.last_error or "")
    wk = w.worker()
    assert wk.integrations.get("shop-ads").status(w.clock()) == INACTIVE
    w.clock.advance(3_600_000)
    wk.integrations.check("shop-ads")  # re-checked (the fake says it is valid again)
    assert w.worker().drain() == 1 and w.worker().inbox.get(lead["id"]).state == "done"


def test_a_lead_the_platform_does_not_know_is_failed_not_retried(w: World) -> None:
    w.worker().inbox.add([("7999999999", FORM, PAGE, None, None)], "webhook", w.clock())
    w.worker().drain()
    row = w.worker().inbox.get("7999999999")
    assert row.state == "failed" and "does not exist" in (row.last_error or "")


def test_bad_notifications() -> None:
    with pytest.raises(BadNotification, match="not JSON"):
        leads_of(b"{nope")
    with pytest.raises(BadNotification, match="no leadgen_id"):
        leads_of(b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{}}]}]}')
    assert leads_of(b'{"object":"user","entry":[]}') == []
    other_field = b'{"object":"page","entry":[{"changes":[{"field":"feed","value":{}}]}]}'
    assert leads_of(other_field) == []


# ---------------------------------------------------------------- backfill
def test_backfill_pages_dedups_and_advances_the_watermark(w: World) -> None:
    leads = [w.lead({"email": f"b{i}@example.com"}, i) for i in range(230)]
    notify(w, *leads[:5])  # five came by webhook already
    w.worker().drain()
    result = backfill(w.worker(), "spring")
    assert (result.fetched, result.new, result.stored) == (230, 225, 225)
    assert result.watermark == T0_S + 229
    pages = [c for c in w.fake.calls if c.path == f"{FORM}/leads"]
    assert len(pages) == 3 and "after" in pages[2].params  # cursor paging, 100 a page
    assert len(lead_events(w.store())) == 230
    later = w.lead({"email": "later@example.com"}, 500)
    again = backfill(w.worker(), "spring")
    assert (again.fetched, again.new, again.watermark) == (2, 1, T0_S + 500)  # from the watermark
    last_page = [c for c in w.fake.calls if c.path == f"{FORM}/leads"][-1]
    assert f'"value":{T0_S + 228}' in last_page.params["filtering"]  # a second of overlap
    assert w.worker().inbox.get(later["id"]).state == "done"
    assert len(lead_events(w.store())) == 231


def test_the_watermark_stops_before_a_lead_not_stored(w: World) -> None:
    _, stuck, last = (w.lead({"email": f"s{i}@example.com"}, i * 10) for i in range(3))
    w.worker().inbox.add([(stuck["id"], FORM, PAGE, None, None)], "webhook", w.clock())
    w.fake.fail_next(stuck["id"], Fail(2, "Service temporarily unavailable"), *["drop"] * 5)
    result = backfill(w.worker(max_retries=0), "spring")
    assert result.watermark == T0_S  # the first lead's time: the stuck one is not stored
    assert w.worker().inbox.get(last["id"]).state == "done"
    w.clock.advance(60_000)
    w.fake.faults.clear()
    result = backfill(w.worker(), "spring")
    assert result.watermark == T0_S + 20 and w.worker().inbox.get(stuck["id"]).state == "done"


def test_backfill_with_a_dead_token_changes_nothing(w: World) -> None:
    w.lead({"email": "z@example.com"})
    w.fake.fail_next(rf"{FORM}/leads", Fail(190, "expired", subcode=463))
    with pytest.raises(TokenInvalid):
        backfill(w.worker(), "spring")
    assert w.worker().forms.get("spring").watermark_s == 0
    assert w.worker().inbox.counts() == {
        "pending": 0,
        "done": 0,
        "unrouted": 0,
        "failed": 0,
        "with_unmapped": 0,
        "with_missing": 0,
    }
