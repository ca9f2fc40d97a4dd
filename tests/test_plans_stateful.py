"""A Hypothesis state machine over plans on a real store: edits, ready and
draft, scheduler ticks, crashed runs and clock jumps with the injected
clock.  After every step: each occurrence ran at most once (deliveries only
for occurrences that run), no contact twice in one occurrence, the DND caps
never exceeded, and nothing lost (a finished run recorded a delivery for
every contact of its frozen audience)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.definitions import PlanDefinitions, PlanRun
from audience.runtime.plans.scheduler import Scheduler
from audience.runtime.plans.service import PlanError, PlanService
from tests.plans_support import DAY, build, delivery_rows, ms

START = ms("2027-03-01T08:45:00Z")
N = 14
WHO = ['(city = "Milan")', '(city = "Rome")', '"Milan buyers"', "(email is set)"]
AT = ["09:00", "09:30", "21:00"]
NAMES = ("Morning", "Evening", "Once")
REFUSALS = {"plan_due", "plan_running", "not_ready"}


def rules(who: list[str], at: list[str]) -> str:
    return f"""delivery "Note" {{
  template "spring-event"
  fields {{ first_name: profile.first_name, city: profile.city }}
}}

plan "Morning" {{
  who {who[0]}
  when every day at {at[0]} from 2027-03-01
  dnd "Caps"
  send "Note"
}}

plan "Evening" {{
  who {who[1]}
  when every week on monday, tuesday, thursday, saturday at {at[1]} from 2027-03-01
  dnd "Caps"
  send "Note"
  late up to 2 hours
}}

plan "Once" {{
  who {who[2]}
  when once at 2027-03-0{(at[2] == "21:00" and 3) or 2} {at[2]}
  dnd "Caps"
  send "Note"
}}
"""


class Crash(Exception):
    pass


class PlansMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="plans-sm-"))
        self.store = build(self.dir / "shop", N)
        assert self.store.path is not None
        self.root: Path = self.store.path
        self.clock = ManualClock(START)
        self.svc = PlanService(self.store, self.clock)
        self.who = [WHO[0], WHO[1], WHO[2]]
        self.at = [AT[0], AT[1], AT[0]]
        self.svc.add(rules(self.who, self.at), "plans.rules")
        for name in NAMES:
            self.svc.make_ready(name)

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ steps
    @rule(plan=st.integers(0, 2), who=st.sampled_from(WHO), at=st.sampled_from(AT))
    def edit(self, plan: int, who: str, at: str) -> None:
        before = self.svc.get_plan(NAMES[plan])
        who_list, at_list = list(self.who), list(self.at)
        who_list[plan], at_list[plan] = who, at
        try:
            self.svc.add(rules(who_list, at_list), "plans.rules")
        except PlanError as err:
            assert err.code in REFUSALS, err
            after = self.svc.get_plan(NAMES[plan])
            assert (after.version, after.text, after.state) == (
                before.version,
                before.text,
                before.state,
            )
            return
        self.who, self.at = who_list, at_list

    @rule(plan=st.integers(0, 2))
    def ready(self, plan: int) -> None:
        try:
            self.svc.make_ready(NAMES[plan])
        except PlanError as err:
            assert err.code in REFUSALS, err

    @rule(plan=st.integers(0, 2))
    def draft(self, plan: int) -> None:
        try:
            self.svc.make_draft(NAMES[plan])
        except PlanError as err:
            assert err.code in REFUSALS, err

    @rule(minutes=st.sampled_from([1, 20, 61, 180, 600, 1440, 3 * 1440]))
    def jump(self, minutes: int) -> None:
        self.clock.advance(minutes * 60_000)

    @rule(late=st.sampled_from([0, 1, 30, 59, 90, 200]))
    def to_next_due(self, late: int) -> None:
        """Straight to the next occurrence of a ready plan (a few minutes late)."""
        nxt = Scheduler(self.root, clock=self.clock).next_due_ms()
        if nxt is not None and nxt >= self.clock():
            self.clock.ms = nxt + late * 60_000

    @rule()
    def tick(self) -> None:
        Scheduler(self.root, clock=self.clock, lease_s=60).tick()

    @rule(chunk=st.integers(0, 3), batch=st.integers(1, 4))
    def crash(self, chunk: int, batch: int) -> None:
        def boom(run: PlanRun, i: int) -> None:
            if i == chunk:
                raise Crash

        with contextlib.suppress(Crash):
            Scheduler(
                self.root, clock=self.clock, lease_s=60, batch_size=batch, after_chunk=boom
            ).tick()

    @rule()
    def recover(self) -> None:
        """A lease later, another scheduler finishes whatever a crash left."""
        self.clock.advance(61_000)
        Scheduler(self.root, clock=self.clock, lease_s=60).tick()

    # ------------------------------------------------------------------ checks
    def _runs(self) -> list[PlanRun]:
        defs = PlanDefinitions.for_store(self.root)
        try:
            return defs.list_runs("main")
        finally:
            defs.close()

    @invariant()
    def each_occurrence_once_no_contact_twice_nothing_lost(self) -> None:
        rows = delivery_rows(self.root)
        runs = {(r.plan, r.occurrence_ms): r for r in self._runs()}
        per_key: Counter[tuple[str, int, str]] = Counter()
        for key, contact, _, _ in rows:
            _, _, plan, due, _, _ = key.split(":", 5)
            per_key[(plan, int(due), contact)] += 1
            run = runs.get((plan, int(due)))
            assert run is not None and run.state in ("running", "done"), key
        assert not per_key or max(per_key.values()) == 1
        for (plan, occurrence), run in runs.items():
            if run.state == "done":
                got = sum(1 for (p, o, _) in per_key if (p, o) == (plan, occurrence))
                assert got == run.total, (plan, occurrence, got, run.total)

    @invariant()
    def caps_hold(self) -> None:
        times: dict[str, list[int]] = {}
        for _, contact, status, due in delivery_rows(self.root):
            if status in ("reserved", "deferred", "sending", "sent"):
                times.setdefault(contact, []).append(due)
        for ts in times.values():
            ts.sort()
            for t in ts:
                assert sum(1 for u in ts if t - DAY < u <= t) <= 1
                assert sum(1 for u in ts if t - 7 * DAY < u <= t) <= 3


PlansMachine.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
TestPlans = PlansMachine.TestCase
