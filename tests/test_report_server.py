"""``GET /v1/reports/domains`` and ``/v1/reports/domains.html`` on the real
server: the CLI's report as JSON, the dashboard with a policy that lets it
fetch nothing, errors as JSON with codes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from audience.runtime.report import ReportParams, build_report
from audience.runtime.report.html import CSP
from audience.runtime.store import Store
from tests.helpers.server_api import Live, start
from tests.report_support import AS_OF, mail_store, ms


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path = Path(mail_store(tmp_path_factory.mktemp("report") / "mail"))
    Store.init(path, path / "nodes" / "main" / "schema.toml", node="other")
    srv = start(path)
    yield srv
    srv.server.stop()


def test_the_json_is_the_report(live: Live) -> None:
    c = live.client("read")
    r = c.get(f"/v1/reports/domains?as_of={AS_OF}&by=month&top=100&metric=block_rate,open_rate")
    assert r.status == 200, r.body
    want = build_report(
        Store.open(live.path).snapshot(),
        ReportParams(as_of_ms=ms(AS_OF), top=100, by="month", metrics=("block_rate", "open_rate")),
    )
    assert r.json() == json.loads(json.dumps(want.to_json()))
    assert len(r.json()["domains"]) == 31  # every domain with a send (11 + 20 small)


def test_listed_domains_and_a_mail_group(live: Live) -> None:
    c = live.client("read")
    q = f"as_of={AS_OF}&domain=libero.it&domain=gmail.com&mail_group=promotions&months=3"
    doc = c.get(f"/v1/reports/domains?{q}").json()
    assert doc["domains"] == ["libero.it", "gmail.com"] and doc["mail_group"] == "promotions"


def test_the_dashboard_fetches_nothing(live: Live) -> None:
    r = live.client("read").get(f"/v1/reports/domains.html?as_of={AS_OF}")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP
    page = r.body.decode()
    assert page.count("<svg") == 10
    # nothing to fetch: no src or href attribute, no url(), no script
    assert not re.search(r"\b(src|href)\s*=|url\(|<script|@import", page)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("top=7", "'top' must be one of 10, 100"),
        ("by=year", "'by' must be one of day, week, month"),
        ("months=x", "'months' must be one of 3, 6, 12"),
        ("top=10&domain=gmail.com", "not both"),
        ("metric=opens", "unknown metric 'opens'"),
        ("tz=Nowhere/Land", "unknown time zone"),
        ("as_of=soon", "'as_of'"),
        ("colour=red", "unknown query parameter 'colour'"),
        ("domain=%20", "is not a domain"),
        ("as_of=9999-12-31T00:00:00Z", "between the years 1901 and 9998"),
    ],
)
def test_bad_queries_are_400_with_a_reason(live: Live, query: str, says: str) -> None:
    for path in ("/v1/reports/domains", "/v1/reports/domains.html"):
        r = live.client("read").get(f"{path}?{query}")
        assert r.status == 400, r.body
        err = r.json()["error"]
        assert err["code"] == "invalid_request" and says in err["message"], err


def test_it_needs_a_token(live: Live) -> None:
    assert live.client(None).get("/v1/reports/domains").status == 401
    assert live.client(None).get("/v1/reports/domains.html").status == 401


def test_a_node_without_email_events_reports_nothing(live: Live) -> None:
    doc = live.client("other_read").get(f"/v1/reports/domains?as_of={AS_OF}").json()
    assert doc["domains"] == [] and doc["rows"] == [] and doc["anomalies"] == []
