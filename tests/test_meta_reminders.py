"""Integration reminders carried by webhook deliveries: the fake Graph server and a
receiver on 127.0.0.1, a real store, the scheduler's ticks and the delivery worker,
time from a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from audience.integrations.meta.fake import APP_ID, APP_SECRET, VERSION, FakeGraph, running
from audience.integrations.meta.graph import GraphConfig
from audience.integrations.meta.reminders import (
    DEFAULT_DAYS,
    REMINDER_NODE,
    due,
    load_settings,
    raise_due,
    save_settings,
    threshold,
)
from audience.integrations.meta.tokens import DAY_MS, IntegrationError, Integrations
from audience.runtime.delivery.log import DeliveryLog
from audience.runtime.delivery.worker import run_worker
from audience.runtime.node import Node
from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.scheduler import Scheduler, TickReport
from tests.helpers.mail_servers import HttpSink, http_server

T0 = 1_780_000_000_000  # epoch ms (2026-05-28), before the wall clock: the worker sends at once
HOUR_MS = 3_600_000
EXAMPLES = Path(__file__).resolve().parent.parent / "audience" / "examples"


@dataclass
class World:
    fake: FakeGraph
    clock: ManualClock
    root: Path
    graph: str
    sink: HttpSink
    hook: str

    def ints(self) -> Integrations:
        cfg = GraphConfig(
            base_url=self.graph, version=VERSION, app_id=APP_ID, app_secret=APP_SECRET
        )
        return Integrations(self.root, cfg, self.clock, sleep=lambda s: None)

    def connect(self, name: str, token: str, days: float, url: str | None = None) -> None:
        self.fake.add_token(token, expires_at=(self.clock.ms + int(days * DAY_MS)) // 1000)
        self.ints().connect(name, "act_1", token, reminder_url=url)

    def tick(self) -> list[str]:
        """One scheduler tick: the reminders it raised anew, as 'name threshold'."""
        sched = Scheduler(self.root, clock=self.clock)
        try:
            report = sched.tick()
        finally:
            sched.close()
        return [
            f"{r.reminder.integration.name} {r.reminder.threshold}"
            for r in report.reminders
            if r.new
        ]

    def send(self) -> list[tuple[str, str]]:
        """The worker sends what is due; what the receiver got so far."""
        run_worker(self.root, once=True)
        return [(b["integration"], b["reminder"]) for _, _, b in self.sink.requests]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = ManualClock(T0)
    fake = FakeGraph(now=lambda: clock.ms // 1000)
    Node.init(tmp_path / "shop", EXAMPLES / "maison.toml")
    sink = HttpSink()
    with running(fake) as graph, http_server(sink) as hook:
        yield World(fake, clock, tmp_path / "shop", graph, sink, hook + "/reminders")


def test_each_threshold_is_raised_once_and_a_new_token_rearms_them(world: World) -> None:
    world.connect("ads", "EAAB-token-one", days=10)
    save_settings(world.ints(), world.hook)
    assert world.tick() == []  # 10 days left: nothing yet
    world.clock.advance(4 * DAY_MS)
    assert world.tick() == ["ads 7d"]
    assert world.tick() == []  # the next tick finds it raised
    assert world.send() == [("ads", "7d")]
    path, headers, body = world.sink.requests[0]
    assert path == "/reminders" and headers["Idempotency-Key"]
    assert body["status"] == "expiring" and body["days_left"] == 6
    assert body["ends"] == "2026-06-07T20:26:40Z" and "re-authorize" in body["message"]
    world.clock.advance(5 * DAY_MS + 1)  # a day left
    assert world.tick() == ["ads 1d"]
    world.clock.advance(DAY_MS)  # expired
    assert world.tick() == ["ads inactive"]
    assert world.tick() == []
    assert world.send() == [("ads", "7d"), ("ads", "1d"), ("ads", "inactive")]
    # re-authorized: a new token (exchanged for one of 60 days), every threshold armed again
    world.fake.add_token("EAAB-token-two", expires_at=(world.clock.ms + HOUR_MS) // 1000)
    world.ints().reauthorize("ads", "EAAB-token-two")
    assert world.tick() == []
    world.clock.advance(54 * DAY_MS)
    assert world.tick() == ["ads 7d"]
    assert world.send()[-1] == ("ads", "7d") and len(world.sink.requests) == 4
    log = DeliveryLog.open(world.root)
    try:
        ds = log.list(node=REMINDER_NODE)
    finally:
        log.close()
    assert [d.status for d in ds] == ["sent"] * 4
    assert {d.contact_id for d in ds} == {"integration:ads"} and ds[0].kind == "webhook"


def test_only_the_most_urgent_threshold_when_several_passed_unseen(world: World) -> None:
    world.connect("ads", "EAAB-token-one", days=10)
    save_settings(world.ints(), world.hook)
    world.clock.advance(10 * DAY_MS - 12 * HOUR_MS)  # nobody looked until half a day before
    assert world.tick() == ["ads 1d"]


def test_a_refused_token_raises_the_inactive_reminder(world: World) -> None:
    world.connect("ads", "EAAB-token-one", days=50)
    save_settings(world.ints(), world.hook)
    world.fake.tokens["EAAB-token-one"].is_valid = False  # revoked on the platform's side
    assert world.ints().check("ads").refused
    assert world.tick() == ["ads inactive"]
    assert world.send() == [("ads", "inactive")]
    assert "is inactive (token refused" in world.sink.requests[0][2]["message"]


def test_the_integrations_own_url_wins_and_without_any_url_nothing_is_raised(
    world: World,
) -> None:
    world.connect("quiet", "EAAB-token-one", days=3)
    world.connect("loud", "EAAB-token-two", days=3, url=world.hook + "/loud")
    assert world.tick() == ["loud 7d"]  # no store webhook: 'quiet' is only listed
    assert [r.integration.name for r in due(world.ints())] == ["loud", "quiet"]
    save_settings(world.ints(), world.hook)
    assert world.tick() == ["quiet 7d"]  # set later: raised at the next look
    world.send()
    assert sorted(p for p, _, _ in world.sink.requests) == ["/reminders", "/reminders/loud"]


def test_raise_due_is_idempotent_for_one_integration(world: World) -> None:
    world.connect("ads", "EAAB-token-one", days=2)
    world.connect("other", "EAAB-token-two", days=2)
    save_settings(world.ints(), world.hook, days=(14, 3))
    log = DeliveryLog.open(world.root)
    try:
        first = raise_due(world.ints(), log, only="ads")
        again = raise_due(world.ints(), log, only="ads")
    finally:
        log.close()
    assert [(r.reminder.threshold, r.new) for r in first] == [("3d", True)]
    assert [(r.delivery_id, r.new) for r in again] == [(first[0].delivery_id, False)]


def test_settings_are_checked_and_kept(world: World) -> None:
    ints = world.ints()
    assert load_settings(ints).days == DEFAULT_DAYS and load_settings(ints).url is None
    assert save_settings(ints, world.hook, days=(1, 30, 7, 7)).days == (30, 7, 1)
    for url, days in (("ftp://x/y", None), ("http://", None), ("http://h/a b", None)):
        with pytest.raises(IntegrationError, match="bad webhook URL"):
            save_settings(ints, url, days)
    for bad in ((), (0,), (366,), (True,)):
        with pytest.raises(IntegrationError, match="reminder days"):
            save_settings(ints, world.hook, bad)
    assert load_settings(ints).days == (30, 7, 1)  # refused: nothing changed
    assert save_settings(ints, None).url is None  # cleared, days kept
    assert load_settings(ints).days == (30, 7, 1)


def test_an_unreadable_integrations_file_does_not_fail_the_reminders_step(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    (world.root / "integrations.sqlite").write_bytes(b"not a database, " * 100)
    sched = Scheduler(world.root, clock=world.clock)
    try:
        report = TickReport(world.clock.ms)
        sched.reminders(report)  # logged, not raised: the tick goes on
    finally:
        sched.close()
    assert report.reminders == []
    assert "integration reminders could not be raised" in caplog.text


def test_thresholds_are_whole_24_hour_days_across_a_month_end_and_a_dst_change(
    world: World,
) -> None:
    # ends 2026-11-01 01:30 UTC: 7 days before is 2026-10-25 01:30 UTC, the night the
    # clocks went back in Europe, and the 1-day threshold crosses the month's end
    ends = 1_793_496_600_000
    world.clock.ms = ends - 10 * DAY_MS
    world.fake.add_token("EAAB-token-one", expires_at=ends // 1000)
    world.ints().connect("ads", "act_1", "EAAB-token-one")
    i = world.ints().get("ads")
    assert i.ends_ms == ends
    assert threshold(i, ends - 7 * DAY_MS - 1, DEFAULT_DAYS) is None
    assert threshold(i, ends - 7 * DAY_MS, DEFAULT_DAYS) == "7d"
    assert threshold(i, ends - DAY_MS - 1, DEFAULT_DAYS) == "7d"
    assert threshold(i, ends - DAY_MS, DEFAULT_DAYS) == "1d"
    assert threshold(i, ends - 1, DEFAULT_DAYS) == "1d"
    assert threshold(i, ends, DEFAULT_DAYS) == "inactive"
