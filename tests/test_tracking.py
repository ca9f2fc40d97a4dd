"""Email tracking end to end (docs/tracking.md): the worker sends over real
SMTP, the links of the message are followed over HTTP against the real server,
and the events land in the contact's node."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from audience.runtime.delivery import DeliveryRequest
from audience.runtime.delivery.model import wall_ms
from audience.runtime.tracking import suppression
from audience.runtime.tracking.config import secret
from audience.runtime.tracking.outbox import drain, pending, to_outbox
from audience.runtime.tracking.tokens import Signer
from audience.server.tracking import PIXEL
from tests.helpers.tracking import TEXT, Site, click_urls, header_url, part, site


@pytest.fixture
def shop(tmp_path: Path) -> Site:
    with site(tmp_path / "shop") as s:
        yield s  # type: ignore[misc]


def _later(s: Site, d_sent: int | None, seconds: int = 60) -> None:
    assert d_sent is not None
    s.clock.now = d_sent + seconds * 1000


def test_a_click_redirects_to_the_link_as_sent_and_records_email_clicked(shop: Site) -> None:
    d = shop.send()
    msg = shop.message()
    urls = click_urls(msg)
    # two links, plus the hidden one; mailto, #top and data-notrack stay as they were
    assert len(urls) == 3
    html = part(msg, "html")
    assert 'href="mailto:care@shop.example"' in html and 'href="#top"' in html
    assert 'data-notrack href="https://shop.example/legal"' in html
    assert "https://shop.example/profile" not in html
    assert re.search(r'<img src="[^"]*/t/o/[^"]+" width="1" height="1"', html)
    # the text part's URL is the same link (same index) as the HTML's first one
    assert part(msg, "plain") == TEXT.replace(
        "https://shop.example/profile?step=1&src=mail", urls[0]
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert header_url(msg).startswith(shop.url + "/t/u/")

    _later(shop, d.sent_ms)
    status, headers, _ = shop.request("GET", shop.path(urls[0]), headers={"User-Agent": "Mail/1"})
    assert status == 302
    assert headers["location"] == "https://shop.example/profile?step=1&src=mail"
    assert "no-store" in headers["cache-control"]
    assert (
        shop.count(
            'did email_clicked where (link = "https://shop.example/profile?step=1&src=mail" '
            'and link_index = 0 and link_text = "Complete your profile" and bot = false '
            'and user_agent = "Mail/1" and delivery = "Complete your profile" '
            f'and plan = "Welcome" and mail_group = "Onboarding" and delivery_id = {d.id} '
            f'and delivery_key = "{d.key}" and source = "plan:Welcome" and journey is not set)'
        )
        == 1
    )


def test_a_replayed_click_is_a_new_click(shop: Site) -> None:
    d = shop.send()
    url = click_urls(shop.message())[1]
    _later(shop, d.sent_ms)
    for _ in range(3):
        shop.clock.now += 5_000
        status, headers, _ = shop.request("GET", shop.path(url))
        assert (status, headers["location"]) == (302, "https://shop.example/sale")
    assert shop.count('did email_clicked where link_text = "The sale" exactly 3 times') == 1


def test_an_open_returns_the_pixel_and_records_email_opened(shop: Site) -> None:
    d = shop.send()
    src = re.search(r'<img src="([^"]*/t/o/[^"]+)"', part(shop.message(), "html"))
    assert src is not None
    _later(shop, d.sent_ms)
    status, headers, body = shop.request("GET", shop.path(src.group(1)))
    assert (status, headers["content-type"], body) == (200, "image/gif", PIXEL)
    assert shop.count(f"did email_opened where (bot = false and delivery_id = {d.id})") == 1


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:-1], id="truncated"),
        pytest.param(lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1], id="altered"),
        pytest.param(lambda t: t.split(".")[0], id="no-signature"),
        pytest.param(lambda t: "WzEsMV0." + t.split(".")[1], id="other-payload"),
        pytest.param(lambda t: t + "%0d%0aLocation:%20https://evil.example", id="header-injection"),
        pytest.param(lambda t: "", id="empty"),
    ],
)
def test_forged_altered_and_truncated_tokens_get_404_and_record_nothing(
    shop: Site, mangle: object
) -> None:
    d = shop.send()
    token = click_urls(shop.message())[0].rsplit("/", 1)[1]
    _later(shop, d.sent_ms)
    bad = mangle(token)  # type: ignore[operator]
    for kind in ("c", "o", "u"):
        for method in ("GET", "HEAD", "POST") if kind == "u" else ("GET", "HEAD"):
            status, headers, _ = shop.request(method, f"/t/{kind}/{bad}")
            assert status in (404, 405), (kind, method, status)
            assert "location" not in headers
    assert shop.count("did email_clicked or did email_opened or did unsubscribed") == 0
    assert suppression.entries(shop.root) == []


def test_a_token_of_another_kind_or_another_store_is_refused(shop: Site, tmp_path: Path) -> None:
    d = shop.send()
    _later(shop, d.sent_ms)
    mine = Signer(secret(shop.root))
    # a valid open token used as a click, an unsubscribe token used as an open
    assert shop.request("GET", f"/t/c/{mine.sign('o', d.id)}")[0] == 404
    assert shop.request("GET", f"/t/o/{mine.sign('u', d.id)}")[0] == 404
    # a well-formed click token for a link the message did not have
    assert shop.request("GET", f"/t/c/{mine.sign('c', d.id, 99)}")[0] == 404
    # signed with another store's secret
    (tmp_path / "elsewhere").mkdir()
    other = Signer(secret(tmp_path / "elsewhere"))
    assert shop.request("GET", f"/t/c/{other.sign('c', d.id, 0)}")[0] == 404
    assert shop.count("did email_clicked or did email_opened") == 0


def test_a_click_for_a_deleted_delivery_is_404(shop: Site) -> None:
    d = shop.send()
    url = click_urls(shop.message())[0]
    _later(shop, d.sent_ms)
    with shop.log.transaction() as conn:
        conn.execute("delete from deliveries where id = ?", [d.id])
    status, headers, _ = shop.request("GET", shop.path(url))
    assert status == 404 and "location" not in headers
    assert shop.count("did email_clicked") == 0


def test_bot_signals_head_early_clicks_bursts_and_hidden_links(shop: Site) -> None:
    d = shop.send()
    urls = click_urls(shop.message())
    assert d.sent_ms is not None
    # a click 3 s after sending: bot (default bot_seconds is 10)
    shop.clock.now = d.sent_ms + 3_000
    assert shop.request("GET", shop.path(urls[0]))[0] == 302
    assert shop.count("did email_clicked where bot = true") == 1
    # HEAD redirects too, and counts as a bot's click
    shop.clock.now = d.sent_ms + 600_000
    status, headers, _ = shop.request("HEAD", shop.path(urls[0]))
    assert (status, headers["location"]) == (302, "https://shop.example/profile?step=1&src=mail")
    assert shop.count("did email_clicked where bot = true at least 2 times") == 1
    # the hidden link: only a scanner follows it
    shop.clock.now = d.sent_ms + 1_200_000
    assert shop.request("GET", shop.path(urls[2]))[0] == 302
    assert shop.count("did email_clicked where bot = true at least 3 times") == 1
    # a person's click, then another link of the message in the same second: a scanner
    shop.clock.now = d.sent_ms + 1_800_000
    assert shop.request("GET", shop.path(urls[0]))[0] == 302
    shop.clock.now += 400
    assert shop.request("GET", shop.path(urls[1]))[0] == 302
    assert shop.count("did email_clicked where bot = false exactly 1 time") == 1
    assert shop.count('did email_clicked where (bot = true and link_text = "The sale")') == 1


def test_one_click_unsubscribe_suppresses_later_marketing_sends(shop: Site) -> None:
    d = shop.send()
    url = header_url(shop.message())
    _later(shop, d.sent_ms)
    # GET shows the page and records nothing (mail scanners GET links)
    status, headers, body = shop.request("GET", shop.path(url))
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<form method="post">' in body and b"A***@Shop.example" in body
    assert not suppression.is_suppressed(shop.root, "angela@shop.example")
    # RFC 8058: POST with the body List-Unsubscribe=One-Click
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = shop.request("POST", shop.path(url), b"List-Unsubscribe=One-Click", form)
    assert status == 200 and b"is unsubscribed" in body
    assert suppression.is_suppressed(shop.root, "  ANGELA@shop.example ")
    assert shop.count(f"did unsubscribed where delivery_id = {d.id}") == 1
    # a second POST: still unsubscribed, nothing recorded again
    shop.clock.now += 60_000
    assert shop.request("POST", shop.path(url), b"List-Unsubscribe=One-Click", form)[0] == 200
    assert shop.count("did unsubscribed exactly 1 time") == 1
    [entry] = suppression.entries(shop.root)
    assert (entry.email_norm, entry.reason, entry.delivery_id) == (
        "angela@shop.example",
        "unsubscribed",
        d.id,
    )
    # a later marketing send is recorded suppressed and never sent; a test send goes
    later = shop.send(key="plan:main:Welcome:2:0:angela")
    assert (later.status, later.cap) == ("suppressed", "unsubscribed")
    assert shop.sink.received == []
    test = shop.send(key="test:Welcome:angela", test=True)
    assert test.status == "sent"
    # a test send is never rewritten
    assert click_urls(shop.message()) == [] and shop.message()["List-Unsubscribe"] is None


def test_without_a_base_url_nothing_is_rewritten(tmp_path: Path) -> None:
    with site(tmp_path / "plain", base_url=False) as s:
        s.send()
        msg = s.message()
        assert part(msg, "plain") == TEXT
        assert "https://shop.example/profile?step=1&amp;src=mail" in part(msg, "html")
        assert msg["List-Unsubscribe"] is None


def test_a_plan_batch_skips_suppressed_addresses(shop: Site) -> None:
    suppression.add(shop.root, "B@x.example")
    got = shop.log.reserve_batch(
        "main",
        ["a", "b", "c"],
        ["a@x.example", " b@X.example", None],
        None,
        wall_ms(),
        {"subject": "s"},
        "plan:P",
        "plan:main:P:1:0:",
    )
    # recorded with the list's reason (added by hand here)
    assert got["by_cap"] == {"manual": 1} and got["suppressed"] == 1
    assert got["reserved"] == 2
    shop.log.materialize_all()
    rows = {d.contact_id: d for d in shop.log.list()}
    assert (rows["b"].status, rows["b"].cap) == ("suppressed", "manual")
    assert rows["a"].status == rows["c"].status == "reserved"
    # a test batch is never suppressed
    test = shop.log.reserve_batch(
        "main", ["b"], ["b@x.example"], None, wall_ms(), {}, "test", "test:P:", test=True
    )
    assert test["reserved"] == 1 and test["suppressed"] == 0


def test_a_triggers_single_request_is_suppressed_in_its_transaction(shop: Site) -> None:
    suppression.add(shop.root, "z@x.example")
    req = DeliveryRequest(
        "trigger:T:e1:0", "main", "z", "Z@x.example", "email", "send_email", {}, wall_ms()
    )
    d = shop.log.request(req)
    assert (d.status, d.cap) == ("suppressed", "manual")  # the list's reason
    webhook = shop.log.request(
        DeliveryRequest("trigger:T:e1:1", "main", "z", "z@x.example", "webhook", "webhook", {}, 0)
    )
    assert webhook.status == "reserved"  # only email is suppressed
    with shop.log.dry_run() as dry:
        assert (
            dry.request(
                DeliveryRequest("k2", "main", "z", "z@x.example", "email", "send_email", {}, 0)
            ).status
            == "suppressed"
        )


def test_email_sent_is_recorded_once_per_delivery(shop: Site) -> None:
    d = shop.send()
    assert (
        shop.count(f'did email_sent where (delivery_id = {d.id} and source = "plan:Welcome")') == 1
    )
    # the same event queued again (a resend after a crash) is stored once
    from audience.runtime.tracking.sending import Tracker

    tracker = Tracker.for_store(shop.log, shop.root)
    assert tracker is not None and d.sent_ms is not None
    tracker.sent(d, d.sent_ms)
    drain(shop.log, lambda node: shop.store())
    assert shop.count("did email_sent exactly 1 time") == 1


def test_an_outbox_ingested_but_not_emptied_is_ingested_once(shop: Site) -> None:
    """A crash between the ingest and the delete of outbox rows: the next drain
    ingests them again, and the store keeps each event once (own ids)."""
    d = shop.send()
    url = click_urls(shop.message())[0]
    _later(shop, d.sent_ms)
    shop.count("did email_clicked")  # the outbox is empty
    with shop.log.transaction() as conn:
        for i in range(3):
            to_outbox(conn, "main", {**_click_event(d.id), "id": f"replayed-{i}"})
    store = shop.store()
    with shop.log.transaction() as conn:
        rows = [json.loads(r[0]) for r in conn.execute("select event from tracking_outbox")]
    store.ingest_events(rows)  # ingested, then the process died before deleting the rows
    assert shop.request("GET", shop.path(url))[0] == 302  # the server's ingester drains
    assert shop.count("did email_clicked exactly 4 times") == 1
    assert pending(shop.log) == 0


def _click_event(delivery_id: int) -> dict[str, object]:
    return {
        "contact_id": "angela",
        "type": "email_clicked",
        "ts": wall_ms(),
        "delivery_id": delivery_id,
        "bot": False,
    }
