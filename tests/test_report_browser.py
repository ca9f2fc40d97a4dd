"""The dashboard in a real browser (headless Chromium, as
tests/test_tracking_browser.py drives it): the page the CLI writes opens
from the disk, draws one chart per metric with a line per domain and the
anomalies circled with their reason as a tooltip, and fetches nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audience.runtime.report import ReportParams, build_report
from audience.runtime.report.html import dashboard
from audience.runtime.store import Store
from tests.helpers.browser import browser
from tests.report_support import AS_OF, mail_store, ms

__all__ = ["browser"]  # the fixture


def test_the_dashboard_renders_offline(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    store = Path(mail_store(tmp_path / "mail", n_contacts=3_000))
    metrics = ("sent", "block_rate", "human_open_rate", "complaint_rate")
    report = build_report(
        Store.open(store).snapshot(), ReportParams(as_of_ms=ms(AS_OF), metrics=metrics)
    )
    page = tmp_path / "trend.html"
    page.write_text(dashboard(report), encoding="utf-8")
    browser.get(page.as_uri())
    assert browser.title == "Trend for recipient domains"
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == len(metrics)
    for chart in charts:
        assert chart.size["width"] > 500 and chart.size["height"] > 200
        lines = chart.find_elements(By.TAG_NAME, "polyline")
        assert {ln.get_attribute("data-domain") for ln in lines} == set(report.domains)
        # drawn: the browser laid the lines out with a real extent
        boxes = browser.execute_script(
            "return Array.from(arguments[0].querySelectorAll('polyline'))"
            ".map(p => p.getBBox().width)",
            chart,
        )
        assert min(boxes) > 100
    blocks = charts[1].find_elements(By.CSS_SELECTOR, "circle.anomaly")
    assert blocks and {c.get_attribute("data-domain") for c in blocks} == {"libero.it"}
    tip = blocks[0].find_element(By.TAG_NAME, "title").get_attribute("textContent")
    assert tip.startswith("libero.it, ") and "block rate" in tip
    # nothing was fetched: no resource besides the page itself
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert fetched == []


def test_the_served_dashboard_renders_with_its_policy(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from tests.helpers.server_api import start

    store = Path(mail_store(tmp_path / "mail", n_contacts=3_000))
    Store.init(store, store / "nodes" / "main" / "schema.toml", node="other")
    live = start(store)
    try:
        # the browser sends the API token as a caller would (DevTools protocol)
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders",
            {"headers": {"Authorization": f"Bearer {live.tokens['read']}"}},
        )
        browser.get(f"{live.url}/v1/reports/domains.html?as_of={AS_OF}&by=month")
        charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) == 10
        assert all(c.size["height"] > 200 for c in charts)
        assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    finally:
        live.server.stop()
