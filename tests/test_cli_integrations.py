"""``audience integrations`` against the fake Graph server over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import audience
from audience.cli import cli
from audience.integrations.meta.fake import APP_ID, APP_SECRET, VERSION, FakeGraph, running
from audience.runtime.delivery.worker import run_worker
from tests.helpers.cli import run
from tests.helpers.mail_servers import HttpSink, http_server

EXAMPLES = Path(audience.__file__).parent / "examples"
AT = "2026-06-01T00:00:00Z"
AT_S = 1_780_272_000
TOKEN = "EAAB-cli-token-secret-0001"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeGraph, str]]:
    fake = FakeGraph(now=lambda: AT_S)
    store = str(tmp_path / "shop")
    run("init", store, "--schema", str(EXAMPLES / "maison.toml"))
    with running(fake) as url:
        monkeypatch.setenv("AUDIENCE_META_GRAPH_URL", url)
        monkeypatch.setenv("AUDIENCE_META_GRAPH_VERSION", VERSION)
        monkeypatch.setenv("AUDIENCE_META_APP_ID", APP_ID)
        monkeypatch.setenv("AUDIENCE_META_APP_SECRET", APP_SECRET)
        yield fake, store


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_connect_list_check_reauthorize(setup: tuple[FakeGraph, str]) -> None:
    fake, store = setup
    fake.add_token(TOKEN, expires_at=AT_S + 5 * 86400)
    code, out, _ = invoke(
        "integrations",
        "connect",
        store,
        "ads",
        "--account",
        "act_7",
        "--at",
        AT,
        "--format",
        "json",
        stdin=TOKEN + "\n",
    )
    assert code == 0
    got = json.loads(out)
    assert got["status"] == "expiring" and got["token"] == "EAAB…0001"
    assert got["ends"] == "2026-06-06T00:00:00Z" and TOKEN not in out
    code, out, err = invoke("integrations", "list", store, "--at", AT)
    assert code == 0 and "expiring" in out and TOKEN not in out + err
    code, out, _ = invoke("integrations", "list", store, "--at", AT, "--format", "json")
    assert [i["name"] for i in json.loads(out)] == ["ads"]
    assert "reminder: integration 'ads' expires in 5 day(s)" in err
    fake.tokens[TOKEN].is_valid = False
    code, out, _ = invoke("integrations", "check", store, "ads", "--at", AT)
    assert code == 1 and "inactive" in out
    fake.add_token("EAAB-short-0002", expires_at=AT_S + 3600)
    code, out, _ = invoke(
        "integrations",
        "reauthorize",
        store,
        "ads",
        "--at",
        AT,
        "--format",
        "json",
        stdin="EAAB-short-0002",
    )
    assert code == 0 and json.loads(out)["status"] == "active"
    assert json.loads(out)["ends"] == "2026-07-31T00:00:00Z"  # exchanged: 60 days


def test_refused_token_is_an_error_and_nothing_is_stored(setup: tuple[FakeGraph, str]) -> None:
    _, store = setup
    code, out, err = invoke(
        "integrations", "connect", store, "ads", "--account", "7", stdin="nope-token"
    )
    assert code == 1 and "token refused" in err
    code, out, _ = invoke("integrations", "list", store, "--format", "json")
    assert code == 0 and json.loads(out) == []


def test_not_a_store(tmp_path: Path) -> None:
    code, _, err = invoke("integrations", "list", str(tmp_path))
    assert code == 1 and "not a store" in err


def test_reminders_are_listed_set_and_raised_once_by_check(
    setup: tuple[FakeGraph, str],
) -> None:
    fake, store = setup
    fake.add_token(TOKEN, expires_at=AT_S + 5 * 86400)
    invoke("integrations", "connect", store, "ads", "--account", "7", "--at", AT, stdin=TOKEN)
    code, out, _ = invoke("integrations", "reminders", store, "--at", AT, "--format", "json")
    got = json.loads(out)
    assert code == 0 and got["webhook"] == {"url": None, "days": [7, 1]}
    assert [
        (r["integration"], r["reminder"], r["days_left"], r["url"]) for r in got["reminders"]
    ] == [("ads", "7d", 5, None)]
    code, _, err = invoke("integrations", "reminder-webhook", store)
    assert code == 2 and "give --url or --clear" in err
    code, _, err = invoke("integrations", "reminder-webhook", store, "--url", "ftp://x")
    assert code == 1 and "bad webhook URL" in err
    sink = HttpSink()
    with http_server(sink) as hook:
        code, out, _ = invoke(
            "integrations", "reminder-webhook", store, "--url", hook, "--days", "3", "--days", "10"
        )
        assert code == 0 and "10, 3 day(s)" in out
        code, _, err = invoke("integrations", "check", store, "--at", AT)
        assert code == 0 and "reminder raised: integration 'ads' expires in 5 day(s)" in err
        code, _, err = invoke("integrations", "check", store, "ads", "--at", AT)
        assert code == 0 and "reminder raised" not in err  # raised once
        run_worker(store, once=True)
    assert [(b["integration"], b["reminder"]) for _, _, b in sink.requests] == [("ads", "10d")]
    code, out, _ = invoke("integrations", "reminders", store, "--at", AT)
    assert "reminder webhook: http://127.0.0.1" in out and "ads" in out
    code, out, _ = invoke("integrations", "delete", store, "ads")
    assert code == 0 and "deleted integration 'ads'" in out
    code, _, err = invoke("integrations", "delete", store, "ads")
    assert code == 1 and "no integration named 'ads'" in err


def test_the_scheduler_raises_a_due_reminder_once(setup: tuple[FakeGraph, str]) -> None:
    fake, store = setup
    fake.add_token(TOKEN, expires_at=AT_S + 86400)
    invoke("integrations", "connect", store, "ads", "--account", "7", "--at", AT, stdin=TOKEN)
    invoke("integrations", "reminder-webhook", store, "--url", "http://127.0.0.1:9/hooks")
    code, out, _ = invoke("scheduler", store, "--once", "--at", AT)
    assert code == 0 and "reminder integration-reminder:ads:1d:" in out
    assert "webhook delivery 1" in out
    code, out, _ = invoke("scheduler", store, "--once", "--at", AT)
    assert code == 0 and "reminder" not in out  # raised once
