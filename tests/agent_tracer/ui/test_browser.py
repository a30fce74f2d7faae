"""The UI in a real browser (Debian's chromium, headless, through Selenium): a person filters the
runs, opens one, reads its tool calls, rates it, and hostile trace contents stay text.

With AGENT_TRACER_SCREENSHOTS=1 the runs page and a run page are saved as docs/ui-runs.png and
docs/ui-run.png (the README shows them)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from agent_tracer.store import TraceStore

DOCS = Path(__file__).resolve().parents[3] / "docs"

pytestmark = pytest.mark.usefixtures("browser")


def shown_ids(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.get_attribute("data-id") for row in driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr")]


def navigate(driver, element) -> None:
    """Click a link or a submit button and wait for the next page: a click returns before the
    browser has left the page, so reading the page at once would read the old one."""
    wait_for_next_page(driver, element.click, timeout=30)  # a dataset build takes seconds


def wait_for_next_page(driver, act, timeout: float = 15) -> None:
    """Do `act` (a click, a key) and wait until the browser has left the page (within `timeout`
    seconds) and loaded the next."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    act()

    def left(_driver: object) -> bool:
        """The old page is gone: its element is stale. Mid-navigation, chromedriver may say so as
        "unhandled inspector error: Node with given id does not belong to the document" instead of
        a stale element reference (seen with Chrome 150), which Selenium's `staleness_of` raises."""
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in str(exc):
                return True
            raise
        return False

    WebDriverWait(driver, timeout).until(left)
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def assert_no_alert(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 (the property raises when no alert is open)


def test_filtering_by_outcome_and_name_finds_the_right_runs(browser, ui_server, store):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    driver.get(ui_server.url + "/")
    assert shown_ids(driver) == [trace.id for trace in store.traces()]
    form = driver.find_element(By.ID, "filters")
    form.find_element(By.NAME, "outcome").send_keys("failure")
    form.find_element(By.NAME, "name").send_keys("billing-*")
    Select(form.find_element(By.NAME, "tools")).select_by_value("no")
    navigate(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    query = parse_qs(urlparse(driver.current_url).query)
    assert query == {"name": ["billing-*"], "outcome": ["failure"], "tools": ["no"]}
    expected = store.traces(outcome="failure", name="billing-*", has_tool_calls=False)
    assert [trace.name for trace in expected] == ["billing-agent"]
    assert shown_ids(driver) == [trace.id for trace in expected]
    driver.get(driver.current_url)  # the link, shared: the same runs
    assert shown_ids(driver) == [trace.id for trace in expected]
    assert driver.find_element(By.NAME, "outcome").get_attribute("value") == "failure"
    if os.environ.get("AGENT_TRACER_SCREENSHOTS") == "1":
        driver.get(ui_server.url + "/")
        DOCS.mkdir(exist_ok=True)
        driver.save_screenshot(str(DOCS / "ui-runs.png"))


def test_searching_the_messages_finds_the_right_runs(browser, ui_server, store):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(ui_server.url + "/")
    form = driver.find_element(By.ID, "filters")
    form.find_element(By.NAME, "q").send_keys("shipped")  # in the lookup_order tool's results only
    form.find_element(By.NAME, "outcome").send_keys("success")
    navigate(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert parse_qs(urlparse(driver.current_url).query) == {"q": ["shipped"], "outcome": ["success"]}
    expected = store.traces(text="shipped", outcome="success")
    assert [trace.task for trace in expected] == ["Refund order C-99 please", "What is the status of order A-17?"]
    assert shown_ids(driver) == [trace.id for trace in expected]
    assert driver.find_element(By.NAME, "q").get_attribute("value") == "shipped"
    form = driver.find_element(By.ID, "filters")
    search = form.find_element(By.NAME, "q")
    search.clear()
    search.send_keys('charged "twice')  # a quote is a character, not syntax
    navigate(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert [trace.task for trace in store.traces(text='charged "twice')] == ["Why was I charged twice?"]
    assert shown_ids(driver) == []  # that run's outcome is failure, and the outcome filter stayed
    assert driver.find_element(By.ID, "message").text == "No runs match."


def test_keyset_pages_walk_all_runs_without_repeats(browser, ui_server, store):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(ui_server.url + "/?limit=3")
    seen: list[str] = []
    pages = 0
    while True:
        seen += shown_ids(driver)
        pages += 1
        links = driver.find_elements(By.ID, "next")
        if not links:
            break
        navigate(driver, links[0])
    assert pages == 4
    assert seen == [trace.id for trace in store.traces()]
    assert len(set(seen)) == len(seen) == 11


def test_a_bad_filter_shows_the_message(browser, ui_server):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(ui_server.url + "/")
    driver.find_element(By.NAME, "rating").send_keys("abc")
    navigate(driver, driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]"))
    assert driver.find_element(By.ID, "message").text == "rating must be a number, not 'abc'"
    assert driver.find_element(By.NAME, "rating").get_attribute("value") == "abc"


def test_a_run_page_shows_the_tool_calls_and_results(browser, ui_server, store):
    from selenium.webdriver.common.by import By

    trace = store.traces(name="orders-agent", outcome="success")[0]
    detail = store.get_trace(trace.id)
    call = next(c for c in detail.calls if c.has_tool_calls)
    tool_call = call.response["message"]["tool_calls"][0]
    driver = browser
    driver.get(ui_server.url + "/")
    navigate(driver, driver.find_element(By.CSS_SELECTOR, f'tr[data-id="{trace.id}"] a.run-link'))
    assert driver.current_url.endswith(f"/runs/{trace.id}")
    conversation = driver.find_element(By.ID, "conversation")
    roles = [element.text.split()[0] for element in conversation.find_elements(By.CSS_SELECTOR, ".message .role")]
    assert roles[:2] == ["SYSTEM", "USER"]  # shown uppercase by the stylesheet
    assert "What is the status of order A-17?" in conversation.text
    texts = [element.text for element in conversation.find_elements(By.CSS_SELECTOR, ".message")]
    assert sum("What is the status of order A-17?" in text for text in texts) == 1  # each message once
    names = [element.text for element in conversation.find_elements(By.CSS_SELECTOR, ".tool-name")]
    assert names == ["lookup_order"]
    arguments = conversation.find_element(By.CSS_SELECTOR, ".tool-call pre.arguments").text
    assert arguments.startswith("{\n") and '"order_id"' in arguments  # pretty-printed
    results = [e.text for e in conversation.find_elements(By.CSS_SELECTOR, ".role-tool")]
    assert any(tool_call["id"] in text and "shipped" in text for text in results)
    tools = conversation.find_elements(By.CSS_SELECTOR, ".node-tool")  # the @trace_tool execution
    assert tools and "lookup_order" in tools[0].text and '"shipped"' in tools[0].text
    bodies = conversation.find_element(By.CSS_SELECTOR, "details.bodies")
    assert not bodies.find_element(By.TAG_NAME, "pre").is_displayed()
    bodies.find_element(By.TAG_NAME, "summary").click()
    assert '"messages": [' in bodies.find_element(By.TAG_NAME, "pre").text
    assert "gpt-test" in conversation.text and "tokens" in conversation.text
    if os.environ.get("AGENT_TRACER_SCREENSHOTS") == "1":
        bodies.find_element(By.TAG_NAME, "summary").click()
        DOCS.mkdir(exist_ok=True)
        driver.set_window_size(1280, 1500)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(DOCS / "ui-run.png"))
        driver.set_window_size(1280, 900)


def test_rating_a_run_in_the_page_changes_the_store(browser, ui_server, captured_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with TraceStore(captured_url) as store:
        trace = store.traces(name="orders-agent", outcome="failure")[0]
    driver = browser
    driver.get(f"{ui_server.url}/runs/{trace.id}")
    form = driver.find_element(By.ID, "review-form")
    Select(form.find_element(By.NAME, "outcome")).select_by_value("success")
    Select(form.find_element(By.NAME, "rating")).select_by_value("4")
    form.find_element(By.NAME, "comment").send_keys("looked it up after all")
    navigate(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert urlparse(driver.current_url).path == f"/runs/{trace.id}"
    assert driver.find_element(By.ID, "fact-outcome").text == "success"
    assert "looked it up after all" in driver.find_element(By.ID, "feedback").text
    with TraceStore(captured_url) as store:
        detail = store.get_trace(trace.id)
    assert (detail.trace.outcome, detail.trace.rating, detail.trace.comment) == (
        "success",
        4.0,
        "looked it up after all",
    )
    assert detail.feedback[-1].source == "ui"


def test_hostile_contents_stay_inert_text(browser, ui_server, store):
    from selenium.webdriver.common.by import By

    trace = store.traces(name="xss-agent")[0]
    driver = browser
    driver.get(f"{ui_server.url}/runs/{trace.id}")
    assert_no_alert(driver)
    user = driver.find_element(By.CSS_SELECTOR, "#conversation .role-user pre.text").text
    assert "<script>alert(1)</script>" in user
    assert "<img src=x onerror=alert(1)>" in user
    assert '<a href="javascript:alert(1)">click me</a>' in user
    assert driver.find_elements(By.CSS_SELECTOR, "#conversation script, #conversation img, #conversation a") == []
    driver.find_element(By.CSS_SELECTOR, "details.bodies summary").click()
    assert_no_alert(driver)
    driver.get(ui_server.url + "/?name=<script>alert(1)</script>")
    assert_no_alert(driver)
    assert driver.find_element(By.NAME, "name").get_attribute("value") == "<script>alert(1)</script>"


def test_read_only_shows_the_run_and_no_form(browser, read_only_server, store):
    from selenium.webdriver.common.by import By

    trace = store.traces(name="orders-agent")[0]
    driver = browser
    driver.get(f"{read_only_server.url}/runs/{trace.id}")
    assert driver.find_element(By.ID, "conversation").text
    assert driver.find_elements(By.ID, "review-form") == []
    assert "read-only" in driver.find_element(By.TAG_NAME, "header").text
