"""Replay in a real browser: on a run page, a person picks the tuned endpoint, clicks Replay on a
model call and reads its answer and verdict beside the recorded one, swapped into the page
(static/replay.js); then replays the whole run. The plain form POST is test_replay.py's.

With AGENT_TRACER_SCREENSHOTS=1 the replayed run is saved as docs/ui-replay.png."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_tracer.testing import FakeUpstream, Reply

DOCS = Path(__file__).resolve().parents[3] / "docs"
SECRET = "sk-tuned-browser-0123456789"

pytestmark = pytest.mark.usefixtures("browser")


def replay_in_place(driver, button, shown: str) -> None:
    """Click a Replay button and wait until `shown` (a CSS selector) is on the page: replay.js
    swaps the answer into the page, which stays (the run's first heading is the same element)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    heading = driver.find_element(By.TAG_NAME, "h1")
    button.click()
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, shown))
    assert heading.is_displayed()  # not stale: no new page was loaded


def test_replaying_a_call_shows_the_tuned_answer_and_the_verdict(browser, start_ui, store):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    mode = {"tool": "lookup_order"}

    def tuned(body: dict) -> Reply:
        return Reply(calls=[(mode["tool"], {"order_id": "A-17"})], model="tuned-m")

    trace = next(trace for trace in store.traces(name="orders-agent") if store.get_trace(trace.id).calls)
    calls = store.get_trace(trace.id).calls
    with FakeUpstream(reply=tuned, models=["tuned-m"]) as upstream:
        spec = f"tuned={upstream.openai_base_url},model=tuned-m,key_env=TUNED_KEY"
        server = start_ui("--endpoint", spec, env={"TUNED_KEY": SECRET})
        driver = browser
        driver.get(f"{server.url}/runs/{trace.id}")
        first = driver.find_element(By.ID, f"replay-{calls[0].id}")
        Select(first.find_element(By.NAME, "endpoint")).select_by_value("endpoint:tuned")
        replay_in_place(
            driver, first.find_element(By.CSS_SELECTOR, "button[type=submit]"), f"#replay-{calls[0].id} .replay-result"
        )
        result = driver.find_element(By.CSS_SELECTOR, f"#replay-{calls[0].id} .replay-result")
        assert result.find_element(By.CLASS_NAME, "verdict").text == "kept"
        assert result.find_element(By.CLASS_NAME, "latency").text.endswith(("ms", "s"))
        replayed = result.find_element(By.CSS_SELECTOR, ".replayed .message")
        assert replayed.find_element(By.CLASS_NAME, "tool-name").text == "lookup_order"
        assert '"order_id": "A-17"' in replayed.find_element(By.CLASS_NAME, "arguments").text
        assert result.find_element(By.CSS_SELECTOR, ".recorded .message").text  # the recorded answer beside it
        assert SECRET not in driver.page_source

        mode["tool"] = "cancel_order"  # the tuned model now calls a tool the agent does not have
        replay_all = driver.find_element(By.CSS_SELECTOR, "#replay-all button[type=submit]")
        replay_in_place(driver, replay_all, "#replay-summary tr.refused")
        verdicts = driver.find_elements(By.CSS_SELECTOR, "#replay-summary tbody .verdict")
        assert [verdict.text for verdict in verdicts] == ["unknown_tool"] * len(calls)
        for call in calls:
            result = driver.find_element(By.CSS_SELECTOR, f"#replay-{call.id} .replay-result")
            assert result.find_element(By.CLASS_NAME, "verdict").text == "unknown_tool"
        if os.environ.get("AGENT_TRACER_SCREENSHOTS") == "1":
            DOCS.mkdir(exist_ok=True)
            driver.execute_script("document.getElementById(arguments[0]).scrollIntoView()", f"replay-{calls[0].id}")
            driver.save_screenshot(str(DOCS / "ui-replay.png"))
    assert [request["json"]["model"] for request in upstream.requests] == ["tuned-m"] * (1 + len(calls))
