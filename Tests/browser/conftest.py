"""Browser tests of the AWSomePets web shop and saga monitor: a real headless Chromium driven by Selenium.

They run against a running system (`scripts/up`, or the services `scripts/test` starts). Settings:
  PETS_ORDER_URL     the Order service, which serves the pages (default http://127.0.0.1:8080)
  PETS_SCREENSHOTS   where the screenshots go (default <repo>/.pets/screenshots)
  PETS_CHROMIUM, PETS_CHROMEDRIVER   the browser and its driver (default Debian's /usr/bin/chromium, chromedriver)
"""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path
from typing import Callable

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from browser_helpers import CHROMEDRIVER, CHROMIUM, DESKTOP, ORDER_URL, SCREENSHOTS


# ---------------------------------------------------------------------------------------------------------------
# The browser


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Lets fixtures see whether the test failed (for the failure screenshot).
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def driver() -> WebDriver:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            pytest.fail(f"{path} not found: install Debian's {package} (scripts/test installs it)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # we run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--lang=en-US",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER)
    browser = webdriver.Chrome(service=service, options=options)
    browser.set_page_load_timeout(30)
    browser.set_script_timeout(30)
    yield browser
    browser.quit()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def browser(driver: WebDriver, screenshots: Path, request) -> WebDriver:
    """The shared browser at desktop size, on the shop with an empty cart and no remembered order."""
    driver.set_window_size(*DESKTOP)
    driver.get(ORDER_URL + "/")
    driver.execute_script("localStorage.clear(); sessionStorage.clear();")
    driver.get("about:blank")
    driver.get_log("browser")  # drop what earlier tests logged
    yield driver
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        try:
            driver.save_screenshot(str(screenshots / f"FAILED-{name}.png"))
            print(f"\nscreenshot of the failure: {screenshots / f'FAILED-{name}.png'}; URL {driver.current_url}")
        except WebDriverException:
            pass
    # A script error on any page is a bug, whatever the test checked.
    errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE" and "Uncaught" in e["message"]]
    driver.set_window_size(*DESKTOP)
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def shot(driver: WebDriver, screenshots: Path) -> Callable[[str], Path]:
    """shot(name): a screenshot as <PETS_SCREENSHOTS>/<name>.png; of the whole page, or with full=False of the
    viewport only (what a phone shows, fixed bars where they belong)."""

    def take(name: str, full: bool = True) -> Path:
        path = screenshots / f"{name}.png"
        # Let animations (fade-ins, flashes) settle so the picture shows the page as a person sees it.
        time.sleep(0.5)
        driver.execute_script("window.scrollTo(0, 0)")  # the top of the page (and sticky headers where they belong)
        if not full:
            time.sleep(0.2)
            driver.save_screenshot(str(path))
            return path
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        width = driver.execute_script("return window.innerWidth")
        height = min(int(size["height"]), 6000)
        data = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    return take
