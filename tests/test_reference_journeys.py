"""The reference interpreter of journeys (tests/reference/journeys.py) on
hand-written scenarios: the seed's welcome journey, checks decided by event
time (late clicks, clicks after the deadline), waits, re-entry, the three ways
in, and section 3 conditions in checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.dsl import parse
from audience.dsl.ast_journeys import ActionStep, Journey, step_paths
from audience.schema import Schema
from tests.helpers.language import SPEC_JOURNEY as WELCOME
from tests.reference.journeys import RefJourney, dt_to_ms

SCHEMA = Schema.load(Path(__file__).parent / "corpus" / "schema.toml")
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = dt_to_ms(dt.datetime(2027, 1, 10, 9, 0, tzinfo=dt.UTC))


def journey(text: str) -> Journey:
    j = parse(text).definitions[0]
    assert isinstance(j, Journey)
    return j


def welcome(**kw: Any) -> RefJourney:
    return RefJourney(journey(WELCOME), schema=SCHEMA, **kw)


def signup(ref: RefJourney, contact: str, ts: int, eid: str | None = None) -> None:
    ev = {"type": "form_compiled", "ts": ts, "form_name": "addUser", "context": "WEB"}
    ref.event(contact, ev | ({"id": eid} if eid else {}))


def click(ref: RefJourney, contact: str, ts: int, entry: int = 1, **kw: Any) -> None:
    key = ref.delivery_key("0", contact, entry)
    ref.event(contact, {"type": "email_clicked", "ts": ts, "delivery_key": key} | kw)


def states(ref: RefJourney, contact: str) -> list[tuple[str, str | None]]:
    return [(p.state, p.step) for p in ref.position(contact)]


def test_welcome_click_within_three_days_gets_the_promo() -> None:
    ref = welcome()
    signup(ref, "angela", T0)
    assert ref.sends == [("0", "angela", 1)]
    assert states(ref, "angela") == [("checking", "1")]
    assert ref.position("angela")[0].wake_at_ms == T0 + 3 * DAY
    click(ref, "angela", T0 + DAY)
    assert ref.sends == [("0", "angela", 1), ("1.yes.0", "angela", 1)]
    assert states(ref, "angela") == [("done", None)]
    assert ref.position("angela")[0].path == ("0", "1", "1.yes.0", "1.yes.1")


def test_welcome_no_click_ends_at_the_deadline() -> None:
    ref = welcome()
    signup(ref, "bruno", T0)
    ref.advance(T0 + 3 * DAY - 1)
    assert states(ref, "bruno") == [("checking", "1")]
    ref.advance(T0 + 3 * DAY)
    assert states(ref, "bruno") == [("done", None)]
    assert ref.position("bruno")[0].path == ("0", "1", "1.no.0")
    assert ref.sends == [("0", "bruno", 1)]


def test_a_click_after_the_deadline_ingested_before_the_tick_is_no() -> None:
    ref = welcome()
    signup(ref, "c", T0)
    click(ref, "c", T0 + 3 * DAY + 1)
    assert states(ref, "c") == [("checking", "1")]
    ref.advance(T0 + 4 * DAY)
    assert ref.position("c")[0].path[-1] == "1.no.0"


def test_a_click_at_the_deadline_counts() -> None:
    ref = welcome()
    signup(ref, "c", T0)
    click(ref, "c", T0 + 3 * DAY)
    assert ref.position("c")[0].path[-1] == "1.yes.1"


def test_a_late_click_with_an_earlier_time_counts_until_the_tick() -> None:
    ref = welcome()
    signup(ref, "d", T0)
    ref.advance(T0 + 2 * DAY)  # the scheduler ran; the deadline is not due yet
    click(ref, "d", T0 + DAY)  # arrives late, but its own time is inside
    assert ref.position("d")[0].path[-1] == "1.yes.1"


def test_once_the_run_took_no_a_late_click_does_not_re_decide() -> None:
    ref = welcome()
    signup(ref, "e", T0)
    ref.advance(T0 + 5 * DAY)
    click(ref, "e", T0 + DAY)
    assert ref.position("e")[0].path[-1] == "1.no.0"
    assert ref.sends == [("0", "e", 1)]


def test_clicks_that_do_not_count() -> None:
    ref = welcome()
    signup(ref, "f", T0)
    click(ref, "f", T0 + HOUR, bot=True)  # a scanner
    click(ref, "f", T0 + HOUR, entry=2)  # another run's delivery
    ref.event(
        "f", {"type": "email_opened", "ts": T0, "delivery_key": ref.delivery_key("0", "f", 1)}
    )
    ref.event("f", {"type": "email_clicked", "ts": T0 + HOUR})  # no key
    ref.advance(T0 + 3 * DAY)
    assert ref.position("f")[0].path[-1] == "1.no.0"


def test_entry_needs_the_where_and_each_event_id_counts_once() -> None:
    ref = welcome()
    ref.event("g", {"type": "form_compiled", "ts": T0, "form_name": "other", "context": "WEB"})
    ref.event("g", {"type": "purchased", "ts": T0, "amount": 3.0})
    assert ref.position("g") == []
    signup(ref, "g", T0, eid="x1")
    signup(ref, "h", T0, eid="x1")  # the same event id again: dropped like the store does
    assert [c for _, c, _ in ref.sends] == ["g"]


def test_once_per_contact_refuses_a_second_entry() -> None:
    ref = welcome()
    signup(ref, "i", T0)
    ref.advance(T0 + 10 * DAY)
    signup(ref, "i", T0 + 11 * DAY)
    assert len(ref.position("i")) == 1
    assert ref.enter("i", T0 + 400 * DAY) is None


def test_again_after_allows_a_new_entry_d_after_the_previous() -> None:
    text = """journey j { start now again after 30 days
      action "A" send "d" wait 40 days action "B" send "d" }"""
    ref = RefJourney(journey(text))
    assert ref.enter("k", T0) == 1
    assert ref.enter("k", T0 + 30 * DAY - 1) is None
    assert ref.enter("k", T0 + 30 * DAY) == 2  # the first run is still waiting: both go on
    ref.advance(T0 + 70 * DAY)
    assert ref.sends == [("0", "k", 1), ("0", "k", 2), ("2", "k", 1), ("2", "k", 2)]
    assert [p.state for p in ref.position("k")] == ["done", "done"]


def test_start_at_refuses_earlier_entries_in_its_zone() -> None:
    text = """journey j { start at 2027-01-10 09:00 timezone "Europe/Rome" action "A" send "d" }"""
    ref = RefJourney(journey(text))
    start = T0 - HOUR  # 09:00 in Rome is 08:00 UTC in January
    assert ref.enter("a", start - 1) is None
    assert ref.enter("a", start) == 1
    assert RefJourney(journey(text), live_from_ms=start + MIN).enter("b", start) is None


def test_waits_go_on_from_their_due_instant_not_from_the_tick() -> None:
    text = """journey j { start now
      wait 1 day
      check "c" clicked "A" within 2 days yes { end } no { action "N" send "d" }
      action "A" send "never reached" }"""
    ref = RefJourney(journey(text))
    ref.enter("a", T0)
    ref.advance(T0 + 2 * DAY)  # a late tick: the check was reached at T0 + 1 day
    assert ref.position("a")[0].wake_at_ms == T0 + 3 * DAY
    ref.advance(T0 + 10 * DAY)
    assert ref.sends == [("1.no.0", "a", 1)]


def test_a_click_during_a_wait_decides_on_arrival_at_the_check() -> None:
    text = """journey j { start now
      action "A" send "d"
      wait 1 day
      check "c" clicked "A" link "Shop" within 1 day
        yes { wait 2 hours action "Y" send "d" }
        no { end } }"""
    ref = RefJourney(journey(text))
    ref.enter("a", T0)
    key = ref.delivery_key("0", "a", 1)
    ref.event("a", {"type": "email_clicked", "ts": T0 + HOUR, "delivery_key": key, "link": "x"})
    ref.event("a", {"type": "email_clicked", "ts": T0 + 2 * HOUR, "delivery_key": key,
                    "link_text": "Shop"})  # fmt: skip
    ref.advance(T0 + DAY)
    assert ref.position("a")[0].step == "2.yes.0"
    assert ref.position("a")[0].wake_at_ms == T0 + DAY + 2 * HOUR
    ref.advance(T0 + DAY + 2 * HOUR)
    assert ref.sends == [("0", "a", 1), ("2.yes.1", "a", 1)]


def test_a_condition_check_looks_at_what_happens_after_the_arrival() -> None:
    text = """journey j { start now
      check "bought" did purchased where amount > 10 within 7 days
        yes { action "Thanks" send "d" } no { action "Nudge" send "d" } }"""
    ref = RefJourney(journey(text), schema=SCHEMA)
    ref.event("a", {"type": "purchased", "ts": T0 - DAY, "amount": 50.0})  # before: ignored
    ref.enter("a", T0)
    ref.event("a", {"type": "purchased", "ts": T0 + DAY, "amount": 5.0})
    assert ref.position("a")[0].state == "checking"
    ref.event("a", {"type": "purchased", "ts": T0 + 2 * DAY, "amount": 50.0})
    assert ref.sends == [("0.yes.0", "a", 1)]
    ref.enter("b", T0)
    ref.advance(T0 + 7 * DAY)
    assert ("0.no.0", "b", 1) in ref.sends


def test_a_negated_condition_holds_on_arrival() -> None:
    text = """journey j { start now
      check "quiet" not did purchased within 7 days yes { action "Y" send "d" } no { end } }"""
    ref = RefJourney(journey(text), schema=SCHEMA)
    ref.enter("a", T0)
    assert ref.sends == [("0.yes.0", "a", 1)]


def test_entry_if_is_evaluated_at_the_event_time_with_the_profile() -> None:
    text = """journey j { start now
      enter on purchased if newsletter and did viewed_product in last 1 day
      action "A" send "d" }"""
    profiles = {"a": {"newsletter": True}, "b": {"newsletter": False}}
    ref = RefJourney(journey(text), schema=SCHEMA, profiles=profiles)
    for c in ("a", "b"):
        ref.event(c, {"type": "viewed_product", "ts": T0})
        ref.event(c, {"type": "purchased", "ts": T0 + HOUR})
    assert ref.sends == [("0", "a", 1)]
    ref.event("a", {"type": "purchased", "ts": T0 + 3 * DAY})  # once per contact anyway
    assert len(ref.position("a")) == 1


def test_segment_entry_takes_joiners_after_the_baseline() -> None:
    text = """journey j { start now enter segment "New" action "A" send "d" }"""
    ref = RefJourney(journey(text))
    assert ref.membership({"old"}, T0) == []
    assert ref.membership({"old", "new1"}, T0 + MIN) == ["new1"]
    assert ref.membership({"new1", "new2"}, T0 + 2 * MIN) == ["new2"]
    assert ref.membership({"old", "new1", "new2"}, T0 + 3 * MIN) == ["old"]
    assert [c for _, c, _ in ref.sends] == ["new1", "new2", "old"]


def test_months_are_calendar_months_in_the_start_zone() -> None:
    text = """journey j { start at 2027-01-01 00:00 timezone "Europe/Rome"
      wait 2 months action "A" send "d" }"""
    ref = RefJourney(journey(text))
    jan31 = dt_to_ms(dt.datetime(2027, 1, 31, 10, 0, tzinfo=dt.UTC))  # 11:00 in Rome
    ref.enter("a", jan31)
    # 31 March 11:00 in Rome, after the switch to summer time: 09:00 UTC
    due = dt_to_ms(dt.datetime(2027, 3, 31, 9, 0, tzinfo=dt.UTC))
    assert ref.position("a")[0].wake_at_ms == due


@pytest.mark.parametrize("late", [0, DAY])
def test_scheduler_lateness_does_not_change_the_outcome(late: int) -> None:
    ref = welcome()
    for i, c in enumerate(["a", "b", "c"]):
        signup(ref, c, T0 + i * HOUR)
    click(ref, "b", T0 + 2 * DAY)
    ref.advance(T0 + 3 * DAY + 2 * HOUR + late)
    assert sorted(ref.sends) == [
        ("0", "a", 1), ("0", "b", 1), ("0", "c", 1), ("1.yes.0", "b", 1)
    ]  # fmt: skip
    assert {c: ref.position(c)[0].path[-1] for c in "abc"} == {
        "a": "1.no.0", "b": "1.yes.1", "c": "1.no.0"
    }  # fmt: skip


# ------------------------------------------------------------------ properties

_LABELS = iter(range(10**9))


@st.composite
def _steps(draw: st.DrawFn, sends: tuple[str, ...], depth: int) -> list[str]:
    """Steps as text: sends labelled uniquely, checks on an earlier send of the path."""
    out: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["send", "wait", "check"] if depth < 2 else ["send", "wait"]))
        if kind == "send":
            label = f"S{next(_LABELS)}"
            out.append(f'action "{label}" send "d"')
            sends = (*sends, label)
        elif kind == "wait":
            out.append(f"wait {draw(st.integers(1, 48))} hours")
        else:
            label = f"C{next(_LABELS)}"
            within = f"within {draw(st.integers(1, 72))} hours"
            if sends and draw(st.booleans()):
                how = draw(st.sampled_from(["clicked", "opened"]))
                cond = f'{how} "{draw(st.sampled_from(sends))}"'
            else:
                cond = "did purchased"
            yes = " ".join(draw(_steps(sends, depth + 1)))
            no = " ".join(draw(_steps(sends, depth + 1)))
            out.append(f'check "{label}" {cond} {within} yes {{ {yes} }} no {{ {no} }}')
            break  # nothing runs after a check in its block
    return out


@st.composite
def _scenarios(draw: st.DrawFn) -> tuple[Journey, list[tuple[str, dict[str, Any]]], int]:
    text = "journey j { start now again after 1 day " + " ".join(draw(_steps((), 0))) + " }"
    j = journey(text)
    sends = [sid for sid, s in step_paths(j.steps) if isinstance(s, ActionStep)]
    contacts = ["a", "b"]
    events: list[tuple[str, dict[str, Any]]] = []
    for c in contacts:
        for entry_at in sorted(set(draw(st.lists(st.integers(0, 72), min_size=1, max_size=2)))):
            events.append((c, {"type": "form_compiled", "ts": T0 + entry_at * HOUR}))
    for _ in range(draw(st.integers(0, 8))):
        c = draw(st.sampled_from(contacts))
        ts = T0 + draw(st.integers(0, 300)) * HOUR
        kind = draw(st.sampled_from(["email_clicked", "email_opened", "purchased"]))
        ev: dict[str, Any] = {"type": kind, "ts": ts}
        if kind != "purchased" and sends:
            sid, entry = draw(st.sampled_from(sends)), draw(st.integers(1, 2))
            ev["delivery_key"] = f"journey:1:v1:{sid}:{c}:{entry}"
        events.append((c, ev))
    return j, events, T0 + 400 * HOUR


def _run(j: Journey, feed: list[tuple[str, dict[str, Any]]], ticks: list[int]) -> RefJourney:
    ref = RefJourney(j, schema=SCHEMA)
    for c, ev in feed:
        if ev["type"] == "form_compiled":
            ref.enter(c, ev["ts"])
        else:
            ref.event(c, ev)
    for t in ticks:
        ref.advance(t)
    return ref


@settings(max_examples=150, deadline=None)
@given(_scenarios(), st.randoms(use_true_random=False), st.lists(st.integers(0, 400)))
def test_event_time_decides_whatever_the_order_and_the_ticks(
    scenario: tuple[Journey, list[tuple[str, dict[str, Any]]], int],
    rnd: Any,
    ticks: list[int],
) -> None:
    """Fed before the scheduler ticks, events decide by their own times: any
    feeding order and any sequence of ticks give the same sends and paths; every
    action runs at most once per (step, contact, entry); every run ends or waits
    for a later instant."""
    j, events, end = scenario
    entries = [e for e in events if e[1]["type"] == "form_compiled"]
    others = [e for e in events if e[1]["type"] != "form_compiled"]
    base = _run(j, entries + others, [end])
    shuffled = list(others)
    rnd.shuffle(shuffled)
    # entries first (an entry's time is the call's), the rest in any order, ticks in order
    steps = [T0 + t * HOUR for t in sorted(ticks)] + [end]
    other = _run(j, entries + shuffled, steps)
    assert sorted(other.sends) == sorted(base.sends)
    assert len(set(base.actions)) == len(base.actions)
    for c in ("a", "b"):
        assert [p.path for p in other.position(c)] == [p.path for p in base.position(c)]
        for p in base.position(c):
            assert p.state == "done" or (p.wake_at_ms is not None and p.wake_at_ms > end)
