"""Reviewing in a real browser: bulk rating from the list, and the review queue driven by the
keyboard. Each test writes to its own copy of the captured store (`writable_server`).

With AGENT_TRACER_SCREENSHOTS=1 the queue is saved as docs/ui-review.png (the README shows it)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from test_browser import wait_for_next_page

from agent_tracer.store import TraceStore

DOCS = Path(__file__).resolve().parents[3] / "docs"

pytestmark = pytest.mark.usefixtures("browser")


def press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(key).perform()


def shown_run(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "queue-run").get_attribute("data-id")


def progress(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "progress").text


def test_bulk_rating_two_selected_runs_changes_the_store(browser, writable_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, server = writable_server
    with TraceStore(url) as store:
        chosen = [trace.id for trace in store.traces(name="billing-agent", outcome="partial")[:2]]
        before = len(store.feedback())
    driver = browser
    driver.get(server.url + "/?name=billing-agent")
    for trace_id in chosen:
        driver.find_element(By.CSS_SELECTOR, f'tr[data-id="{trace_id}"] input[type=checkbox]').click()
    form = driver.find_element(By.ID, "bulk-form")
    Select(form.find_element(By.NAME, "outcome")).select_by_value("failure")
    Select(form.find_element(By.NAME, "rating")).select_by_value("2")
    form.find_element(By.NAME, "tags").send_keys("bulk-checked")
    wait_for_next_page(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]").click)
    assert urlparse(driver.current_url).query == "name=billing-agent&reviewed=2"
    assert driver.find_element(By.ID, "notice").text == "Rated 2 runs."
    assert driver.find_element(By.NAME, "name").get_attribute("value") == "billing-agent"  # the same filter
    with TraceStore(url) as store:
        for trace_id in chosen:
            detail = store.get_trace(trace_id)
            assert (detail.trace.outcome, detail.trace.rating) == ("failure", 2.0)
            assert "bulk-checked" in detail.trace.tags and detail.feedback[-1].source == "ui"
        assert {row.trace_id for row in store.feedback()[before:]} == set(chosen)  # and no other run
        assert [trace.id for trace in store.traces(tags=["bulk-checked"])] == chosen


def test_the_queue_rates_with_the_keyboard_and_moves_on(browser, writable_server):
    from selenium.webdriver.common.by import By

    url, server = writable_server
    with TraceStore(url) as store:
        unrated = [trace.id for trace in store.traces(rated=False)]
    assert len(unrated) == 2  # the xss run, then "Is order D-1 late?"
    driver = browser
    driver.get(server.url + "/")
    wait_for_next_page(driver, driver.find_element(By.ID, "review-these").click)
    assert shown_run(driver) == unrated[0] and progress(driver) == "1 of 2 unrated"
    press(driver, "?")
    assert driver.find_element(By.ID, "shortcuts").is_displayed()
    press(driver, "?")
    assert not driver.find_element(By.ID, "shortcuts").is_displayed()
    wait_for_next_page(driver, lambda: press(driver, "4"))
    assert shown_run(driver) == unrated[1] and progress(driver) == "2 of 2 unrated"
    wait_for_next_page(driver, lambda: press(driver, "s"))
    assert "still unrated" in driver.find_element(By.ID, "message").text  # D-1 has an outcome, no rating
    with TraceStore(url) as store:
        first, second = store.get_trace(unrated[0]), store.get_trace(unrated[1])
    assert (first.trace.rating, first.feedback[-1].source) == (4.0, "ui")
    assert (second.trace.outcome, second.trace.rating, second.feedback[-1].source) == ("success", None, "ui")


def test_queue_keys_walk_and_stay_quiet_while_typing(browser, writable_server):
    from selenium.webdriver.common.by import By

    url, server = writable_server
    with TraceStore(url) as store:
        unrated = [trace.id for trace in store.traces(rated=False)]
        before = len(store.feedback())
    driver = browser
    driver.get(server.url + "/review")
    comment = driver.find_element(By.NAME, "comment")
    comment.send_keys("5 stars? no: j k s f")
    assert driver.find_element(By.NAME, "comment").get_attribute("value") == "5 stars? no: j k s f"
    assert shown_run(driver) == unrated[0] and not driver.find_element(By.ID, "shortcuts").is_displayed()
    driver.find_element(By.TAG_NAME, "h1").click()  # leave the comment box
    wait_for_next_page(driver, lambda: press(driver, "j"))
    assert shown_run(driver) == unrated[1] and progress(driver) == "2 of 2 unrated"
    if os.environ.get("AGENT_TRACER_SCREENSHOTS") == "1":  # the orders run, with the shortcuts shown
        press(driver, "?")
        DOCS.mkdir(exist_ok=True)
        driver.save_screenshot(str(DOCS / "ui-review.png"))
        press(driver, "?")
    wait_for_next_page(driver, lambda: press(driver, "k"))
    assert shown_run(driver) == unrated[0] and progress(driver) == "1 of 2 unrated"
    wait_for_next_page(driver, lambda: press(driver, "n"))
    wait_for_next_page(driver, lambda: press(driver, "p"))
    assert shown_run(driver) == unrated[0]
    with TraceStore(url) as store:
        assert [trace.id for trace in store.traces(rated=False)] == unrated
        assert len(store.feedback()) == before
    # without JavaScript's keys, the buttons are plain form buttons
    wait_for_next_page(driver, driver.find_element(By.CSS_SELECTOR, '#queue-form button[value="failure"]').click)
    with TraceStore(url) as store:
        assert store.get_trace(unrated[0]).trace.outcome == "failure"
