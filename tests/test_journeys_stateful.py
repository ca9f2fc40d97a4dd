"""A Hypothesis state machine over a journey on a real store, held to the
plain reference interpreter (tests/reference/journeys.py): entries by event,
human and bot clicks arriving on time, late or before the check is reached,
purchases (for a condition check), clock jumps, scheduler advances, crashes
in the middle of an advance (the process dies: nothing of its transaction
stays) and restarts, with the injected clock.  Every input goes to both.

After every step: the runtime's actions are the reference's (step, contact,
entry), each at most once, with one delivery per key (a contact with an email
gets one); every contact's runs are where the reference has them (nobody
lost); and after an advance no run waits with a wake time at or before now
(nobody stuck)."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from audience.dsl.ast import Duration
from audience.dsl.ast_journeys import ActionStep, CheckStep, EndStep, Journey, WaitStep
from audience.dsl.parser import parse
from audience.runtime.delivery.log import DeliveryLog
from audience.runtime.journeys.service import JourneyService
from audience.runtime.node import Node, open_node
from audience.runtime.plans.clock import ManualClock
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
    welcome,
)
from tests.journeys_support import save as save_journey
from tests.reference.journeys import RefJourney

N = 6


def _bought() -> Journey:
    """A check on a condition: a purchase over 50 within a day of the send."""
    seg = parse('segment "x" { did purchased where amount > 50 }').definitions[0]
    return Journey(
        "Buyers",
        welcome().start,
        (
            ActionStep("Welcome", send="Complete your profile"),
            WaitStep(Duration(2, "hour")),
            CheckStep(
                "Bought?",
                seg.cond,  # type: ignore[union-attr]
                days(1),
                yes=(ActionStep("Promo", send="Your promotional code"), EndStep()),
                no=(EndStep(),),
            ),
        ),
        entry=welcome().entry,
    )


JOURNEYS = {
    "clicks": welcome(within=2, wait=Duration(1, "hour")),
    "again": welcome(within=1, again_after=days(2)),
    "condition": _bought(),
}


class Crash(BaseException):
    """The process dies here (not an Exception: nothing catches it)."""


class JourneyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="journeys-sm-"))
        self.clock = ManualClock(T0)
        set_clock(self.clock)
        self.store: Node = build(self.dir / "shop", N)
        assert self.store.path is not None
        self.root: Path = self.store.path
        self.svc = JourneyService(self.store, self.clock)
        self.events = 0

    @initialize(which=st.sampled_from(sorted(JOURNEYS)))
    def start(self, which: str) -> None:
        self.journey = JOURNEYS[which]
        save_journey(self.svc, self.journey)
        live = self.svc.get(self.journey.name)
        assert live.live_ms is not None
        profiles = {
            contact(i): {"first_name": f"Name{i}", **({"email": "x"} if i % 5 != 4 else {})}
            for i in range(N)
        }
        self.ref = RefJourney(
            self.journey,
            schema=self.store.schema,
            profiles=profiles,
            journey_id=live.id,
            version=live.version,
            live_from_ms=live.live_ms,
        )
        self.clock.advance(2 * HOUR)

    def teardown(self) -> None:
        set_clock(None)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _ingest(self, cid: str, event: dict[str, Any]) -> None:
        self.store.ingest_events([event])
        self.ref.event(cid, {**event, "ts": _ms(event)})

    def _id(self) -> int:
        self.events += 1
        return self.events

    # ------------------------------------------------------------------ steps
    @rule(i=st.integers(0, N - 1), early=st.integers(0, 90))
    def form(self, i: int, early: int) -> None:
        self._ingest(contact(i), form(self._id(), contact(i), self.clock.ms - early * MINUTE))

    @precondition(lambda self: any(self.ref.position(contact(i)) for i in range(N)))
    @rule(data=st.data(), late=st.integers(-2, 4 * DAY // HOUR), bot=st.booleans())
    def click(self, data: st.DataObject, late: int, bot: bool) -> None:
        inside = [contact(i) for i in range(N) if self.ref.position(contact(i))]
        cid = data.draw(st.sampled_from(inside))
        entry = data.draw(st.sampled_from([p.entry for p in self.ref.position(cid)]))
        key = self.ref.delivery_key(self.ref.label_ids["Welcome"], cid, entry)
        ts = self.clock.ms - late * HOUR  # late, past a deadline, or ahead of the clock
        self._ingest(cid, click(self._id(), cid, key, ts, bot=bot))

    @rule(i=st.integers(0, N - 1), amount=st.sampled_from([10.0, 80.0]), early=st.integers(0, 30))
    def purchase(self, i: int, amount: float, early: int) -> None:
        ts = self.clock.ms - early * MINUTE
        event = {
            "id": f"p{self._id()}",
            "contact_id": contact(i),
            "type": "purchased",
            "ts": iso(ts),
            "amount": amount,
        }
        self._ingest(contact(i), event)

    @rule(minutes=st.integers(1, 3 * 24 * 60))
    def jump(self, minutes: int) -> None:
        self.clock.advance(minutes * MINUTE)

    @rule()
    def advance(self) -> None:
        self.svc.advance()
        self.ref.advance(self.clock.ms)
        with sqlite3.connect(self.root / "deliveries.sqlite") as conn:
            stuck = conn.execute(
                "select count(*) from journey_runs where state = 'waiting' and wake_ms <= ?",
                [self.clock.ms],
            ).fetchone()[0]
        assert stuck == 0

    @rule(after=st.integers(1, 3))
    def crash_then_restart(self, after: int) -> None:
        """An advance whose process dies when it writes its ``after``-th
        delivery (or batch of deliveries); a new process (a new store object
        and service) takes over.  An advance that wrote nothing finishes."""
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
        else:
            self.ref.advance(self.clock.ms)
        finally:
            DeliveryLog._request = real_one  # type: ignore[method-assign]
            DeliveryLog.record_decided = real_many  # type: ignore[method-assign]
        self.store = open_node(self.root)
        self.svc = JourneyService(self.store, self.clock)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def the_runtime_agrees_with_the_reference(self) -> None:
        if not hasattr(self, "ref"):
            return
        with sqlite3.connect(self.root / "deliveries.sqlite") as conn:
            actions = conn.execute(
                "select s.step, r.contact_id, r.entry from journey_steps s join journey_runs r "
                "on r.id = s.run_id where s.kind = 'action'"
            ).fetchall()
            sent = Counter(
                k
                for (k,) in conn.execute("select key from deliveries where source like 'journey:%'")
            )
            runs = conn.execute(
                "select contact_id, entry, state, step from journey_runs order by contact_id, entry"
            ).fetchall()
        assert Counter(actions) == Counter(self.ref.actions)  # each at most once, none lost
        assert all(n == 1 for n in sent.values())
        with_email = {self.ref.delivery_key(*a) for a in self.ref.sends if int(a[1][1:]) % 5 != 4}
        assert set(sent) == with_email
        ours = [
            (c, e, "done" if s == "done" else "inside", None if s == "done" else step)
            for c, e, s, step in runs
        ]
        theirs = [
            (c, p.entry, "done" if p.state == "done" else "inside", p.step)
            for c in sorted(contact(i) for i in range(N))
            for p in self.ref.position(c)
        ]
        assert ours == theirs


def _ms(event: dict[str, Any]) -> int:
    import datetime as dt

    return int(dt.datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp() * 1000)


JourneyMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
TestJourneys = JourneyMachine.TestCase
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
