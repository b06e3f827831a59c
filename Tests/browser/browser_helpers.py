"""Helpers of the browser tests: settings, waiting, the shop as a person uses it, and the API to check it."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import requests
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from pets.catalogue import Catalogue
from pets.orders import order_body, place_order
from pets.services import ORDER_URL

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("PETS_SCREENSHOTS") or REPO / ".pets" / "screenshots")
CHROMIUM = os.environ.get("PETS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("PETS_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"

DESKTOP = (1280, 900)
PHONE = (390, 844)
HTTP_TIMEOUT = 10
SAGA_TIMEOUT = 60  # from "Confirm Payment" to the outcome on screen (steps are shown one by one)

CARD_NUMBER = "4111111111111111"
VALID_EXPIRY = "12/30"
EXPIRED = "12/19"


# ---------------------------------------------------------------------------------------------------------------
# Waiting and finding


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = 15, message: str = "") -> Any:
    """Polls `condition` until it returns something truthy; stale elements count as "not yet"."""
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, message
    )


def by_testid(testid: str) -> tuple[str, str]:
    return By.CSS_SELECTOR, f'[data-testid="{testid}"]'


def visible(driver: WebDriver, css: str) -> WebElement | None:
    for element in driver.find_elements(By.CSS_SELECTOR, css):
        if element.is_displayed():
            return element
    return None


def wait_visible(driver: WebDriver, css: str, timeout: float = 15) -> WebElement:
    return wait_for(driver, lambda d: visible(d, css), timeout, f"{css} never became visible")


def click(driver: WebDriver, css: str, timeout: float = 15) -> None:
    """Clicks the first element matching `css`, finding it anew until the click lands (live pages redraw)."""

    def attempt(d: WebDriver) -> bool:
        elements = d.find_elements(By.CSS_SELECTOR, css)
        if not elements:
            return False
        elements[0].click()
        return True

    wait_for(driver, attempt, timeout, f"could not click {css}")


def attribute(driver: WebDriver, css: str, name: str, timeout: float = 15) -> str | None:
    """An attribute of the first element matching `css`, read without tripping over a redraw."""
    return wait_for(
        driver, lambda d: [e.get_attribute(name) for e in d.find_elements(By.CSS_SELECTOR, css)][:1], timeout, css
    )[0]


def timeline(driver: WebDriver) -> list[tuple[str, str]]:
    """The open saga's timeline in the monitor, as (step, kind) pairs in order."""
    return [
        tuple(pair)
        for pair in driver.execute_script(
            "return [...document.querySelectorAll('#timeline [data-testid=\"timeline-entry\"]')]"
            ".map(e => [e.dataset.step, e.dataset.kind])"
        )
    ]


