"""Journeys at run time, in process over real SQLite files: entries, actions,
waits, checks decided by the events' own times, re-entry, versions, states,
DND, segment entry and the step log (docs/journeys-runtime.md)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from audience.dsl.ast import Duration
from audience.dsl.ast_journeys import (
    ActionStep,
    CheckStep,
    Clicked,
    EndStep,
    EnterSegment,
    Journey,
    StartNow,
    WaitStep,
)
from audience.dsl.errors import DslError
from audience.runtime.delivery import DeliveryLog
from audience.runtime.journeys.service import JourneyError, JourneyService
from audience.runtime.node import Node
from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.scheduler import Scheduler
from audience.runtime.triggers.clock import set_clock
from tests.journeys_support import (
    DAY,
    HOUR,
    MINUTE,
    T0,
    build,
    click,
    contact,
    days,
    form,
    iso,
    save,
    tag_journey,
    text_of,
    welcome,
)


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    c = ManualClock(T0)
    set_clock(c)  # the ingest path's clock (triggers and journeys moved by events)
    yield c
    set_clock(None)


@pytest.fixture
def store(tmp_path: Path) -> Node:
    return build(tmp_path / "shop", 10)


@pytest.fixture
def svc(store: Node, clock: ManualClock) -> JourneyService:
    return JourneyService(store, clock)


def sends(store: Node) -> list[tuple[str, str, str]]:
    """(key, contact, status) of every delivery, read from the file as another process would."""
    assert store.path is not None
    with DeliveryLog.open(store.path) as log:
        return [(d.key, d.contact_id, d.status) for d in log.list()]


def key(jid: int, version: int, step: str, cid: str, entry: int = 1) -> str:
    return f"journey:{jid}:v{version}:{step}:{cid}:{entry}"


def test_the_welcome_journey_sends_then_branches_on_the_click(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, welcome())
    store.ingest_events([form(i, contact(i), T0 + i * 1000) for i in range(5)])
    # c00004 has no email: it enters, and its send is skipped
    assert sorted(c for _, c, _ in sends(store)) == [contact(i) for i in range(4)]
    assert svc.position("Welcome", contact(4))[0]["state"] == "waiting"
    d = DeliveryLog.open(store.path).get_by_key(key(1, 1, "0", contact(1)))
    assert d is not None and d.source == "journey:Welcome"
    assert d.payload["journey"] == "Welcome" and d.payload["journey_version"] == 1
    assert d.payload["step"] == "Welcome" and d.payload["mail_group"] == "Welcome"
    assert d.payload["delivery"] == "Complete your profile" and "Hi Name1" in d.payload["text"]
    # a human click within the 3 days moves c00001 to "yes" at once
    clock.advance(HOUR)
    report = store.ingest_events([click(1, contact(1), d.key, T0 + HOUR)])
    assert report.triggers is not None and report.triggers.journeys is not None
    assert report.triggers.journeys.moved == 1
    assert key(1, 1, "1.yes.0", contact(1)) in {k for k, _, _ in sends(store)}
    [run] = svc.position("Welcome", contact(1))
    assert (run["state"], run["step"]) == ("done", "1.yes.1")
    # the others take "no" at the deadline, when the scheduler's time passes it
    clock.advance(3 * DAY)
    assert svc.advance().woken == 4
    counts = {s["step"]: s for s in svc.step_counts("Welcome")}
    assert counts["1.no.0"]["done"] == 4 and counts["1.yes.1"]["done"] == 1
    assert counts["0"]["entered"] == 5
    assert len(sends(store)) == 5


def test_a_check_decides_by_the_events_time_not_by_arrival(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, welcome(within=1))
    store.ingest_events([form(i, contact(i), T0) for i in range(3)])
    deadline = T0 + DAY
    # the clock is far past the deadline before the scheduler runs; c00000's
    # click happened before it (arriving late), c00001's just after it
    clock.ms = T0 + 5 * DAY
    store.ingest_events(
        [
            click(0, contact(0), key(1, 1, "0", contact(0)), deadline),
            click(1, contact(1), key(1, 1, "0", contact(1)), deadline + 1),
        ]
    )
    svc.advance()
    branch = {
        contact(i): [h for h in svc.history("Welcome", contact(i)) if h["kind"] in ("yes", "no")]
        for i in range(3)
    }
    assert branch[contact(0)][0]["kind"] == "yes"
    assert branch[contact(0)][0]["at"] == "2027-01-11T09:00:00.000Z"  # the click's own time
    assert branch[contact(1)][0]["kind"] == "no"
    assert branch[contact(1)][0]["at"] == "2027-01-11T09:00:00.000Z"  # the deadline
    assert branch[contact(2)][0]["kind"] == "no"


def test_a_click_before_the_check_is_reached_counts_from_the_arrival(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    # the check comes a day after the send; the click (before it) decides at
    # the arrival; a click dated after the deadline never counts
    j = welcome(within=1)
    j = replace(j, steps=(j.steps[0], WaitStep(days(1)), j.steps[1]))
    save(svc, j)
    store.ingest_events([form(i, contact(i), T0) for i in range(2)])
    store.ingest_events(
        [
            click(0, contact(0), key(1, 1, "0", contact(0)), T0 + HOUR),
            click(1, contact(1), key(1, 1, "0", contact(1)), T0 + 3 * DAY),
        ]
    )
    clock.advance(DAY)
    svc.advance()
    yes = [h for h in svc.history("Welcome", contact(0)) if h["kind"] == "yes"]
    assert yes[0]["at"] == "2027-01-11T09:00:00.000Z"
    assert svc.position("Welcome", contact(1))[0]["state"] == "waiting"
    clock.advance(DAY)
    svc.advance()
    assert svc.position("Welcome", contact(1))[0]["step"] == "2.no.0"


def test_an_ingest_decides_yes_but_only_the_scheduler_passes_time(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, welcome(within=1))
    store.ingest_events([form(i, contact(i), T0) for i in range(2)])
    clock.ms = T0 + 2 * DAY  # past the deadline, and no advance yet
    # a click after the deadline moves nothing; one before it (late) still counts
    store.ingest_events([click(0, contact(0), key(1, 1, "0", contact(0)), T0 + 2 * DAY)])
    assert svc.position("Welcome", contact(0))[0]["state"] == "waiting"
    store.ingest_events([click(1, contact(0), key(1, 1, "0", contact(0)), T0 + HOUR)])
    assert svc.position("Welcome", contact(0))[0]["step"] == "1.yes.1"
    assert svc.advance().woken == 1
    assert svc.position("Welcome", contact(1))[0]["step"] == "1.no.0"


def test_bot_clicks_and_other_links_do_not_count(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    j = welcome()
    check = j.steps[1]
    assert isinstance(check, CheckStep)
    j = replace(j, steps=(j.steps[0], replace(check, cond=Clicked("Welcome", "Complete it"))))
    save(svc, j)
    store.ingest_events([form(i, contact(i), T0) for i in range(3)])
    store.ingest_events(
        [
            click(0, contact(0), key(1, 1, "0", contact(0)), T0 + MINUTE, bot=True),
            click(1, contact(1), key(1, 1, "0", contact(1)), T0 + MINUTE),  # link text matches
            click(2, contact(2), key(1, 1, "0", contact(1)), T0 + MINUTE),  # another's key
        ]
    )
    assert [svc.position("Welcome", contact(i))[0]["state"] for i in range(3)] == [
        "waiting",
        "done",
        "waiting",
    ]


def test_once_per_contact_and_again_after(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, welcome("Once"))
    save(svc, welcome("Again", again_after=days(7)))
    store.ingest_events([form(1, contact(0), T0)])
    store.ingest_events([form(2, contact(0), T0 + DAY)])  # within 7 days: refused
    report = store.ingest_events([form(3, contact(0), T0 + 8 * DAY)])
    assert report.triggers is not None and report.triggers.journeys is not None
    assert report.triggers.journeys.skipped["once per contact"] == 1
    assert [r["entry"] for r in svc.position("Once", contact(0))] == [1]
    assert [r["entry"] for r in svc.position("Again", contact(0))] == [1, 2]
    # replaying an ingest enters nobody twice (the event is the entry's cause)
    store.ingest_events([form(3, contact(0), T0 + 8 * DAY)])
    assert len(svc.position("Again", contact(0))) == 2


def test_editing_a_live_journey_makes_a_version_and_runs_stay_on_theirs(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, welcome())
    store.ingest_events([form(0, contact(0), T0)])
    # version 2 waits a day before its first send
    svc.add(text_of(welcome(wait_first=1)))
    saved = svc.get("Welcome")
    assert (saved.state, saved.version) == ("live", 2)
    store.ingest_events([form(1, contact(1), T0 + MINUTE)])
    assert [r["version"] for r in svc.position("Welcome", contact(0))] == [1]
    assert [r["version"] for r in svc.position("Welcome", contact(1))] == [2]
    # c00000 (v1) clicks: its promo is keyed by v1's step ids
    store.ingest_events([click(0, contact(0), key(1, 1, "0", contact(0)), T0 + HOUR)])
    assert key(1, 1, "1.yes.0", contact(0)) in {k for k, _, _ in sends(store)}
    clock.advance(DAY + MINUTE)
    svc.advance()
    assert key(1, 2, "1", contact(1)) in {k for k, _, _ in sends(store)}  # v2's send is step 1
    assert svc.describe(svc.get("Welcome"))["versions"] == [1, 2]


def test_a_draft_takes_no_entries_and_editing_it_replaces_it(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, welcome(), live=False)
    store.ingest_events([form(0, contact(0), T0)])
    assert svc.position("Welcome", contact(0)) == []
    svc.add(text_of(welcome(within=5)))
    assert svc.describe(svc.get("Welcome"))["versions"] == [2]
    assert svc.get("Welcome").state == "draft"


def test_pause_holds_entries_and_moves_then_resume_decides_by_event_time(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, welcome(within=1))
    store.ingest_events([form(i, contact(i), T0) for i in range(2)])
    svc.pause("Welcome")
    clock.advance(HOUR)
    store.ingest_events([form(5, contact(5), T0 + HOUR)])  # refused: paused
    store.ingest_events([click(0, contact(0), key(1, 1, "0", contact(0)), T0 + HOUR)])
    clock.ms = T0 + 3 * DAY  # both deadlines pass during the pause
    assert svc.advance().woken == 0
    assert [r["state"] for r in svc.position("Welcome", contact(0))] == ["waiting"]
    assert svc.position("Welcome", contact(5)) == []
    svc.go_live("Welcome")
    # the click came before the deadline: yes, at the click's time; the other no
    h0 = [h for h in svc.history("Welcome", contact(0)) if h["kind"] in ("yes", "no")]
    h1 = [h for h in svc.history("Welcome", contact(1)) if h["kind"] in ("yes", "no")]
    assert (h0[0]["kind"], h0[0]["at"]) == ("yes", "2027-01-10T10:00:00.000Z")
    assert (h1[0]["kind"], h1[0]["at"]) == ("no", "2027-01-11T09:00:00.000Z")


def test_end_stops_every_run(store: Node, svc: JourneyService, clock: ManualClock) -> None:
    save(svc, welcome())
    store.ingest_events([form(i, contact(i), T0) for i in range(3)])
    svc.end("Welcome")
    assert {r["state"] for i in range(3) for r in svc.position("Welcome", contact(i))} == {
        "stopped"
    }
    clock.advance(5 * DAY)
    store.ingest_events([click(0, contact(0), key(1, 1, "0", contact(0)), T0 + HOUR)])
    svc.advance()
    assert len(sends(store)) == 3  # no promo, no later step
    with pytest.raises(JourneyError) as err:
        svc.add(text_of(welcome()))
    assert err.value.code == "ended"
    with pytest.raises(JourneyError) as err:
        svc.go_live("Welcome")
    assert err.value.code == "bad_state"
    svc.delete("Welcome")
    with pytest.raises(JourneyError) as err:
        svc.get("Welcome")
    assert err.value.code == "not_found"
    # a click for a deleted journey's message is recorded and moves nothing
    store.ingest_events([click(9, contact(1), key(1, 1, "0", contact(1)), T0 + HOUR)])


def test_a_live_journey_is_not_deleted_and_unsaved_deliveries_keep_it_draft(
    store: Node, svc: JourneyService
) -> None:
    save(svc, welcome())
    with pytest.raises(JourneyError) as err:
        svc.delete("Welcome")
    assert err.value.code == "bad_state"
    j = Journey("Broken", StartNow(), (ActionStep("A", send="No such delivery"),))
    # the checker refuses it; saved anyway (as if the delivery was deleted since),
    # going live checks again
    with pytest.raises(DslError):
        svc.add(text_of(j))
    assert [s.name for s in svc.list()] == ["Welcome"]
    svc.save(j, text_of(j))
    with pytest.raises(JourneyError) as err:
        svc.go_live("Broken")
    assert err.value.code == "not_ready"
    assert err.value.problems == ["step 0: delivery 'No such delivery' is not saved"]
    assert svc.get("Broken").state == "draft"


def test_the_dnd_policy_holds_sends_with_the_same_caps(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, welcome(dnd="Caps"))
    store.ingest_events([form(0, contact(0), T0)])
    store.ingest_events([click(0, contact(0), key(1, 1, "0", contact(0)), T0 + HOUR)])
    status = {k: s for k, _, s in sends(store)}
    assert status[key(1, 1, "0", contact(0))] == "reserved"
    assert status[key(1, 1, "1.yes.0", contact(0))] == "suppressed"  # max 1 per day
    promo = [h for h in svc.history("Welcome", contact(0)) if h["step"] == "1.yes.0"]
    assert promo[0]["outcome"]["reason"] == "Caps: max 1 per day"


def test_an_unsaved_policy_sends_nothing(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    svc.save(welcome(dnd="Nope"), text_of(welcome(dnd="Nope")))
    with pytest.raises(JourneyError) as err:
        svc.go_live("Welcome")
    assert err.value.problems == ["DND policy 'Nope' is not saved"]


def test_waits_and_profile_actions_through_the_api_entry(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, tag_journey())
    out = svc.enter("Tagger", contact(0))
    assert out["entered"] and out["run"]["step"] == "1" and out["run"]["waits_for"] == "time"
    assert svc.enter("Tagger", contact(0))["why_not"] == "once per contact"
    snap = store.snapshot()
    tags = snap.profile["tags"]
    assert tags is not None
    from audience.runtime.triggers.batch import profile_value

    assert profile_value(store.snapshot(), 0, "tags") == ["welcomed"]
    clock.advance(2 * HOUR)
    assert svc.advance().woken == 1
    assert profile_value(store.snapshot(), 0, "tags") == ["welcomed", "later"]
    assert svc.position("Tagger", contact(0))[0]["state"] == "done"


def test_advancing_in_small_batches_moves_everyone_once(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    j = Journey(
        "Later",
        StartNow(),
        (WaitStep(Duration(1, "hour")), ActionStep("Welcome", send="Complete your profile")),
    )
    save(svc, j)
    for i in range(10):
        svc.enter("Later", contact(i))
    clock.advance(HOUR)
    report = svc.runtime.advance(batch=3)
    assert (report.woken, report.batches) == (10, 4)
    assert len(sends(store)) == 8  # two have no email
    assert svc.advance().woken == 0


def test_segment_entry_takes_the_joiners_after_going_live(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    store.save_segment("Milan", 'city = "Milan"')
    store.ingest_profiles([{"contact_id": contact(0), "city": "Milan"}])
    save(svc, welcome("Milanese", entry=EnterSegment("Milan")))
    # members at going live are the baseline; later joiners enter
    store.ingest_profiles([{"contact_id": contact(i), "city": "Milan"} for i in (1, 2)])
    clock.advance(30_000)
    assert svc.advance().entered == 0  # checked at most once a minute
    clock.advance(30_000)
    assert svc.advance().entered == 2
    assert svc.position("Milanese", contact(0)) == []
    assert [len(svc.position("Milanese", contact(i))) for i in (1, 2)] == [1, 1]
    # leaving and joining again is a new entry only where re-entry allows
    store.ingest_profiles([{"contact_id": contact(1), "city": "Rome"}])
    clock.advance(MINUTE)
    svc.advance()
    store.ingest_profiles([{"contact_id": contact(1), "city": "Milan"}])
    clock.advance(MINUTE)
    assert svc.advance().skipped["once per contact"] == 1


def test_the_scheduler_advances_journeys(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, welcome(within=1))
    store.ingest_events([form(0, contact(0), T0)])
    clock.advance(2 * DAY)
    assert store.path is not None
    sched = Scheduler(store.path, clock=clock)
    try:
        report = sched.tick()
    finally:
        sched.close()
    assert report.journeys["main"].woken == 1
    assert svc.position("Welcome", contact(0))[0]["step"] == "1.no.0"


def test_a_failing_step_fails_its_run_alone(
    store: Node, svc: JourneyService, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(svc, welcome())
    svc.enter("Welcome", contact(0))
    from audience.runtime.journeys import advance

    real = advance.Mover._action

    def broken(self, conn, ctx, c, run, *a):
        if run.contact_id == contact(1):
            raise RuntimeError("boom")
        return real(self, conn, ctx, c, run, *a)

    monkeypatch.setattr(advance.Mover, "_action", broken)
    svc.enter("Welcome", contact(1))
    svc.enter("Welcome", contact(2))
    states = [svc.position("Welcome", contact(i))[0]["state"] for i in range(3)]
    assert states == ["waiting", "failed", "waiting"]
    assert key(1, 1, "0", contact(1)) not in {k for k, _, _ in sends(store)}
    assert svc.history("Welcome", contact(1))[-1]["kind"] == "failed"


def test_the_dry_run_replays_and_writes_nothing(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, welcome(dnd="Caps"))
    store.ingest_events([form(i, contact(i), T0 + i) for i in range(4)])
    store.ingest_events([click(1, contact(1), key(1, 1, "0", contact(1)), T0 + HOUR)])
    clock.advance(4 * DAY)
    svc.advance()
    assert store.path is not None

    def digest() -> dict[str, str]:
        return {
            str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.path.rglob("*"))  # type: ignore[union-attr]
            if p.is_file()
        }

    before = digest()
    report = svc.dry_run("Welcome", T0 - DAY, T0 + 5 * DAY, contact(1))
    assert digest() == before
    assert (report.events, report.entered) == (5, 4)
    steps = {s["step"]: s for s in report.steps}
    assert steps["1.yes.0"]["entered"] == 1 and steps["1.no.0"]["done"] == 3
    assert report.sends_per_day == {"2027-01-10": {"reserved": 4, "suppressed": 1}}
    assert report.suppressed == {"Caps: max 1 per day": 1}
    assert [(b["branch"], b["check"]) for b in report.branches] == [("yes", "Clicked?")]
    assert "clicked" in report.branches[0]["why"]
    assert "contact c00001:" in report.lines()
    assert report.to_dict()["history"][0]["kind"] == "entered"


def test_tables_and_uniqueness(store: Node, svc: JourneyService) -> None:
    save(svc, welcome())
    svc.enter("Welcome", contact(0))
    assert store.path is not None
    with sqlite3.connect(store.path / "deliveries.sqlite") as conn:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "insert into journey_steps (run_id, step, seq, kind, at_ms, outcome) "
                "select run_id, step, seq, kind, at_ms, outcome from journey_steps limit 1"
            )
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "insert into journey_runs (journey_id, version, contact_id, entry, cause, state, "
                "step, since_ms, entered_ms) select journey_id, version, contact_id, entry, "
                "'other', state, step, since_ms, entered_ms from journey_runs limit 1"
            )


def test_waits_are_calendar_time_in_the_journeys_zone_across_dst_and_month_ends(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    import datetime as dt

    from audience.dsl.ast_journeys import StartAt

    def at(text: str) -> int:
        return int(dt.datetime.fromisoformat(text).timestamp() * 1000)

    rome = StartAt(dt.datetime(2027, 1, 1, 0, 0), "Europe/Rome")
    day = Journey(
        "Day",
        rome,
        (WaitStep(Duration(1, "day")), ActionStep("Welcome", send="Complete your profile")),
    )
    month = Journey(
        "Month",
        rome,
        (WaitStep(Duration(1, "month")), ActionStep("Welcome", send="Complete your profile")),
    )
    save(svc, day)
    save(svc, month)
    # 2027-03-28 is the spring change in Rome: a day is 24 hours (10:00 CEST)
    clock.ms = at("2027-03-27T09:00:00+01:00")
    svc.enter("Day", contact(0))
    assert svc.position("Day", contact(0))[0]["wake_at"] == "2027-03-28T08:00:00.000Z"
    # a month from January 31 ends on the last day of February
    clock.ms = at("2027-01-31T12:00:00+01:00")
    svc.enter("Month", contact(1))
    assert svc.position("Month", contact(1))[0]["wake_at"] == "2027-02-28T11:00:00.000Z"


def test_entries_follow_where_if_and_the_start(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, welcome())
    store.ingest_events(
        [
            form(0, contact(0), T0 + 1, form_name="other"),  # `where` is false
            form(1, contact(1), T0 - HOUR),  # before the journey went live
            form(2, contact(2), T0 + 1),
        ]
    )
    assert [len(svc.position("Welcome", contact(i))) for i in range(3)] == [0, 0, 1]


def test_a_condition_check_takes_yes_at_the_contacts_event(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    from audience.dsl.parser import parse

    seg = parse('segment "x" { did purchased where amount > 50 }').definitions[0]
    cond = seg.cond  # type: ignore[union-attr]
    j = Journey(
        "Buyers",
        StartNow(),
        (
            CheckStep(
                "Bought?",
                cond,
                days(2),
                yes=(ActionStep("Promo", send="Your promotional code"),),
                no=(EndStep(),),
            ),
        ),
    )
    save(svc, j)
    svc.enter("Buyers", contact(0))
    svc.enter("Buyers", contact(1))
    clock.advance(HOUR)
    store.ingest_events(
        [
            {
                "id": "p0",
                "contact_id": contact(0),
                "type": "purchased",
                "ts": iso(T0 + HOUR),
                "amount": 80.0,
            },
            {
                "id": "p1",
                "contact_id": contact(1),
                "type": "purchased",
                "ts": iso(T0 + HOUR),
                "amount": 10.0,
            },
        ]
    )
    # its promo was sent at the purchase, and the branch ran out of steps
    assert svc.position("Buyers", contact(0))[0]["step"] == "0.yes.1"
    assert key(1, 1, "0.yes.0", contact(0)) in {k for k, _, _ in sends(store)}
    assert svc.position("Buyers", contact(1))[0]["state"] == "waiting"
    clock.advance(2 * DAY)
    svc.advance()
    assert svc.position("Buyers", contact(1))[0]["step"] == "0.no.0"
    # a purchase before reaching the check does not count: c00002 bought first
    store.ingest_events(
        [
            {
                "id": "p2",
                "contact_id": contact(2),
                "type": "purchased",
                "ts": iso(clock.ms),
                "amount": 90.0,
            }
        ]
    )
    clock.advance(MINUTE)
    svc.enter("Buyers", contact(2))
    assert svc.position("Buyers", contact(2))[0]["state"] == "waiting"


def test_an_unsubscribed_address_gets_no_journey_send(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    from audience.runtime.tracking import suppression

    assert store.path is not None
    suppression.add(store.path, " C00001@Example.com ", "unsubscribed")
    save(svc, welcome())
    save(svc, welcome("Capped", dnd="Caps"))  # the other path (caps counted one by one)
    store.ingest_events([form(i, contact(i), T0) for i in range(3)])
    status = {k: s for k, _, s in sends(store)}
    assert status[key(1, 1, "0", contact(0))] == "reserved"
    assert status[key(1, 1, "0", contact(1))] == "suppressed"
    assert status[key(2, 1, "0", contact(1))] == "suppressed"
    [logged] = [h for h in svc.history("Welcome", contact(1)) if h["kind"] == "action"]
    assert logged["outcome"] == {"status": "suppressed", "reason": "unsubscribed"}


def test_a_bounced_or_complaining_address_gets_no_journey_send_and_says_why(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    from audience.runtime.tracking import suppression

    assert store.path is not None
    suppression.add(store.path, "c00001@example.com", suppression.HARD_BOUNCE)
    suppression.add(store.path, "c00002@example.com", suppression.COMPLAINT)
    save(svc, welcome())
    save(svc, welcome("Capped", dnd="Caps"))  # the other path (caps counted one by one)
    store.ingest_events([form(i, contact(i), T0) for i in range(3)])
    caps = {k: c for k, c in _caps(store)}
    for journey in (1, 2):
        assert caps[key(journey, 1, "0", contact(0))] is None
        assert caps[key(journey, 1, "0", contact(1))] == "hard_bounce"
        assert caps[key(journey, 1, "0", contact(2))] == "complaint"
    [logged] = [h for h in svc.history("Welcome", contact(2)) if h["kind"] == "action"]
    assert logged["outcome"] == {"status": "suppressed", "reason": "complaint"}


def _caps(store: Node) -> list[tuple[str, str | None]]:
    """(key, cap) of every journey delivery: a suppressed one's cap is the list's reason."""
    assert store.path is not None
    with DeliveryLog.open(store.path) as log:
        return [(d.key, d.cap) for d in log.list()]


def test_a_triggers_enter_journey_enters_at_the_events_time_once(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    save(svc, tag_journey())
    rule = (
        'trigger "Big buyers" {\n  on purchased where amount > 50\n'
        '  do enter_journey("Tagger")\n}\n'
    )
    store.triggers.add(rule)
    buy = {"contact_id": contact(0), "type": "purchased", "ts": iso(T0 + MINUTE), "amount": 80.0}
    report = store.ingest_events([{"id": "b1", **buy}])
    assert report.triggers is not None and report.triggers.fired == 1
    [run] = svc.position("Tagger", contact(0))
    assert run["entered"] == "2027-01-10T09:01:00.000Z" and run["cause"].startswith("trigger:")
    store.ingest_events([{"id": "b2", **buy}])  # once per contact
    assert len(svc.position("Tagger", contact(0))) == 1
    with pytest.raises(DslError) as err:  # a journey that is not saved
        store.triggers.add(rule.replace('"Tagger"', '"Nope"').replace("Big", "Other"))
    assert "Nope" in str(err.value)


def test_an_opened_check_counts_human_opens_of_its_message(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    from audience.dsl.ast_journeys import Opened

    j = welcome()
    check = j.steps[1]
    assert isinstance(check, CheckStep)
    save(svc, replace(j, steps=(j.steps[0], replace(check, cond=Opened("Welcome")))))
    store.ingest_events([form(i, contact(i), T0) for i in range(3)])

    def opened(i: int, cid: str, bot: bool) -> dict[str, object]:
        k = key(1, 1, "0", cid)
        ts = iso(T0 + HOUR)
        return {"id": f"o{i}", "contact_id": cid, "type": "email_opened", "ts": ts,
                "delivery_key": k, "bot": bot}  # fmt: skip

    store.ingest_events([opened(0, contact(0), False), opened(1, contact(1), True)])
    # a click is not an open
    store.ingest_events([click(2, contact(2), key(1, 1, "0", contact(2)), T0 + HOUR)])
    assert [svc.position("Welcome", contact(i))[0]["state"] for i in range(3)] == [
        "done",
        "waiting",
        "waiting",
    ]


def test_clicks_during_a_pause_count_when_it_goes_live_again(
    store: Node, svc: JourneyService, clock: ManualClock
) -> None:
    # the run waits a day before its check; the click comes during a pause, while
    # no run watches its message yet
    j = welcome(within=2)
    save(svc, replace(j, steps=(j.steps[0], WaitStep(days(1)), j.steps[1])))
    store.ingest_events([form(0, contact(0), T0)])
    svc.pause("Welcome")
    store.ingest_events([click(0, contact(0), key(1, 1, "0", contact(0)), T0 + HOUR)])
    clock.advance(DAY)
    svc.go_live("Welcome")
    assert svc.position("Welcome", contact(0))[0]["step"] == "2.yes.1"
