"""The web shop and the saga monitor in a real headless Chromium, against the running services.

Screenshots go to $PETS_SCREENSHOTS (see conftest.py): 01-shop, 02-checkout, 03-progress, 04-confirmation,
05-failure, 06-monitor, 07-monitor-failed-saga, 08-phone-shop, 09-phone-checkout, 10-phone-monitor.
"""

from __future__ import annotations

import time

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser_helpers import (
    EXPIRED,
    OPERATOR_TOKEN,
    ORDER_URL,
    PHONE,
    add_to_cart,
    attribute,
    cart_line,
    click,
    texts,
    timeline,
    catalogue,
    confirm_payment,
    fill_card,
    go_to_checkout,
    money,
    open_monitor,
    open_shop,
    place_order_api,
    product_card,
    type_into,
    visible,
    wait_for,
    wait_order_status,
    wait_outcome,
    wait_visible,
)

FORWARD_STEPS = ["reserveInventory", "calculateShipping", "processPayment", "completeOrder"]


def step_state(driver, step: str) -> str | None:
    items = driver.find_elements(By.CSS_SELECTOR, f'[data-testid="progress-{step}"]')
    return items[0].get_attribute("data-state") if items else None


def press(driver, title: str, button: str) -> None:
    """Clicks plus, minus or remove on a cart line (found anew: the cart is redrawn after each change)."""
    cart_line(driver, title).find_element(By.CSS_SELECTOR, f'[data-testid="{button}"]').click()


def quantity(driver, title: str) -> str:
    return cart_line(driver, title).find_element(By.CSS_SELECTOR, '[data-testid="qty"]').text


def confirmation_amount(driver) -> float:
    text = driver.find_element(By.ID, "confirmation-message").text
    assert text.startswith("You have paid an amount of $"), text
    return money(text)


def test_buy_two_pets_reaches_the_confirmation(browser, shot):
    open_shop(browser)
    # Every pet has its picture (drawn by the project), a title, a price and a stock level.
    products = catalogue()
    for title, product in products.items():
        card = product_card(browser, title)
        image = card.find_element(By.TAG_NAME, "img")
        assert image.get_attribute("src").endswith(product["imageUrl"])
        wait_for(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image),
                 message=f"the picture of the {title} did not load")
        assert card.find_element(By.CSS_SELECTOR, "h3").text == title
        assert money(card.find_element(By.CSS_SELECTOR, '[data-testid="price"]').text) == product["unitPrice"]
        assert "in stock" in card.find_element(By.CSS_SELECTOR, '[data-testid="stock"]').text
    # An empty cart cannot check out.
    assert not browser.find_element(By.ID, "checkout-button").is_enabled()
    assert browser.find_element(By.ID, "cart-empty").is_displayed()

    # The cart: add, plus, minus, remove, total.
    add_to_cart(browser, "Cat")
    add_to_cart(browser, "Fish")
    add_to_cart(browser, "Bird")
    press(browser, "Fish", "plus")
    press(browser, "Fish", "plus")
    wait_for(browser, lambda d: quantity(d, "Fish") == "3")
    press(browser, "Fish", "minus")
    wait_for(browser, lambda d: quantity(d, "Fish") == "2")
    press(browser, "Bird", "remove")
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="cart-line-bird"]'))
    items = products["Cat"]["unitPrice"] + 2 * products["Fish"]["unitPrice"]
    assert money(browser.find_element(By.ID, "cart-total").text) == items
    assert browser.find_element(By.ID, "cart-count").text == "3"
    shot("01-shop")

    # Checkout: the invoice, the seed's default address, shipping from the post code.
    go_to_checkout(browser)
    assert browser.find_element(By.ID, "address").get_attribute("value") == "123 Some Street"
    assert browser.find_element(By.ID, "city").get_attribute("value") == "Seoul"
    assert browser.find_element(By.ID, "post-code").get_attribute("value") == "2880"
    invoice_lines = browser.find_elements(By.CSS_SELECTOR, "#invoice-lines tr")
    assert len(invoice_lines) == 2
    assert money(browser.find_element(By.ID, "invoice-items").text) == items
    assert money(browser.find_element(By.ID, "invoice-shipping").text) == 2.0  # 0 / 2 + 2
    type_into(browser, "post-code", "2887")
    wait_for(browser, lambda d: money(d.find_element(By.ID, "invoice-shipping").text) == 5.5)  # 7 / 2 + 2
    expected = items + 5.5
    assert money(browser.find_element(By.ID, "invoice-total").text) == expected

    # Card details: the number in groups of four, the expiry as MM/YY.
    fill_card(browser)
    assert browser.find_element(By.ID, "card-number").get_attribute("value") == "4111 1111 1111 1111"
    assert browser.find_element(By.ID, "expiry").get_attribute("value") == "12/30"
    assert browser.find_element(By.ID, "ccv").get_attribute("value") == "123"
    shot("02-checkout")

    order_id = confirm_payment(browser)
    wait_for(browser, lambda d: step_state(d, "reserveInventory") in ("active", "done"))
    shot("03-progress")

    assert wait_outcome(browser) == "success"
    assert confirmation_amount(browser) == expected
    assert browser.find_element(By.ID, "confirmation-reference").text == order_id
    for step in FORWARD_STEPS:
        assert step_state(browser, step) == "done", step
    shot("04-confirmation")

    # What the page says is what the system did.
    order = wait_order_status(order_id, {"completed"})
    assert order["paymentAmount"] == expected
    assert order["shippingCost"] == 5.5
    # The cart is empty again.
    assert browser.find_element(By.ID, "cart-count").text == "0"


