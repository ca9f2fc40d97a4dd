"""The unsubscribe page in a real browser (headless Chromium driven by
Selenium): the link of a message's List-Unsubscribe header opens a page,
the button unsubscribes, the confirmation shows, and the address is suppressed.

Chromium comes from the Debian packages ``chromium`` and ``chromium-driver``
(.ci/run installs them).  Without them the test is skipped, except in CI
(CI=true), where a missing browser is a failure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audience.runtime.tracking import suppression
from tests.helpers.tracking import header_url, site

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = [
        name for name, path in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if not path
    ]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        why = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the browser test: {why}")
        pytest.skip(why)
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=str(DRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


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