def texts(driver: WebDriver, css: str, attribute_name: str | None = None) -> list[str]:
    """The text (or an attribute) of every element matching `css`, read in one go."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => arguments[1] ? e.getAttribute(arguments[1]) : e.textContent)",
        css,
        attribute_name,
    )


def money(text: str) -> float:
    """'$1,234.50' -> 1234.5 (the first amount in the text)."""
    match = re.search(r"\$\s?([0-9][0-9,]*(?:\.[0-9]+)?)", text)
    assert match, f"no dollar amount in {text!r}"
    return float(match.group(1).replace(",", ""))


# ---------------------------------------------------------------------------------------------------------------
# The shop, as a person uses it


def open_shop(driver: WebDriver) -> None:
    driver.get(ORDER_URL + "/")
    wait_for(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, '#catalogue [data-testid^="product-"]')) >= 8,
        message="the catalogue never showed 8 pets",
    )


def product_card(driver: WebDriver, title: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="product-{title.lower()}"]')


def add_to_cart(driver: WebDriver, title: str) -> None:
    product_card(driver, title).find_element(*by_testid("add-to-cart")).click()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-testid="cart-line-{title.lower()}"]'))


def cart_line(driver: WebDriver, title: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="cart-line-{title.lower()}"]')


def go_to_checkout(driver: WebDriver) -> None:
    button = driver.find_element(By.ID, "checkout-button")
    assert button.is_enabled(), "checkout is disabled with pets in the cart"
    button.click()
    wait_visible(driver, "#view-checkout")


def type_into(driver: WebDriver, element_id: str, text: str) -> WebElement:
    field = driver.find_element(By.ID, element_id)
    field.clear()
    # clear() leaves the field's own input handlers out; select-all + delete goes through them.
    field.send_keys("\ue009a\ue000\ue017")  # Ctrl+A, release Ctrl, Delete
    field.send_keys(text)
    return field


def fill_card(driver: WebDriver, *, expiry: str = VALID_EXPIRY, name: str = "Kim Minji", number: str = CARD_NUMBER) -> None:
    type_into(driver, "cardholder", name)
    type_into(driver, "card-number", number)
    type_into(driver, "expiry", expiry.replace("/", ""))
    type_into(driver, "ccv", "123")


def confirm_payment(driver: WebDriver) -> str:
    """Clicks Confirm Payment; returns the order id once the progress view shows."""
    driver.find_element(By.ID, "confirm-payment").click()
    view = wait_visible(driver, "#view-order", timeout=20)
    order_id = view.get_attribute("data-order-id")
    assert order_id and re.fullmatch(r"[0-9a-f-]{36}", order_id), f"no order id on the progress view: {order_id!r}"
    return order_id


def wait_outcome(driver: WebDriver, timeout: float = SAGA_TIMEOUT) -> str:
    """Waits for the confirmation or the failure; returns "success" or "failed"."""

    def outcome(d: WebDriver) -> str | None:
        if visible(d, "#confirmation"):
            return "success"
        if visible(d, "#failure"):
            return "failed"
        return None

    return wait_for(driver, outcome, timeout, "the order never reached the confirmation or the failure page")


# ---------------------------------------------------------------------------------------------------------------
# The API, to check what the pages say


def catalogue() -> dict[str, dict[str, Any]]:
    return Catalogue.fetch(ORDER_URL).by_title


def get_order(order_id: str) -> dict[str, Any]:
    response = requests.get(f"{ORDER_URL}/orders/{order_id}", timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return response.json()


def wait_order_status(order_id: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        order = get_order(order_id)
        if order.get("orderStatus") in statuses:
            return order
        if time.monotonic() > deadline:
            raise AssertionError(f"order {order_id} is {order.get('orderStatus')!r}, expected one of {statuses}")
        time.sleep(0.25)


def place_order_api(lines: list[tuple[str, int]], *, expiry: str = VALID_EXPIRY, post_code: str = "2880") -> str:
    """Places an order through the REST API (for the monitor tests); returns its id."""
    shop = Catalogue.fetch(ORDER_URL)
    body = order_body([(shop.id(title), q) for title, q in lines], address="123 Some Street", city="Seoul",
                      post_code=post_code, card_number=CARD_NUMBER, holder="Kim Minji", expiry=expiry,
                      titles=shop.titles())
    return place_order(ORDER_URL, body, headers={"Idempotency-Key": str(uuid.uuid4())})["orderId"]


# ---------------------------------------------------------------------------------------------------------------
# The saga monitor (an operator page: it asks for the operator token once per tab)

OPERATOR_TOKEN = os.environ.get("PETS_OPERATOR_TOKEN", "")


def open_monitor(driver: WebDriver, path: str = "/monitor/", token: str | None = None) -> None:
    """Opens the saga monitor at `path` and, when it asks, signs in with the operator token."""
    driver.get(ORDER_URL + path)
    state = wait_for(
        driver,
        lambda d: ("form" if visible(d, '[data-testid="token-form"]') else None)
        or ("open" if d.find_elements(By.CSS_SELECTOR, '[data-testid="count-all"]') else None),
        message="the monitor neither asked for the operator token nor showed the sagas")
    if state == "form":
        type_into(driver, "operator-token", OPERATOR_TOKEN if token is None else token)
        driver.find_element(By.ID, "token-submit").click()