def test_checkout_validation_messages(browser):
    open_shop(browser)
    add_to_cart(browser, "Hamster")
    go_to_checkout(browser)
    type_into(browser, "post-code", "Seoul")
    type_into(browser, "cardholder", "")
    type_into(browser, "card-number", "1234 5678")
    type_into(browser, "expiry", "1330")
    type_into(browser, "ccv", "12")
    assert browser.find_element(By.ID, "expiry").get_attribute("value") == "13/30"
    assert browser.find_element(By.ID, "invoice-shipping").text == "—"  # no shipping without a usable post code
    browser.find_element(By.ID, "confirm-payment").click()

    def error(field: str) -> str:
        return browser.find_element(By.ID, f"{field}-error").text

    wait_for(browser, lambda d: error("card-number"))
    assert "must end with a digit" in error("post-code")
    assert "name" in error("cardholder")
    assert "12 to 19 digits" in error("card-number")
    assert "month" in error("expiry")
    assert "3 digits" in error("ccv")
    assert browser.find_element(By.ID, "form-error").is_displayed()
    assert browser.find_element(By.ID, "card-number").get_attribute("aria-invalid") == "true"
    # Nothing was placed: still on the checkout.
    assert browser.find_element(By.ID, "view-checkout").is_displayed()
    assert not browser.find_element(By.ID, "view-order").is_displayed()

    # Fixing a field clears its message.
    type_into(browser, "ccv", "123")
    wait_for(browser, lambda d: error("ccv") == "")

    # A refusal from the server (400 {"status":"failed","message"}) is shown as it is. The form above cannot
    # send a body the service refuses, so this answer is staged in the page's fetch.
    type_into(browser, "post-code", "2880")
    type_into(browser, "cardholder", "Kim Minji")
    type_into(browser, "card-number", "4111111111111111")
    type_into(browser, "expiry", "1230")
    browser.execute_script("""
        const real = window.fetch;
        window.fetch = (url, options) => (options?.method === 'POST' && String(url).endsWith('/orders'))
            ? Promise.resolve(new Response(JSON.stringify({status: 'failed', message: 'Incomplete credit card details.'}),
                                           {status: 400, headers: {'Content-Type': 'application/json'}}))
            : real(url, options);
    """)
    browser.find_element(By.ID, "confirm-payment").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "form-error").text == "Incomplete credit card details.")
    assert browser.find_element(By.ID, "view-checkout").is_displayed()
    assert browser.find_element(By.ID, "confirm-payment").is_enabled()


