"""The unsubscribe page in a real browser (headless Chromium driven by
Selenium): the link of a message's List-Unsubscribe header opens a page,
the button unsubscribes, the confirmation shows, and the address is suppressed.

Chromium comes from the Debian packages ``chromium`` and ``chromium-driver``
(.ci/run installs them).  Without them the test is skipped, except in CI
(CI=true), where a missing browser is a failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audience.runtime.tracking import suppression
from tests.helpers.browser import browser
from tests.helpers.tracking import header_url, site

__all__ = ["browser"]  # the fixture


def test_the_unsubscribe_page_button_unsubscribes(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with site(tmp_path / "shop") as shop:
        d = shop.send()
        assert d.sent_ms is not None
        shop.clock.now = d.sent_ms + 60_000
        browser.get(header_url(shop.message()))
        assert browser.title == "Unsubscribe"
        # opening the page changed nothing
        assert not suppression.is_suppressed(shop.root, d.email)
        browser.find_element(By.ID, "unsubscribe").click()
        done = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "done")))
        assert "is unsubscribed" in done.text
        assert browser.title == "Unsubscribed"
        assert suppression.is_suppressed(shop.root, d.email)
        assert shop.count(f"did unsubscribed where delivery_id = {d.id}") == 1
