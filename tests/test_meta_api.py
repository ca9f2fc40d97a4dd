"""``/v1/integrations`` and ``/v1/integration-reminders`` on the real server
(waitress on loopback), over the fake Graph server on loopback and a webhook
receiver, time from a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from audience.integrations.meta.fake import APP_ID, APP_SECRET, VERSION, FakeGraph, running
from audience.integrations.meta.graph import GraphConfig
from audience.integrations.meta.tokens import DAY_MS
from audience.runtime.delivery.worker import run_worker
from audience.runtime.plans.clock import ManualClock
from tests.helpers.mail_servers import HttpSink, http_server
from tests.helpers.server_api import Client, Live, Reply, build_store, start

T0 = 1_780_000_000_000  # epoch ms (2026-05-28)
TOKEN = "EAAB-secret-token-0001"


@dataclass
class World:
    live: Live
    fake: FakeGraph
    clock: ManualClock
    sink: HttpSink
    hook: str
    replies: list[Reply]

    def call(self, method: str, path: str, body: Any = None, who: str = "write") -> Reply:
        r = self.live.client(who).request(method, path, body)
        self.replies.append(r)
        return r

    def connect(self, name: str = "ads", token: str = TOKEN, days: int = 60, **more: Any) -> Reply:
        self.fake.add_token(token, expires_at=(self.clock.ms + days * DAY_MS) // 1000)
        body = {"name": name, "account_id": "act_42", "token": token, **more}
        return self.call("POST", "/v1/integrations", body)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("meta") / "shop", n_events=200, n_contacts=20)


@pytest.fixture
def world(store: Path) -> Iterator[World]:
    (store / "integrations.sqlite").unlink(missing_ok=True)
    clock = ManualClock(T0)
    fake = FakeGraph(now=lambda: clock.ms // 1000)
    sink = HttpSink()
    with running(fake) as url, http_server(sink) as hook:
        graph = GraphConfig(
            base_url=url, version=VERSION, app_id=APP_ID, app_secret=APP_SECRET, max_retries=0
        )
        live = start(store, graph=graph, clock=clock)
        w = World(live, fake, clock, sink, hook, [])
        try:
            yield w
        finally:
            live.server.stop()
        # whatever was asked, no answer carried a token whole
        assert all(TOKEN.encode() not in r.body for r in w.replies)


def test_connect_list_show_and_delete(world: World) -> None:
    r = world.connect()
    assert r.status == 201, r.body
    got = r.json()
    assert got["token"] == "EAAB…0001" and got["account_id"] == "42"
    assert (got["status"], got["ends"], got["reminder"]) == ("active", "2026-07-27T20:26:40Z", None)
    listed = world.call("GET", "/v1/integrations", who="read").json()["integrations"]
    assert [i["name"] for i in listed] == ["ads"]
    assert world.call("GET", "/v1/integrations/ads", who="read").json()["status"] == "active"
    # a read token reads, never writes
    assert world.call("DELETE", "/v1/integrations/ads", who="read").status == 403
    assert world.call("DELETE", "/v1/integrations/ads").json() == {"deleted": "ads"}
    r = world.call("GET", "/v1/integrations/ads")
    assert (r.status, r.json()["error"]["code"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "ads", "account_id": "act_1x", "token": TOKEN}, 400, "bad_account"),
        ({"name": "ads", "account_id": "1", "token": "a b"}, 400, "bad_token"),
        ({"name": "", "account_id": "1", "token": TOKEN}, 400, "bad_name"),
        ({"name": "a/b", "account_id": "1", "token": TOKEN}, 400, "bad_name"),
        ({"name": "ads", "account_id": "1"}, 400, "invalid_request"),
        ({"name": "ads", "account_id": "1", "token": TOKEN, "x": 1}, 400, "invalid_request"),
        ({"name": "ads", "account_id": "1", "token": "EAAB-unknown"}, 400, "token_refused"),
        (
            {"name": "ads", "account_id": "1", "token": TOKEN, "reminder_url": "ftp://h"},
            400,
            "bad_url",
        ),
    ],
)
def test_a_refused_connect_stores_nothing(
    world: World, body: dict[str, Any], status: int, code: str
) -> None:
    world.fake.add_token(TOKEN)
    r = world.call("POST", "/v1/integrations", body)
    assert (r.status, r.json()["error"]["code"]) == (status, code), r.body
    assert world.call("GET", "/v1/integrations").json() == {"integrations": []}


def test_connecting_a_name_twice_is_a_conflict(world: World) -> None:
    assert world.connect().status == 201
    r = world.connect(token="EAAB-other-token-02")
    assert (r.status, r.json()["error"]["code"]) == (409, "integration_exists")


def test_platform_down_or_throttling_answers_at_once_and_changes_nothing(world: World) -> None:
    world.fake.fail_next("debug_token", "drop")
    r = world.connect()
    assert (r.status, r.json()["error"]["code"]) == (502, "graph_unavailable")
    world.fake.fail_next("debug_token", world.fake.rate_limit(17))
    r = world.connect()
    assert (r.status, r.json()["error"]["code"]) == (503, "graph_rate_limited")
    assert r.headers["retry-after"] == "60"
    assert world.call("GET", "/v1/integrations").json() == {"integrations": []}


def test_check_marks_a_revoked_token_inactive_and_raises_its_reminder_once(world: World) -> None:
    assert world.connect().status == 201
    put = world.call("PUT", "/v1/integration-reminders", {"url": world.hook + "/r"})
    assert put.json() == {"webhook": {"url": world.hook + "/r", "days": [7, 1]}}
    world.fake.tokens[TOKEN].is_valid = False
    first = world.call("POST", "/v1/integrations/ads/check").json()
    assert first["status"] == "inactive" and "token refused" in first["refused"]
    assert first["reminder"]["reminder"] == "inactive"
    again = world.call("POST", "/v1/integrations/ads/check").json()
    assert again["reminder_delivery"] == first["reminder_delivery"] is not None
    listed = world.call("GET", "/v1/integration-reminders", who="read").json()
    assert [(r["integration"], r["reminder"], r["url"]) for r in listed["reminders"]] == [
        ("ads", "inactive", world.hook + "/r")
    ]
    run_worker(world.live.path, once=True)
    assert [(p, b["integration"], b["status"]) for p, _, b in world.sink.requests] == [
        ("/r", "ads", "inactive")
    ]
    # re-authorized with a new token: active again, nothing due
    world.fake.add_token("EAAB-new-token-0002", expires_at=(world.clock.ms + DAY_MS) // 1000)
    r = world.call("POST", "/v1/integrations/ads/reauthorize", {"token": "EAAB-new-token-0002"})
    assert r.status == 200, r.body
    assert (r.json()["status"], r.json()["reminder"], r.json()["token"]) == (
        "active",
        None,
        "LL2E…0002",  # exchanged for a long-lived one
    )


def test_reminders_follow_the_clock_and_the_integrations_own_url(world: World) -> None:
    assert world.connect(days=10, reminder_url=world.hook + "/own").status == 201
    assert world.call("GET", "/v1/integration-reminders").json()["reminders"] == []
    world.clock.advance(4 * DAY_MS)
    shown = world.call("GET", "/v1/integrations/ads").json()
    assert shown["status"] == "expiring" and shown["reminder"]["reminder"] == "7d"
    assert shown["reminder"]["days_left"] == 6
    put = world.call("PUT", "/v1/integration-reminders", {"url": None, "days": [14]})
    assert put.json() == {"webhook": {"url": None, "days": [14]}}
    # a PUT replaces both: without days, the default ones
    put = world.call("PUT", "/v1/integration-reminders", {"url": world.hook})
    assert put.json() == {"webhook": {"url": world.hook, "days": [7, 1]}}
    world.call("PUT", "/v1/integration-reminders", {"url": None})
    r = world.call("PATCH", "/v1/integrations/ads", {"reminder_url": None})
    assert r.json()["reminder_url"] is None
    listed = world.call("GET", "/v1/integration-reminders").json()["reminders"]
    assert listed[0]["url"] is None  # no webhook anywhere: listed, never posted


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "http://h/x", "days": []}, "bad_days"),
        ({"url": "http://h/x", "days": [0]}, "bad_days"),
        ({"url": "http://h/x", "days": "7"}, "bad_days"),
        ({"url": "not a url"}, "bad_url"),
        ({"hook": "http://h/x"}, "invalid_request"),
    ],
)
def test_bad_reminder_settings_are_refused(world: World, body: dict[str, Any], code: str) -> None:
    r = world.call("PUT", "/v1/integration-reminders", body)
    assert (r.status, r.json()["error"]["code"]) == (400, code)
    assert world.call("GET", "/v1/integration-reminders").json()["webhook"] == {
        "url": None,
        "days": [7, 1],
    }


def test_unknown_integrations_are_404_everywhere(world: World) -> None:
    client: Client = world.live.client("write")
    for method, path, body in (
        ("POST", "/v1/integrations/nope/check", None),
        ("POST", "/v1/integrations/nope/reauthorize", {"token": TOKEN}),
        ("PATCH", "/v1/integrations/nope", {"reminder_url": None}),
        ("DELETE", "/v1/integrations/nope", None),
    ):
        r = client.request(method, path, body)
        assert (r.status, r.json()["error"]["code"]) == (404, "not_found"), (method, path)
