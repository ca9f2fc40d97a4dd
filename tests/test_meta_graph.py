"""The Graph API client against the fake Graph server over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator

import pytest

from audience.integrations.meta.fake import APP_ID, APP_SECRET, VERSION, Fail, FakeGraph, running
from audience.integrations.meta.graph import (
    GraphClient,
    GraphConfig,
    GraphError,
    RateLimited,
    TokenInvalid,
    Unavailable,
    appsecret_proof,
    graph_config_from_env,
)


@pytest.fixture
def fake() -> FakeGraph:
    g = FakeGraph()
    g.add_token("tok-1")
    return g


@pytest.fixture
def base_url(fake: FakeGraph) -> Iterator[str]:
    with running(fake) as url:
        yield url


def client(base_url: str, sleeps: list[float], **kw: object) -> GraphClient:
    cfg = GraphConfig(base_url=base_url, version=VERSION, **kw)  # type: ignore[arg-type]
    return GraphClient(cfg, "tok-1", sleep=sleeps.append, rand=lambda: 0.0)


def test_version_and_base_url_come_from_configuration(fake: FakeGraph, base_url: str) -> None:
    assert client(base_url, []).get("me") == {"id": "10001"}
    other = GraphClient(GraphConfig(base_url=base_url, version="v1.0"), "tok-1", sleep=[].append)
    with pytest.raises(GraphError) as e:
        other.get("me")
    assert e.value.code == 2635 and e.value.http_status == 400


def test_error_body_becomes_a_typed_error(fake: FakeGraph, base_url: str) -> None:
    fake.fail_next("me", Fail(200, "Permissions error", subcode=1234, type="OAuthException"))
    sleeps: list[float] = []
    with pytest.raises(GraphError) as e:
        client(base_url, sleeps).get("me")
    err = e.value
    assert (err.code, err.subcode, err.type) == (200, 1234, "OAuthException")
    assert err.fbtrace_id and err.fbtrace_id.startswith("Atrace")
    assert not isinstance(err, TokenInvalid | RateLimited) and sleeps == []  # not retried
    assert "200/1234" in str(err) and err.fbtrace_id in str(err)


def test_dead_token_is_token_invalid_and_not_retried(fake: FakeGraph, base_url: str) -> None:
    fake.tokens["tok-1"].is_valid = False
    sleeps: list[float] = []
    with pytest.raises(TokenInvalid) as e:
        client(base_url, sleeps).get("me")
    assert (e.value.code, e.value.subcode) == (190, 467) and sleeps == []
    assert len(fake.calls) == 1


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80003])
def test_rate_limit_then_success_backs_off(fake: FakeGraph, base_url: str, code: int) -> None:
    fake.fail_next("me", fake.rate_limit(code), fake.rate_limit(code))
    sleeps: list[float] = []
    c = client(base_url, sleeps, backoff_s=1.0)
    assert c.get("me") == {"id": "10001"}
    assert sleeps == [1.0, 2.0] and c.retries == 2 and len(fake.calls) == 3


def test_backoff_has_jitter(fake: FakeGraph, base_url: str) -> None:
    fake.fail_next("me", fake.rate_limit(17), fake.rate_limit(17))
    sleeps: list[float] = []
    cfg = GraphConfig(base_url=base_url, version=VERSION, backoff_s=2.0, jitter=0.5)
    c = GraphClient(cfg, "tok-1", sleep=sleeps.append, rand=lambda: 0.5)
    assert c.get("me") == {"id": "10001"}
    assert sleeps == [2.5, 5.0]


def test_usage_header_on_the_error_response_sets_the_wait(fake: FakeGraph, base_url: str) -> None:
    fake.fail_next("me", fake.rate_limit(80003, regain_minutes=3))
    sleeps: list[float] = []
    c = client(base_url, sleeps)
    assert c.get("me") == {"id": "10001"}
    assert sleeps == [180.0]
    buc = c.last_usage["X-Business-Use-Case-Usage"]
    assert buc["act_1"][0]["estimated_time_to_regain_access"] == 3


def test_transient_codes_retry_and_give_up_after_max_retries(
    fake: FakeGraph, base_url: str
) -> None:
    fake.fail_next("me", *[Fail(2, "Service temporarily unavailable")] * 4)
    sleeps: list[float] = []
    with pytest.raises(Unavailable) as e:
        client(base_url, sleeps, max_retries=2).get("me")
    assert e.value.code == 2 and sleeps == [1.0, 2.0] and len(fake.calls) == 3
    # is_transient on another code counts too; the remaining fault is consumed first
    fake.faults.clear()
    fake.fail_next("me", Fail(100, "try again", transient=True))
    assert client(base_url, sleeps).get("me") == {"id": "10001"}


def test_rate_limit_still_failing_raises_rate_limited(fake: FakeGraph, base_url: str) -> None:
    fake.fail_next("me", *[fake.rate_limit(4)] * 3)
    sleeps: list[float] = []
    with pytest.raises(RateLimited):
        client(base_url, sleeps, max_retries=2, backoff_s=10.0, max_backoff_s=15.0).get("me")
    assert sleeps == [10.0, 15.0]  # capped


def test_dropped_connection_is_retried(fake: FakeGraph, base_url: str) -> None:
    fake.fail_next("me", "drop")
    sleeps: list[float] = []
    assert client(base_url, sleeps).get("me") == {"id": "10001"}
    assert sleeps == [1.0] and len(fake.calls) == 2


def test_timeout_is_retried(fake: FakeGraph, base_url: str) -> None:
    fake.fail_next("me", "hang")
    sleeps: list[float] = []
    assert client(base_url, sleeps, timeout_s=0.3).get("me") == {"id": "10001"}
    assert sleeps == [1.0]


def test_cursor_paging_follows_after_until_no_next(fake: FakeGraph, base_url: str) -> None:
    items = [{"id": str(i), "name": f"a{i}"} for i in range(7)]
    fake.add_collection("act_1/customaudiences", items)
    got = list(client(base_url, []).pages("act_1/customaudiences", {"limit": 3}))
    assert got == items
    afters = [c.params.get("after") for c in fake.calls]
    assert afters == [None, "c3", "c6"]
    fake.add_collection("act_2/customaudiences", [])
    assert list(client(base_url, []).pages("act_2/customaudiences")) == []


def test_appsecret_proof_sent_when_configured(fake: FakeGraph, base_url: str) -> None:
    want = hmac.new(APP_SECRET.encode(), b"tok-1", hashlib.sha256).hexdigest()
    assert appsecret_proof("tok-1", APP_SECRET) == want
    fake.require_proof = True
    with pytest.raises(GraphError) as e:
        client(base_url, []).get("me")
    assert e.value.code == 100
    c = client(base_url, [], app_id=APP_ID, app_secret=APP_SECRET)
    assert c.get("me") == {"id": "10001"}
    assert fake.calls[-1].params["appsecret_proof"] == want


def test_structured_fields_are_sent_as_json_strings(fake: FakeGraph, base_url: str) -> None:
    seen = []

    def echo(call):  # type: ignore[no-untyped-def]
        seen.append(call.json_field("payload"))
        return 200, {"ok": True}

    fake.route("POST", r"\d+/users", echo)
    payload = {"schema": "EMAIL_SHA256", "data": [["ab"], ["cd"]]}
    assert client(base_url, []).post("42/users", {"payload": payload}) == {"ok": True}
    assert seen == [payload]


META_ENV = {
    "AUDIENCE_META_GRAPH_URL": "http://127.0.0.1:9",
    "AUDIENCE_META_GRAPH_VERSION": "v99.0",
    "AUDIENCE_META_APP_ID": "42",
    "AUDIENCE_META_APP_SECRET": "s3cret",
    "AUDIENCE_META_MAX_RETRIES": "1",
    "AUDIENCE_META_BACKOFF_S": "0.5",
}


def test_one_reader_of_the_environment_for_every_component(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from audience.integrations.meta.leads.config import graph_config

    for k in META_ENV:
        monkeypatch.delenv(k, raising=False)
    assert graph_config_from_env() == GraphConfig()
    # the lead worker's own defaults hold while the variables are unset (or blank)
    monkeypatch.setenv("AUDIENCE_META_MAX_RETRIES", " ")
    assert (graph_config().max_retries, graph_config().max_backoff_s) == (3, 60.0)
    for k, v in META_ENV.items():
        monkeypatch.setenv(k, v)
    want = GraphConfig("http://127.0.0.1:9", "v99.0", "42", "s3cret", max_retries=1, backoff_s=0.5)
    assert graph_config_from_env() == want
    assert graph_config() == GraphConfig(**{**want.__dict__, "max_backoff_s": 60.0})
    monkeypatch.setenv("AUDIENCE_META_MAX_RETRIES", "three")
    with pytest.raises(ValueError, match="AUDIENCE_META_MAX_RETRIES='three': not a number"):
        graph_config_from_env()
