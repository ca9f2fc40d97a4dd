"""Plans at run time, in process over real SQLite files: the edit rules, a run,
lateness, leases and resuming (SPEC 6.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audience.dsl.errors import DslError
from audience.runtime.node import Node
from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.definitions import PlanRun
from audience.runtime.plans.scheduler import Scheduler
from audience.runtime.plans.service import PlanError, PlanService
from tests.plans_support import (
    DAILY_DUE,
    DAY,
    HOUR,
    ONCE_DUE,
    RULES,
    build,
    check_spring_run,
    delivery_rows,
    milan_buyers_at_once,
    milan_with_email,
    per_contact,
    runs,
)

N = 40


class Crash(Exception):
    pass


@pytest.fixture
def store(tmp_path: Path) -> Node:
    return build(tmp_path / "shop", N)


def service(store: Node, clock: ManualClock) -> PlanService:
    return PlanService(store, clock)


def test_add_saves_drafts_with_versions(store: Node) -> None:
    clock = ManualClock(ONCE_DUE - 10 * DAY)
    svc = service(store, clock)
    result = svc.add(RULES, "plans.rules")
    assert [d.name for d in result.deliveries] == ["Spring event reminder"]
    assert [(p.name, p.state, p.version) for p in result.plans] == [
        ("Spring reminder", "draft", 1),
        ("Daily picks", "draft", 1),
    ]
    again = svc.add(RULES, "plans.rules")
    assert [p.version for p in again.plans] == [2, 2]
    assert again.deliveries[0].version == 2


def test_add_checks_the_names_against_the_store(store: Node) -> None:
    svc = service(store, ManualClock(ONCE_DUE - 10 * DAY))
    text = (
        RULES.replace('who "Milan buyers"', 'who "Nobody saved this"')
        .replace('dnd "Caps"', 'dnd "No such policy"')
        .replace('template "spring-event"', 'template "not-saved"')
    )
    with pytest.raises(DslError) as err:
        svc.add(text, "plans.rules")
    codes = {d.code for d in err.value.diagnostics}
    assert {"unknown_segment", "unknown_policy", "unknown_template"} <= codes
    assert svc.list_plans() == [] and svc.list_deliveries() == []


def test_ready_checks_what_the_plan_names_still_exists(store: Node) -> None:
    svc = service(store, ManualClock(ONCE_DUE - 10 * DAY))
    svc.add(RULES, "plans.rules")
    assert store.delete_segment("Milan buyers")
    assert store.triggers.defs.delete_policy("Caps")
    assert store.triggers.defs.delete_template("spring-event")
    with pytest.raises(PlanError) as err:
        svc.make_ready("Spring reminder")
    assert err.value.code == "not_ready"
    assert any("Milan buyers" in p for p in err.value.problems)
    assert any("spring-event" in p for p in err.value.problems)
    with pytest.raises(PlanError) as daily:
        svc.make_ready("Daily picks")
    assert any("Caps" in p for p in daily.value.problems)
    assert svc.get_plan("Spring reminder").state == "draft"
    assert svc.get_plan("Daily picks").state == "draft"


def test_ready_refuses_a_one_shot_time_already_past(store: Node) -> None:
    clock = ManualClock(ONCE_DUE + 1)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    with pytest.raises(PlanError) as err:
        svc.make_ready("Spring reminder")
    assert err.value.code == "not_ready"
    assert svc.get_plan("Spring reminder").state == "draft"


def test_one_shot_edits_until_due_never_after(store: Node) -> None:
    clock = ManualClock(ONCE_DUE - DAY)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Spring reminder")
    svc.add(RULES, "plans.rules")  # before it is due: allowed, stays ready
    saved = svc.get_plan("Spring reminder")
    assert (saved.state, saved.version) == ("ready", 2)
    clock.ms = ONCE_DUE
    for change in (
        lambda: svc.add(RULES, "plans.rules"),
        lambda: svc.make_draft("Spring reminder"),
    ):
        with pytest.raises(PlanError) as err:
            change()
        assert err.value.code == "plan_due"
        assert "2027-03-11T09:00:00Z" in err.value.message
    after = svc.get_plan("Spring reminder")
    assert (after.state, after.version, after.text) == ("ready", 2, saved.text)
    # the refused request saved nothing else either (all or nothing)
    assert svc.get_delivery("Spring event reminder").version == 2


def test_drafts_edit_any_time(store: Node) -> None:
    clock = ManualClock(ONCE_DUE + 5 * DAY)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.add(RULES, "plans.rules")
    assert svc.get_plan("Spring reminder").version == 2


def test_a_run_sends_once_per_contact_with_an_email(store: Node) -> None:
    root = store.path
    assert root is not None
    clock = ManualClock(ONCE_DUE - DAY)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Spring reminder")
    sched = Scheduler(root, clock=clock)
    clock.ms = ONCE_DUE - 1
    assert sched.tick().ran == []  # not due yet
    clock.ms = ONCE_DUE + 500
    report = sched.tick()
    assert len(report.ran) == 1
    check_spring_run(root, report.ran[0], N)
    expected = milan_buyers_at_once(N)
    # a second tick (and a second scheduler) records nothing more
    assert sched.tick().ran == []
    Scheduler(root, clock=clock).tick()
    assert len(delivery_rows(root, "plan:Spring reminder")) == len(expected)
    assert runs(root) == [("Spring reminder", ONCE_DUE, "done")]


def test_payloads_are_rendered_per_contact(store: Node) -> None:
    from audience.runtime.delivery import DeliveryLog

    root = store.path
    assert root is not None
    clock = ManualClock(ONCE_DUE - DAY)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Spring reminder")
    clock.ms = ONCE_DUE
    Scheduler(root, clock=clock).tick()
    with DeliveryLog.open(root) as log:
        log.materialize_all()
        d = next(x for x in log.list() if x.contact_id == "c00002")
    assert d.payload["subject"] == "Our spring collection, Name2"
    assert d.payload["text"] == "Dear Name2 of Milan"
    assert d.payload["from"] == "Maison <news@maison.example>"
    assert d.payload["mail_group"] == "Events"
    assert d.email == "c00002@example.com"
    assert d.due_ms == ONCE_DUE


def test_dnd_caps_hold_across_runs(store: Node) -> None:
    root = store.path
    assert root is not None
    clock = ManualClock(DAILY_DUE - HOUR)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Daily picks")
    sched = Scheduler(root, clock=clock)
    for day in range(8):
        clock.ms = DAILY_DUE + day * DAY
        sched.tick()
    rows = delivery_rows(root, "plan:Daily picks")
    sent = [r for r in rows if r[2] in ("reserved", "deferred")]
    # max 3 per week: days 0, 1, 2 sent; 3..6 held back; day 7 sends again
    by_day: dict[int, list[str]] = {}
    for _, _c, status, due in rows:
        by_day.setdefault((due - DAILY_DUE) // DAY, []).append(status)
    assert set(by_day[0]) == {"reserved"} and set(by_day[3]) == {"suppressed"}
    assert set(by_day[7]) == {"reserved"}
    for c in milan_with_email(N):
        times = sorted(due for _, cc, status, due in sent if cc == c)
        for i, t in enumerate(times):
            assert sum(1 for u in times[: i + 1] if t - u < 7 * DAY) <= 3
            assert sum(1 for u in times[: i + 1] if t - u < DAY) <= 1


def test_missed_occurrences_and_lateness(store: Node) -> None:
    root = store.path
    assert root is not None
    clock = ManualClock(DAILY_DUE - HOUR)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Daily picks")
    # no scheduler for three days: days 0 and 1 are older than the 1 hour lateness
    clock.ms = DAILY_DUE + 2 * DAY + 30 * 60_000
    Scheduler(root, clock=clock).tick()
    assert runs(root) == [
        ("Daily picks", DAILY_DUE, "missed"),
        ("Daily picks", DAILY_DUE + DAY, "missed"),
        ("Daily picks", DAILY_DUE + 2 * DAY, "done"),
    ]


def test_several_missed_within_the_lateness_run_once(store: Node) -> None:
    root = store.path
    assert root is not None
    clock = ManualClock(DAILY_DUE - HOUR)
    svc = service(store, clock)
    svc.add(RULES.replace('dnd "Caps"\n', "late up to 3 days\n"), "plans.rules")
    svc.make_ready("Daily picks")
    clock.ms = DAILY_DUE + 2 * DAY + 1
    Scheduler(root, clock=clock).tick()
    assert runs(root) == [
        ("Daily picks", DAILY_DUE, "merged"),
        ("Daily picks", DAILY_DUE + DAY, "merged"),
        ("Daily picks", DAILY_DUE + 2 * DAY, "done"),
    ]
    rows = delivery_rows(root, "plan:Daily picks")
    assert {c for _, c, _, _ in rows} == milan_with_email(N)
    assert len(rows) == len(milan_with_email(N))


def test_a_crashed_run_is_resumed_after_its_lease(store: Node) -> None:
    root = store.path
    assert root is not None
    clock = ManualClock(ONCE_DUE - DAY)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Spring reminder")
    clock.ms = ONCE_DUE

    def crash(run: PlanRun, chunk: int) -> None:
        if chunk == 1:
            raise Crash

    first = Scheduler(root, clock=clock, batch_size=2, lease_s=30, after_chunk=crash)
    with pytest.raises(Crash):
        first.tick()
    assert runs(root) == [("Spring reminder", ONCE_DUE, "running")]
    # while the lease holds, another scheduler leaves the run alone
    other = Scheduler(root, clock=clock, batch_size=2, lease_s=30)
    assert other.tick().ran == []
    # and the edit rules see it running
    clock.ms = ONCE_DUE + 31_000
    assert other.tick().ran[0].state == "done"
    rows = delivery_rows(root, "plan:Spring reminder")
    assert {c for _, c, _, _ in rows} == milan_buyers_at_once(N)
    assert max(per_contact(rows, ONCE_DUE).values()) == 1


def test_a_repeated_plan_refuses_edits_while_running_then_applies_them_next_time(
    store: Node,
) -> None:
    root = store.path
    assert root is not None
    clock = ManualClock(DAILY_DUE - HOUR)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Daily picks")
    clock.ms = DAILY_DUE

    def crash(run: PlanRun, chunk: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        Scheduler(root, clock=clock, batch_size=3, after_chunk=crash).tick()
    edited = RULES.replace('who (city = "Milan")', 'who (city = "Rome")')
    with pytest.raises(PlanError) as err:
        svc.add(edited, "plans.rules")
    assert err.value.code == "plan_running"
    assert svc.get_plan("Daily picks").version == 1
    clock.ms = DAILY_DUE + 2 * 60_000
    Scheduler(root, clock=clock).tick()  # resumes the run: Milan, version 1
    svc.add(edited, "plans.rules")  # between runs: allowed
    assert svc.get_plan("Daily picks").state == "ready"
    clock.ms = DAILY_DUE + DAY
    Scheduler(root, clock=clock).tick()
    rows = delivery_rows(root, "plan:Daily picks")
    day0 = {c for k, c, _, _ in rows if f":{DAILY_DUE}:" in k}
    day1 = {c for k, c, _, _ in rows if f":{DAILY_DUE + DAY}:" in k}
    assert day0 == milan_with_email(N)
    rome = {f"c{i:05d}" for i in range(N) if i % 2 == 1 and i % 5 != 0}
    assert day1 == rome


def test_a_draft_never_runs(store: Node) -> None:
    root = store.path
    assert root is not None
    clock = ManualClock(DAILY_DUE - HOUR)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    clock.ms = DAILY_DUE
    Scheduler(root, clock=clock).tick()
    assert runs(root) == []
    svc.make_ready("Daily picks")
    svc.make_draft("Daily picks")
    clock.ms = DAILY_DUE + DAY
    Scheduler(root, clock=clock).tick()
    assert runs(root) == []


def test_deleting_a_delivery_a_plan_sends_is_refused(store: Node) -> None:
    svc = service(store, ManualClock(ONCE_DUE - DAY))
    svc.add(RULES, "plans.rules")
    with pytest.raises(PlanError) as err:
        svc.delete_delivery("Spring event reminder")
    assert err.value.code == "delivery_in_use"
    svc.delete_plan("Spring reminder")
    svc.delete_plan("Daily picks")
    svc.delete_delivery("Spring event reminder")
    assert svc.list_deliveries() == []
    with pytest.raises(PlanError) as missing:
        svc.delete_plan("Spring reminder")
    assert missing.value.code == "not_found"


def test_preview_shows_who_the_policy_holds_back_and_writes_nothing(store: Node) -> None:
    from audience.runtime.plans.preview import preview

    root = store.path
    assert root is not None
    clock = ManualClock(DAILY_DUE - HOUR)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Daily picks")
    clock.ms = DAILY_DUE
    Scheduler(root, clock=clock).tick()
    before = delivery_rows(root)
    seen = preview(store, "Daily picks", DAILY_DUE + 12 * HOUR, clock=clock)
    expected = milan_with_email(N)
    assert seen["held"] == len(expected) and seen["to_send"] == 0
    assert seen["held_by_cap"] == {"max 1 per day": len(expected)}
    assert set(seen["samples"]["held"]) <= expected
    assert seen["audience"] - seen["without_email"] == len(expected)
    assert all(c not in expected for c in seen["samples"]["without_email"])
    assert seen["samples"]["without_email"]  # Milan contacts without an email exist
    nxt = preview(store, "Daily picks", DAILY_DUE + DAY, clock=clock)
    assert nxt["to_send"] == len(expected) and nxt["held"] == 0
    assert delivery_rows(root) == before
    assert runs(root) == [("Daily picks", DAILY_DUE, "done")]


def test_a_run_whose_segment_was_deleted_fails_and_says_why(store: Node) -> None:
    root = store.path
    assert root is not None
    clock = ManualClock(ONCE_DUE - DAY)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Spring reminder")
    store.delete_segment("Milan buyers")
    clock.ms = ONCE_DUE
    run = Scheduler(root, clock=clock).tick().ran[0]
    assert run.state == "failed"
    assert run.note is not None and "Milan buyers" in run.note
    assert delivery_rows(root) == []


def test_a_plan_whose_text_no_longer_reads_stops_only_itself(store: Node) -> None:
    import sqlite3

    root = store.path
    assert root is not None
    clock = ManualClock(DAILY_DUE - HOUR)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Daily picks")
    svc.make_ready("Spring reminder")
    with sqlite3.connect(root / "definitions.sqlite") as conn:
        conn.execute(
            "update plans set text = 'plan \"Spring reminder\" {' where name = ?",
            ["Spring reminder"],
        )
    clock.ms = DAILY_DUE
    report = Scheduler(root, clock=clock).tick()
    assert [r.plan for r in report.ran] == ["Daily picks"]
    shown = svc.describe(svc.get_plan("Spring reminder"))
    assert shown["schedule"] is None and shown["next_occurrence"] is None


def test_policies_written_beside_are_saved_and_count_as_there(store: Node) -> None:
    clock = ManualClock(DAILY_DUE - HOUR)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Daily picks")
    calm = 'dnd "Calm" {\n  max 5 per day\n}\n'
    svc.add(calm + RULES.replace('dnd "Caps"', 'dnd "Calm"'), "plans.rules")
    assert svc.get_plan("Daily picks").state == "ready"
    assert "Calm" in svc.get_plan("Daily picks").text
    saved = store.triggers.defs.get_policy("Calm")
    assert saved is not None and "max 5 per day" in saved.text


def test_an_unreadable_integrations_file_stops_no_plan(
    store: Node, caplog: pytest.LogCaptureFixture
) -> None:
    # steps 4 and 5 (syncs, reminders) read integrations.sqlite: their failure is
    # logged and the tick still reports the plans it ran
    root = store.path
    assert root is not None
    clock = ManualClock(ONCE_DUE - DAY)
    svc = service(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Spring reminder")
    (root / "integrations.sqlite").write_bytes(b"not a database, " * 100)
    clock.ms = ONCE_DUE + 500
    sched = Scheduler(root, clock=clock)
    try:
        report = sched.tick()
    finally:
        sched.close()
    assert [r.plan for r in report.ran] == ["Spring reminder"]
    assert report.sync_jobs == [] and report.reminders == []
    assert "the custom audience syncs could not run" in caplog.text
    assert "integration reminders could not be raised" in caplog.text