def test_expired_card_fails_and_restores_the_stock(browser, shot):
    before = catalogue()
    open_shop(browser)
    add_to_cart(browser, "Dog")
    add_to_cart(browser, "Rabbit")
    go_to_checkout(browser)
    fill_card(browser, expiry=EXPIRED)
    order_id = confirm_payment(browser)

    assert wait_outcome(browser) == "failed"
    assert browser.find_element(By.ID, "failure-message").text == "Error, invalid credit card"
    assert step_state(browser, "processPayment") == "failed"
    assert step_state(browser, "compensated-reserveInventory") == "undone"  # the reservation was released
    assert step_state(browser, "completeOrder") == "skipped"
    assert browser.find_element(By.ID, "try-again").is_displayed()
    shot("05-failure")

    order = wait_order_status(order_id, {"cancelled"})
    assert order["errorMessage"] == "Error, invalid credit card"

    # The stock of both pets is back where it was, in the API and then on the shop's page.
    deadline = time.monotonic() + 20
    while True:
        now = catalogue()
        if all(now[t]["stock"] == before[t]["stock"] for t in ("Dog", "Rabbit")):
            break
        assert time.monotonic() < deadline, f"stock not restored: before {before}, now {now}"
        time.sleep(0.5)
    browser.find_element(By.ID, "back-to-shop").click()
    wait_visible(browser, "#view-shop")
    for title in ("Dog", "Rabbit"):
        wait_for(
            browser,
            lambda d: product_card(d, title).find_element(By.CSS_SELECTOR, '[data-testid="stock"]').get_attribute("data-stock")
            == str(before[title]["stock"]),
            message=f"the shop does not show the {title}'s stock back at {before[title]['stock']}",
        )


def test_reload_mid_order_still_reaches_the_confirmation(browser):
    open_shop(browser)
    add_to_cart(browser, "Bird")
    add_to_cart(browser, "Chicken")
    go_to_checkout(browser)
    fill_card(browser)
    order_id = confirm_payment(browser)
    # As soon as the progress shows: reload.
    browser.refresh()
    view = wait_visible(browser, "#view-order")
    assert view.get_attribute("data-order-id") == order_id
    assert browser.find_element(By.ID, "order-id").text == order_id
    assert wait_outcome(browser) == "success"
    assert confirmation_amount(browser) == 30 + 20 + 2
    for step in FORWARD_STEPS:
        assert step_state(browser, step) == "done", step  # the whole progress rebuilt from the replay


def test_lost_connection_resumes_the_same_order(browser):
    open_shop(browser)
    add_to_cart(browser, "Rabbit")
    go_to_checkout(browser)
    fill_card(browser)
    order_id = confirm_payment(browser)
    # Drop the WebSocket as soon as it is open; the page reconnects and the replay fills in what was missed.
    wait_for(browser, lambda d: d.execute_script("return window.awsomepets.state.follower?.ws?.readyState === 1")
             or visible(d, "#confirmation"), timeout=10)
    browser.execute_script("window.awsomepets.dropConnection()")
    assert wait_outcome(browser) == "success"
    assert browser.find_element(By.ID, "confirmation-reference").text == order_id
    assert confirmation_amount(browser) == 50 + 2


def test_monitor_finds_the_orders_saga_and_its_timeline(browser, shot):
    order_id = place_order_api([("Chicken", 1), ("Fish", 1)])
    wait_order_status(order_id, {"completed"})
    open_monitor(browser, "/monitor")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="count-completed"]'),
             message="the counts per state never showed")
    assert int(attribute(browser, '[data-testid="count-completed"]', "data-count")) >= 1

    search = browser.find_element(By.ID, "filter-order")
    search.send_keys(order_id, Keys.ENTER)
    row = f'tr[data-order-id="{order_id}"]'
    assert attribute(browser, row, "data-status") == "completed"
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#saga-rows tr")) == 1,
             message="the search by order id did not narrow the list to one saga")
    click(browser, f'{row} [data-testid="open-saga"]')
    detail = wait_visible(browser, "#detail")
    wait_for(browser, lambda d: d.find_element(By.ID, "detail").get_attribute("data-order-id") == order_id)
    assert detail.get_attribute("data-status") == "completed"
    entries = timeline(browser)
    steps = [step for step, _ in entries]
    kinds = set(entries)
    for step in FORWARD_STEPS:
        assert (step, "succeeded") in kinds, f"{step} succeeded is missing from the timeline {steps}"
    for step in ("reserveInventory", "processPayment", "completeOrder"):
        assert (step, "sent") in kinds, f"the {step} command is missing from the timeline"
    assert steps.index("reserveInventory") < steps.index("processPayment") < steps.index("completeOrder")
    assert browser.find_elements(By.CSS_SELECTOR, "#gantt .lane .bar"), "no timeline bars drawn"
    assert "$32.00" in texts(browser, '[data-testid="detail-amount"]')[0]  # 20 + 10 + 2
    shot("06-monitor")

    # Live: with the filters cleared, a new saga shows up without reloading the page.
    browser.find_element(By.ID, "clear-filters").click()
    newer = place_order_api([("Hamster", 1)])
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-order-id="{newer}"]'), timeout=20,
             message="a new saga did not appear in the list without a reload")
    wait_order_status(newer, {"completed"})
    wait_for(browser, lambda d: attribute(d, f'tr[data-order-id="{newer}"]', "data-status") == "completed",
             timeout=20, message="the new saga's row never turned completed")


