"""The overview and an evaluation case in a real browser: the charts are drawn (bars with their
tooltips, no script), and two endpoints' answers to one case stand side by side, hostile text inert.

With AGENT_TRACER_SCREENSHOTS=1 the overview is saved as docs/ui-overview.png (the README shows it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_tracer.store import TraceStore

DOCS = Path(__file__).resolve().parents[3] / "docs"

pytestmark = pytest.mark.usefixtures("browser")


def test_overview_charts_and_a_case_side_by_side(browser, evals_server, store: TraceStore):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from test_browser import navigate

    driver = browser
    driver.get(evals_server.url + "/")
    navigate(driver, driver.find_element(By.LINK_TEXT, "Overview"))
    assert driver.current_url.endswith("/overview")
    bars = driver.find_elements(By.CSS_SELECTOR, "#chart-calls rect")
    assert bars and sum(int(bar.get_attribute("data-value")) for bar in bars) == store.stats()["llm_calls"]
    assert bars[0].size["height"] > 10 and bars[0].size["width"] > 5  # drawn, not only in the markup
    tooltip = bars[0].find_element(By.TAG_NAME, "title").get_attribute("textContent")
    assert tooltip.endswith(f": {bars[0].get_attribute('data-value')}")
    if os.environ.get("AGENT_TRACER_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        driver.save_screenshot(str(DOCS / "ui-overview.png"))

    navigate(driver, driver.find_element(By.LINK_TEXT, "Evaluations"))
    navigate(driver, driver.find_element(By.LINK_TEXT, "first"))
    navigate(driver, driver.find_element(By.LINK_TEXT, "o2"))
    tuned, base = driver.find_elements(By.CSS_SELECTOR, "#answers section.answer")
    assert (tuned.get_attribute("data-endpoint"), base.get_attribute("data-endpoint")) == ("tuned", "base")
    assert tuned.location["y"] == base.location["y"] and tuned.location["x"] < base.location["x"]  # side by side
    assert '"WRONG"' in tuned.find_element(By.TAG_NAME, "pre").text
    assert "<script>alert(1)</script>" in base.find_element(By.CSS_SELECTOR, "pre.content").text
    assert driver.find_elements(By.CSS_SELECTOR, "#answers script, #answers img") == []
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 (the property raises when no alert is open)
