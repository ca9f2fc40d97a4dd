"""Plans with real processes: two ``audience scheduler``s on one store, a
scheduler killed with ``kill -9`` mid-run and restarted, and the worker
sending what a run recorded to an SMTP server on loopback."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from audience.runtime.node import Node, open_node
from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.service import PlanService
from tests.helpers.mail_servers import SmtpSink, smtp_server
from tests.helpers.processes import audience, finish, wait_for
from tests.plans_support import (
    DAY,
    ONCE_DUE,
    RULES,
    build,
    delivery_rows,
    iso,
    milan_buyers_at_once,
    milan_with_email,
    ms,
    per_contact,
    runs,
)

N = 120


def ready_store(tmp_path: Path, rules: str = RULES, at: int = ONCE_DUE - DAY) -> Path:
    st = build(tmp_path / "shop", N)
    svc = PlanService(st, ManualClock(at))
    svc.add(rules, "plans.rules")
    svc.make_ready("Spring reminder")
    svc.make_ready("Daily picks")
    assert st.path is not None
    return st.path


def test_two_schedulers_run_each_occurrence_once(tmp_path: Path) -> None:
    root = ready_store(tmp_path)
    env = {"AUDIENCE_PLANS_BATCH": "2"}  # many chunks: the two interleave
    at = iso(ONCE_DUE)
    procs = [audience("scheduler", str(root), "--once", "--at", at, env=env) for _ in range(2)]
    for p in procs:
        finish(p)
    assert runs(root) == [("Daily picks", ONCE_DUE, "done"), ("Spring reminder", ONCE_DUE, "done")]
    once = delivery_rows(root, "plan:Spring reminder")
    daily = delivery_rows(root, "plan:Daily picks")
    assert {c for _, c, _, _ in once} == milan_buyers_at_once(N)
    assert {c for _, c, _, _ in daily} == milan_with_email(N)
    assert max(per_contact(once, ONCE_DUE).values()) == 1
    assert max(per_contact(daily, ONCE_DUE).values()) == 1


def test_kill_9_mid_run_then_restart_sends_each_contact_once(tmp_path: Path) -> None:
    root = ready_store(tmp_path)
    # only the one-shot plan: the daily one stays a draft here
    PlanService(build_open(root), ManualClock(ONCE_DUE - DAY)).make_draft("Daily picks")
    env = {"AUDIENCE_PLANS_BATCH": "4", "AUDIENCE_PLANS_TEST_HALT_AFTER": "3"}
    p = audience("scheduler", str(root), "--once", "--at", iso(ONCE_DUE), "--lease", "30", env=env)
    wait_for(root / "plans" / "halted-1", p)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    # three chunks are in the log; the cursor moved past two (killed in between)
    assert runs(root) == [("Spring reminder", ONCE_DUE, "running")]
    assert len(delivery_rows(root, "plan:Spring reminder")) == 12
    # while the dead scheduler's lease holds, a new one leaves the run alone
    finish(audience("scheduler", str(root), "--once", "--at", iso(ONCE_DUE + 10_000)))
    assert runs(root) == [("Spring reminder", ONCE_DUE, "running")]
    finish(audience("scheduler", str(root), "--once", "--at", iso(ONCE_DUE + 31_000)))
    assert runs(root) == [("Spring reminder", ONCE_DUE, "done")]
    rows = delivery_rows(root, "plan:Spring reminder")
    assert {c for _, c, _, _ in rows} == milan_buyers_at_once(N)
    assert max(per_contact(rows, ONCE_DUE).values()) == 1
    assert not (root / "plans" / "runs" / "1.arrow").exists()


def build_open(root: Path) -> Node:
    return open_node(root)


def test_the_worker_sends_a_run_by_smtp(tmp_path: Path) -> None:
    # due in the past of the wall clock, so the worker sends at once
    rules = RULES.replace("from 2027-03-01", "from 2026-06-01")
    due = ms("2026-06-01T09:00:00Z")
    root = ready_store(tmp_path, rules, at=due - 3_600_000)
    PlanService(build_open(root), ManualClock(due - 3_600_000)).make_draft("Spring reminder")
    finish(audience("scheduler", str(root), "--once", "--at", iso(due + 1000)))
    sink = SmtpSink()
    with smtp_server(sink) as port:
        env = {"AUDIENCE_SMTP_HOST": "127.0.0.1", "AUDIENCE_SMTP_PORT": str(port)}
        out = finish(audience("worker", str(root), "--once", env=env))
    expected = milan_with_email(N)
    assert f"sent {len(expected)}," in out
    got = {str(m["To"]): m for m in sink.received}
    assert set(got) == {f"{c}@example.com" for c in expected}
    msg = got["c00002@example.com"]
    assert str(msg["Subject"]) == "Our spring collection, Name2"
    assert str(msg["From"]) == "Maison <news@maison.example>"
    assert str(msg["Reply-To"]) == "care@maison.example"
    # the delivery's `sender` is the envelope sender (where bounces go), not a header
    assert set(sink.mail_from) == {"bounces@maison.example"} and msg["Sender"] is None
    body = msg.get_body(("plain",))
    assert body is not None and "Dear Name2 of Milan" in body.get_content()
    assert len(set(sink.message_ids())) == len(expected)
    statuses = {s for _, _, s, _ in delivery_rows(root, "plan:Daily picks")}
    assert statuses == {"sent"}


def test_scheduler_rejects_a_path_that_is_not_a_store(tmp_path: Path) -> None:
    p = audience("scheduler", str(tmp_path / "nothing"), "--once")
    _, err = p.communicate(timeout=120)
    assert p.returncode != 0 and "not a store" in err
