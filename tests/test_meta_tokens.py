"""Meta integrations and their tokens: a real SQLite file in the store, the fake
Graph server over real HTTP, time from a manual clock."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from audience.integrations.meta.fake import APP_ID, APP_SECRET, VERSION, FakeGraph, running
from audience.integrations.meta.graph import GraphConfig, TokenInvalid, Unavailable
from audience.integrations.meta.tokens import (
    ACTIVE,
    DAY_MS,
    EXPIRING,
    INACTIVE,
    INTEGRATIONS_FILE,
    IntegrationError,
    Integrations,
    mask,
)
from audience.runtime.plans.clock import ManualClock

T0 = 1_780_000_000_000  # epoch ms (2026-05-28)
LONG = "EAAB-long-lived-token-0001"


@dataclass
class World:
    fake: FakeGraph
    clock: ManualClock
    url: str
    store: Path

    def integrations(self, app: bool = True) -> Integrations:
        creds = {"app_id": APP_ID, "app_secret": APP_SECRET} if app else {}
        cfg = GraphConfig(base_url=self.url, version=VERSION, **creds)  # type: ignore[arg-type]
        return Integrations(self.store, cfg, self.clock, sleep=lambda s: None)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = ManualClock(T0)
    fake = FakeGraph(now=lambda: clock.ms // 1000)
    with running(fake) as url:
        yield World(fake, clock, url, tmp_path)


def test_connect_stores_the_token_in_a_private_file_and_shows_it_masked(world: World) -> None:
    world.fake.add_token(LONG, expires_at=T0 // 1000 + 60 * 86400)
    i = world.integrations().connect("ads", "act_123", LONG)
    assert (i.name, i.account_id, i.masked_token) == ("ads", "123", "EAAB…0001")
    assert LONG not in repr(i) and LONG not in str(world.integrations().all())
    assert i.expires_ms == T0 + 60 * DAY_MS and i.status(T0) == ACTIVE
    assert i.scopes == ("ads_management", "leads_retrieval") and i.user_id == "10001"
    path = world.store / INTEGRATIONS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # stored whole (calls need it), and the client uses it
    assert sqlite3.connect(path).execute("select token from integrations").fetchone() == (LONG,)
    assert world.integrations().client("ads").get("me") == {"id": "10001"}
    # debug_token was asked with the app token
    debug = next(c for c in world.fake.calls if c.path == "debug_token")
    assert debug.params["access_token"] == f"{APP_ID}|{APP_SECRET}"


def test_mask_never_shows_a_short_token_whole() -> None:
    assert mask("abcdef") == "…ef" and mask("0123456789abcdef") == "0123…cdef"


@pytest.mark.parametrize(
    ("name", "account", "token", "code"),
    [
        ("ads", "act_12x", LONG, "bad_account"),
        ("ads", "123", "  ", "bad_token"),
        ("ads", "123", "two words", "bad_token"),
        ("", "123", LONG, "bad_name"),
        ("ads", "123", "unknown-token-xyz", "token_refused"),
    ],
)
def test_bad_connect_is_refused_and_nothing_stored(
    world: World, name: str, account: str, token: str, code: str
) -> None:
    world.fake.add_token(LONG)
    with pytest.raises(IntegrationError) as e:
        world.integrations().connect(name, account, token)
    assert e.value.code == code
    assert world.integrations().all() == []


def test_connecting_a_name_twice_is_refused(world: World) -> None:
    world.fake.add_token(LONG)
    world.fake.add_token("EAAB-another-token-0002")
    world.integrations().connect("ads", "1", LONG)
    with pytest.raises(IntegrationError) as e:
        world.integrations().connect("ads", "2", "EAAB-another-token-0002")
    assert e.value.code == "integration_exists"
    assert world.integrations().get("ads").account_id == "1"


def test_status_moves_active_expiring_inactive_with_the_clock(world: World) -> None:
    world.fake.add_token(LONG, expires_at=T0 // 1000 + 30 * 86400)
    ints = world.integrations()
    i = ints.connect("ads", "1", LONG)
    assert i.status(T0 + 23 * DAY_MS - 1) == ACTIVE
    assert i.status(T0 + 23 * DAY_MS) == EXPIRING  # exactly 7 days left
    assert i.status(T0 + 30 * DAY_MS - 1) == EXPIRING
    assert i.status(T0 + 30 * DAY_MS) == INACTIVE
    # after the expiry, the platform says invalid too: check records why
    world.clock.ms = T0 + 31 * DAY_MS
    checked = ints.check("ads")
    assert checked.status(world.clock()) == INACTIVE and checked.refused
    assert checked.checked_ms == world.clock()


def test_data_access_expiry_ends_it_when_earlier(world: World) -> None:
    world.fake.add_token(LONG, expires_at=0, data_access_expires_at=T0 // 1000 + 5 * 86400)
    i = world.integrations().connect("ads", "1", LONG)
    assert i.expires_ms is None and i.ends_ms == T0 + 5 * DAY_MS
    assert i.status(T0) == EXPIRING


def test_never_expiring_token_stays_active(world: World) -> None:
    world.fake.add_token(LONG, expires_at=0)
    ints = world.integrations()
    i = ints.connect("page", "1", LONG)
    assert i.ends_ms is None and i.status(T0 + 3650 * DAY_MS) == ACTIVE
    assert ints.reminders() == []


def test_error_190_on_a_call_marks_the_integration_inactive(world: World) -> None:
    world.fake.add_token(LONG)
    ints = world.integrations()
    ints.connect("ads", "1", LONG)
    world.fake.tokens[LONG].is_valid = False  # revoked on the platform's side
    with pytest.raises(TokenInvalid):
        ints.call("ads", lambda c: c.get("me"))
    i = ints.get("ads")
    assert i.status(world.clock()) == INACTIVE and "190/467" in (i.refused or "")
    # a check while still revoked keeps it inactive
    assert ints.check("ads").status(world.clock()) == INACTIVE


def test_reauthorize_exchanges_a_short_lived_token(world: World) -> None:
    world.fake.add_token(LONG, expires_at=T0 // 1000 + 86400)
    ints = world.integrations()
    ints.connect("ads", "1", LONG)
    ints.mark_inactive("ads", "revoked")
    short = "EAAB-short-lived-9999"
    world.fake.add_token(short, expires_at=T0 // 1000 + 3600)
    i = ints.reauthorize("ads", short)
    assert i.refused is None and i.status(T0) == ACTIVE
    assert i.expires_ms == T0 + 60 * DAY_MS  # the exchanged, long-lived one
    exchange = next(c for c in world.fake.calls if c.path == "oauth/access_token")
    assert exchange.params["grant_type"] == "fb_exchange_token"
    assert exchange.params["fb_exchange_token"] == short
    stored = ints.client("ads").access_token
    assert stored != short and world.fake.tokens[stored or ""].expires_at > T0 // 1000 + 3600


def test_reauthorize_without_app_credentials_keeps_the_token_given(world: World) -> None:
    world.fake.add_token(LONG)
    ints = world.integrations(app=False)
    ints.connect("ads", "1", LONG)
    new = "EAAB-new-token-0003"
    world.fake.add_token(new, expires_at=T0 // 1000 + 40 * 86400)
    i = ints.reauthorize("ads", new)
    assert ints.client("ads").access_token == new and i.expires_ms == T0 + 40 * DAY_MS
    assert not [c for c in world.fake.calls if c.path == "oauth/access_token"]
    # without the app token, the token inspects itself
    assert world.fake.calls[-1].params["access_token"] == new


def test_reauthorize_with_an_expired_token_changes_nothing(world: World) -> None:
    world.fake.add_token(LONG)
    ints = world.integrations()
    before = ints.connect("ads", "1", LONG)
    world.fake.add_token("EAAB-expired-0004", expires_at=T0 // 1000 - 1)
    with pytest.raises(IntegrationError) as e:
        ints.reauthorize("ads", "EAAB-expired-0004")
    assert e.value.code == "token_refused" and "190/463" in str(e.value)
    assert ints.get("ads") == before
    with pytest.raises(IntegrationError) as e:
        ints.reauthorize("nope", LONG)
    assert e.value.code == "no_integration"


def test_reminders_list_what_ends_soon_and_what_ended(world: World) -> None:
    f = world.fake
    day = 86400
    for tok, days in (("EAAB-t-in-3-days", 3), ("EAAB-t-in-20-days", 20), ("EAAB-t-in-6-days", 6)):
        f.add_token(tok, expires_at=T0 // 1000 + days * day)
    f.add_token("EAAB-t-revoked-0", expires_at=T0 // 1000 + 50 * day)
    ints = world.integrations()
    ints.connect("a3", "1", "EAAB-t-in-3-days")
    ints.connect("b20", "1", "EAAB-t-in-20-days")
    ints.connect("c6", "1", "EAAB-t-in-6-days")
    ints.connect("dead", "1", "EAAB-t-revoked-0")
    ints.mark_inactive("dead", "revoked")
    got = [(r.name, r.status, r.days_left) for r in ints.reminders()]
    assert got == [("a3", EXPIRING, 3), ("c6", EXPIRING, 6), ("dead", INACTIVE, 50)]
    assert "re-authorize" in ints.reminders()[0].message
    assert [r.name for r in ints.reminders(within_ms=30 * DAY_MS)] == ["a3", "c6", "b20", "dead"]
    world.clock.ms = T0 + 4 * DAY_MS
    assert [(r.name, r.status) for r in ints.reminders()][:2] == [
        ("a3", INACTIVE),
        ("c6", EXPIRING),
    ]


def test_platform_unreachable_changes_nothing(world: World) -> None:
    world.fake.add_token(LONG)
    ints = world.integrations()
    before = ints.connect("ads", "1", LONG)
    world.clock.ms += DAY_MS
    world.fake.fail_next("debug_token", *["drop"] * 6)  # more than the retries
    with pytest.raises(Unavailable):
        ints.check("ads")
    assert ints.get("ads") == before  # neither inactive nor re-checked
    world.fake.faults.clear()
    world.fake.fail_next("debug_token", *["drop"] * 6)
    with pytest.raises(Unavailable):
        ints.connect("other", "2", LONG)
    assert [i.name for i in ints.all()] == ["ads"]
