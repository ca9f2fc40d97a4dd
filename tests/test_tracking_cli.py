"""``audience config`` and ``audience suppressions`` (docs/tracking.md)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from audience.cli import cli
from audience.runtime.delivery import DeliveryLog, DeliveryRequest
from audience.runtime.delivery.model import wall_ms
from audience.runtime.store import Store
from audience.runtime.tracking import suppression
from audience.runtime.tracking.config import SECRET_FILE, TrackingConfig
from tests.helpers.tracking import SCHEMA


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_config_sets_checks_and_never_shows_the_secret(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    Store.init(root, SCHEMA)
    secret = (root / SECRET_FILE).read_text().strip()
    assert len(secret) >= 40 and (root / SECRET_FILE).stat().st_mode & 0o077 == 0
    assert "tracking.base_url = (not set)" in run("config", str(root)).output
    run("config", str(root), "tracking.base_url", "https://t.shop.example/")
    run("config", str(root), "tracking.bot_seconds", "5")
    shown = json.loads(run("config", str(root), "--format", "json").output)
    assert shown == {
        "tracking.base_url": "https://t.shop.example",
        "tracking.bot_seconds": 5.0,
        "tracking.return_path_domain": None,
    }
    assert TrackingConfig.load(root, env={}) == TrackingConfig("https://t.shop.example", 5.0)
    # bad values are refused with the reason, and change nothing
    for key, value, why in [
        ("tracking.base_url", "javascript:alert(1)", "not an http(s) URL"),
        ("tracking.base_url", "https://t.example/?a=1", "query"),
        ("tracking.bot_seconds", "100000", "between 0 and 86400"),
        ("tracking.secret", "x", "unknown setting"),
    ]:
        out = run("config", str(root), key, value, ok=False).output
        assert why in out, out
    assert json.loads(run("config", str(root), "--format", "json").output) == shown
    for out in (run("config", str(root)).output, json.dumps(shown)):
        assert secret not in out
    run("config", str(root), "tracking.base_url", "--unset")
    assert TrackingConfig.load(root, env={}).base_url is None
    # the environment wins over the file
    env = {"AUDIENCE_TRACKING_BASE_URL": "http://127.0.0.1:9"}
    assert TrackingConfig.load(root, env=env).base_url == "http://127.0.0.1:9"


def test_a_store_made_before_tracking_gets_its_secret_on_first_use(tmp_path: Path) -> None:
    from audience.runtime.tracking.config import secret

    root = tmp_path / "old"
    Store.init(root, SCHEMA)
    (root / SECRET_FILE).unlink()
    first = secret(root)
    assert first == secret(root) == (root / SECRET_FILE).read_bytes().strip()


def test_suppressions_add_list_remove(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    Store.init(root, SCHEMA)
    assert "no suppressed address" in run("suppressions", "list", str(root)).output
    out = run("suppressions", "add", str(root), " Ann@X.example", "bo@x.example", "--note", "asked")
    assert "2 addresses added" in out.output
    assert "1 already there" in run("suppressions", "add", str(root), "ann@x.example").output
    assert "not an email address" in run("suppressions", "add", str(root), "ann", ok=False).output
    listed = json.loads(run("suppressions", "list", str(root), "--format", "json").output)
    assert [(e["email_norm"], e["reason"], e["source"]) for e in listed["suppressions"]] == [
        ("ann@x.example", "manual", "asked"),
        ("bo@x.example", "manual", "asked"),
    ]
    # what plans, triggers and journeys consult
    assert suppression.is_suppressed(root, "ANN@x.example")
    mask = suppression.suppressed_mask(root, ["bo@x.example ", None, "cy@x.example"])
    assert mask.tolist() == [True, False, False]
    with DeliveryLog.open(root) as log:
        d = log.request(
            DeliveryRequest(
                "k", "main", "ann", "ann@x.example", "email", "send_email", {}, wall_ms()
            )
        )
        assert (d.status, d.cap) == ("suppressed", "manual")
    out = run("suppressions", "remove", str(root), "ann@x.example", "zz@x.example", ok=False).output
    assert "not on the list: zz@x.example" in out
    assert not suppression.is_suppressed(root, "ann@x.example")
    assert "1 address" in run("suppressions", "list", str(root)).output
