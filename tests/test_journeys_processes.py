"""Journeys with real processes: an ``audience scheduler`` killed with
``kill -9`` between the deliveries of a batch and their step-log rows, then
another one; two schedulers advancing the same due runs at once.  No action
runs twice, no contact is lost or stuck."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

from audience.dsl.ast import Duration
from audience.runtime.journeys.service import JourneyService
from audience.runtime.plans.clock import ManualClock
from tests.helpers.processes import audience, finish, wait_for
from tests.journeys_support import HOUR, T0, build, contact, iso, save, welcome

N = 60
LATER = welcome("Later", within=1, wait=Duration(1, "hour"), entry=None)
WITH_EMAIL = {contact(i) for i in range(N) if i % 5 != 4}
DUE = T0 + HOUR


def prepared(tmp_path: Path) -> Path:
    """N contacts inside "Later", all due at ``DUE`` (the end of their wait)."""
    st = build(tmp_path / "shop", N)
    svc = JourneyService(st, ManualClock(T0))
    save(svc, LATER)  # wait 1 hour, send "Welcome", check its click within a day
    for i in range(N):
        assert svc.enter("Later", contact(i))["entered"]
    assert st.path is not None
    return st.path


def child(root: Path, at: int, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``audience scheduler ROOT --once --at AT``: one tick, journeys included."""
    return audience("scheduler", str(root), "--once", "--at", iso(at), env=env)


def sent(root: Path) -> Counter[str]:
    """Deliveries per contact of the journey's "Welcome" step (read from the file)."""
    with sqlite3.connect(root / "deliveries.sqlite") as conn:
        rows = conn.execute(
            "select contact_id, key from deliveries where source = 'journey:Later'"
        ).fetchall()
    assert all(k == f"journey:1:v1:1:{c}:1" for c, k in rows)
    return Counter(c for c, _ in rows)


def actions(root: Path) -> Counter[str]:
    """Step-log action rows per contact, and the runs' positions."""
    with sqlite3.connect(root / "deliveries.sqlite") as conn:
        rows = conn.execute(
            "select r.contact_id from journey_steps s join journey_runs r on r.id = s.run_id "
            "where s.kind = 'action'"
        ).fetchall()
    return Counter(c for (c,) in rows)


def positions(root: Path) -> Counter[tuple[str, str]]:
    with sqlite3.connect(root / "deliveries.sqlite") as conn:
        return Counter(conn.execute("select state, step from journey_runs").fetchall())


def test_kill_9_between_a_delivery_and_its_step_log_then_restart(tmp_path: Path) -> None:
    root = prepared(tmp_path)
    env = {"AUDIENCE_JOURNEYS_BATCH": "4", "AUDIENCE_JOURNEYS_TEST_HALT_AFTER": "10"}
    p = child(root, DUE, env)
    wait_for(root / "journeys-halted", p)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    # two batches committed (their sends with their step-log rows; c00004 has no
    # email); the third, halted after a delivery and before its step-log row, left nothing
    first8 = [contact(i) for i in range(8)]
    assert sent(root) == Counter(c for c in first8 if c in WITH_EMAIL)
    assert actions(root) == Counter(first8)
    assert positions(root)[("waiting", "2")] == 8
    finish(child(root, DUE))
    assert sent(root) == Counter(dict.fromkeys(WITH_EMAIL, 1))
    assert actions(root) == Counter(dict.fromkeys((contact(i) for i in range(N)), 1))
    assert positions(root) == {("waiting", "2"): N}  # everyone at the check, none lost


def test_two_schedulers_at_once_move_each_run_once(tmp_path: Path) -> None:
    root = prepared(tmp_path)
    env = {"AUDIENCE_JOURNEYS_BATCH": "3"}  # many batches: the two interleave
    procs = [child(root, DUE, env) for _ in range(2)]
    for p in procs:
        finish(p)
    assert sent(root) == Counter(dict.fromkeys(WITH_EMAIL, 1))
    assert actions(root) == Counter(dict.fromkeys((contact(i) for i in range(N)), 1))
    assert positions(root) == {("waiting", "2"): N}