def test_monitor_asks_for_the_operator_token_once_and_refuses_a_wrong_one(browser):
    browser.get(ORDER_URL + "/monitor/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(ORDER_URL + "/monitor/")
    wait_visible(browser, '[data-testid="token-form"]')
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="count-all"]'), "sagas shown without a token"
    type_into(browser, "operator-token", "not-the-operator-token")
    browser.find_element(By.ID, "token-submit").click()
    assert "refused" in wait_visible(browser, '[data-testid="token-error"]').text
    type_into(browser, "operator-token", OPERATOR_TOKEN)
    browser.find_element(By.ID, "token-submit").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="count-all"]'),
             message="the right token did not open the monitor")
    # Kept for the tab: a reload does not ask again.
    browser.refresh()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="count-all"]'),
             message="after a reload the monitor did not open with the kept token")
    assert not visible(browser, '[data-testid="token-form"]')


def test_monitor_shows_a_failed_sagas_compensation(browser, shot):
    order_id = place_order_api([("Cat", 1)], expiry=EXPIRED)
    wait_order_status(order_id, {"cancelled"})
    open_monitor(browser, f"/monitor/#saga={order_id}")
    wait_for(browser, lambda d: d.find_element(By.ID, "detail").get_attribute("data-order-id") == order_id)
    assert browser.find_element(By.ID, "detail").get_attribute("data-status") == "cancelled"
    assert "Error, invalid credit card" in browser.find_element(By.ID, "detail-failure").text
    kinds = set(timeline(browser))
    assert ("processPayment", "failed") in kinds
    assert ("releaseInventory", "compensated") in kinds
    assert ("cancelOrder", "succeeded") in kinds
    assert not browser.find_element(By.ID, "retry-box").is_displayed()  # only a parked saga can be retried
    # Filtering by state lists it among the cancelled ones.
    click(browser, '[data-testid="count-cancelled"]')
    wait_for(browser, lambda d: set(texts(d, "#saga-rows tr", "data-status")) == {"cancelled"}
             and d.find_elements(By.CSS_SELECTOR, f'tr[data-order-id="{order_id}"]'),
             message="filtering by the cancelled state did not list only cancelled sagas, this one among them")
    assert attribute(browser, '[data-testid="count-cancelled"]', "aria-pressed") == "true"
    shot("07-monitor-failed-saga")


def test_phone_sized_screen(browser, shot):
    browser.set_window_size(*PHONE)
    open_shop(browser)

    def no_sideways_scroll(d) -> bool:
        return d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")

    assert no_sideways_scroll(browser), "the shop scrolls sideways on a phone"
    add_to_cart(browser, "Pony")
    # On a phone the cart is below the pets; a bar at the bottom keeps the total and the checkout in reach.
    bar = wait_visible(browser, "#cart-bar")
    assert "$3,000.00" in bar.text
    shot("08-phone-shop", full=False)
    bar.find_element(By.ID, "cart-bar-checkout").click()
    wait_visible(browser, "#view-checkout")
    assert no_sideways_scroll(browser), "the checkout scrolls sideways on a phone"
    # Fields are at least as wide as half the screen, and the button is big enough to tap.
    width = browser.execute_script("return window.innerWidth")
    assert browser.find_element(By.ID, "address").size["width"] > width / 2
    assert browser.find_element(By.ID, "confirm-payment").size["height"] >= 44
    shot("09-phone-checkout", full=False)
    open_monitor(browser)
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="count-all"]'))
    assert no_sideways_scroll(browser), "the monitor scrolls sideways on a phone"
    shot("10-phone-monitor", full=False)


def test_order_page_in_another_browser_reads_the_order(browser):
    # Without the WebSocket token (another browser, or the monitor's "open in the shop" link) the page reads the
    # order's recorded history over HTTP instead.
    order_id = place_order_api([("Fish", 3)], post_code="1235")
    wait_order_status(order_id, {"completed"})
    browser.get(f"{ORDER_URL}/#/order/{order_id}")
    assert wait_outcome(browser) == "success"
    assert confirmation_amount(browser) == 3 * 10 + 4.5  # shipping 5 / 2 + 2
    for step in FORWARD_STEPS:
        assert step_state(browser, step) == "done", step
