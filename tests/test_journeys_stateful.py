"""A Hypothesis state machine over a journey on a real store: entries by
event, human and bot clicks arriving late or on time, clock jumps, scheduler
advances, crashes in the middle of an advance (the process dies: nothing of
its transaction stays) and restarts, with the injected clock.

After every step: no action ran twice (one step-log action row per run and
step, one delivery per key), no contact lost (each contact with an entry
event has exactly one run: once per contact), none stuck (after an advance
no run waits with a wake time at or before now), and every decision the
runtime took agrees with a plain model of the check: ``yes`` at the first
human click up to reach + D known when the run was looked at (from the
arrival, for an earlier one), else ``no`` at reach + D at the first advance
past it."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from audience.dsl.ast import Duration
from audience.runtime.delivery.log import DeliveryLog
from audience.runtime.journeys.service import JourneyService
from audience.runtime.plans.clock import ManualClock
from audience.runtime.store import Store, open_store
from audience.runtime.triggers.clock import set_clock
from tests.journeys_support import DAY, HOUR, MINUTE, T0, build, click, contact, form, save, welcome

N = 6
WITHIN = 2 * DAY


class Crash(BaseException):
    """The process dies here (not an Exception: nothing catches it)."""


@dataclass
class Model:
    """One contact in the journey: wait 1 hour, send "Welcome", check a click within D."""

    entered: int | None = None  # the entry event's time
    clicks: list[int] = field(default_factory=list)  # human clicks known to the store
    at_check: bool = False  # an advance moved it past the wait
    decided: tuple[str, int] | None = None

    def look(self, now: int, timed: bool) -> None:
        """The runtime looked at the run with the clock at ``now``; ``timed``:
        the scheduler's advance (an ingest passes no time: no wait ends, no
        deadline falls)."""
        if self.entered is None or self.decided is not None:
            return
        reach = self.entered + HOUR
        if not self.at_check:
            if not timed or now < reach:
                return
            self.at_check = True
        deadline = reach + WITHIN
        hits = [max(c, reach) for c in self.clicks if c <= deadline]
        if hits:
            self.decided = ("yes", min(hits))
        elif timed and deadline <= now:
            self.decided = ("no", deadline)


class JourneyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="journeys-sm-"))
        self.clock = ManualClock(T0)
        set_clock(self.clock)
        self.store: Store = build(self.dir / "shop", N)
        assert self.store.path is not None
        self.root: Path = self.store.path
        self.svc = JourneyService(self.store, self.clock)
        save(self.svc, welcome(within=WITHIN // DAY, wait=Duration(1, "hour")))
        self.clock.advance(2 * HOUR)
        self.model = {contact(i): Model() for i in range(N)}
        self.events = 0

    def teardown(self) -> None:
        set_clock(None)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _id(self) -> int:
        self.events += 1
        return self.events

    # ------------------------------------------------------------------ steps
    @rule(i=st.integers(0, N - 1), early=st.integers(0, 90))
    def form(self, i: int, early: int) -> None:
        cid = contact(i)
        ts = self.clock.ms - early * MINUTE
        self.store.ingest_events([form(self._id(), cid, ts)])
        m = self.model[cid]
        if m.entered is None:  # entered at the event's time; its wait ends at an advance
            m.entered = ts

    @precondition(lambda self: any(m.entered is not None for m in self.model.values()))
    @rule(data=st.data(), late=st.integers(0, 4 * DAY // HOUR), bot=st.booleans())
    def click(self, data: st.DataObject, late: int, bot: bool) -> None:
        inside = sorted(c for c, m in self.model.items() if m.entered is not None)
        cid = data.draw(st.sampled_from(inside))
        ts = self.clock.ms - late * HOUR  # clicks arrive late, even past their deadline
        key = f"journey:1:v1:1:{cid}:1"  # maybe not sent yet: a click is kept anyway
        self.store.ingest_events([click(self._id(), cid, key, ts, bot=bot)])
        m = self.model[cid]
        if not bot:
            m.clicks.append(ts)
            if m.at_check:  # the run watching the key is looked at
                m.look(self.clock.ms, timed=False)

    @rule(minutes=st.integers(1, 3 * 24 * 60))
    def jump(self, minutes: int) -> None:
        self.clock.advance(minutes * MINUTE)

    @rule()
    def advance(self) -> None:
        self.svc.advance()
        now = self.clock.ms
        for m in self.model.values():
            m.look(now, timed=True)
        with sqlite3.connect(self.root / "deliveries.sqlite") as conn:
            stuck = conn.execute(
                "select count(*) from journey_runs where state = 'waiting' and wake_ms <= ?",
                [now],
            ).fetchone()[0]
        assert stuck == 0

    @rule(after=st.integers(1, 3))
    def crash_then_restart(self, after: int) -> None:
        """An advance whose process dies when it writes its ``after``-th
        delivery (or batch of deliveries); a new process (a new store object
        and service) takes over."""
        real_one, real_many = DeliveryLog._request, DeliveryLog.record_decided
        calls = 0

        def dying(real: Any) -> Any:
            def call(*args: Any) -> Any:
                nonlocal calls
                calls += 1
                if calls >= after:
                    raise Crash
                return real(*args)

            return call

        DeliveryLog._request = dying(real_one)  # type: ignore[method-assign]
        DeliveryLog.record_decided = dying(real_many)  # type: ignore[method-assign]
        try:
            self.svc.advance()
        except Crash:
            pass
        else:  # it finished, as an advance that did not die
            for m in self.model.values():
                m.look(self.clock.ms, timed=True)
        finally:
            DeliveryLog._request = real_one  # type: ignore[method-assign]
            DeliveryLog.record_decided = real_many  # type: ignore[method-assign]
        self.store = open_store(self.root)
        self.svc = JourneyService(self.store, self.clock)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def nothing_twice_nobody_lost_and_the_model_agrees(self) -> None:
        with sqlite3.connect(self.root / "deliveries.sqlite") as conn:
            actions = conn.execute(
                "select r.contact_id, s.step, count(*) from journey_steps s join journey_runs r "
                "on r.id = s.run_id where s.kind = 'action' group by r.id, s.step"
            ).fetchall()
            runs = Counter(c for (c,) in conn.execute("select contact_id from journey_runs"))
            sent = Counter(
                k
                for (k,) in conn.execute("select key from deliveries where source like 'journey:%'")
            )
            decisions = {
                c: (kind, at)
                for c, kind, at in conn.execute(
                    "select r.contact_id, s.kind, s.at_ms from journey_steps s join journey_runs r "
                    "on r.id = s.run_id where s.kind in ('yes', 'no')"
                )
            }
        assert all(n == 1 for _, _, n in actions)
        assert all(n == 1 for n in sent.values())
        assert runs == Counter(c for c, m in self.model.items() if m.entered is not None)
        for cid, m in self.model.items():
            assert decisions.get(cid) == m.decided, (cid, m)
            has_email = int(cid[1:]) % 5 != 4
            promo = f"journey:1:v1:2.yes.0:{cid}:1" in sent
            welcome = f"journey:1:v1:1:{cid}:1" in sent
            assert welcome == (has_email and m.at_check)
            assert promo == (has_email and m.decided is not None and m.decided[0] == "yes")


JourneyMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
TestJourneys = JourneyMachine.TestCase
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
