"""Cost in a real browser: the runs list's cost column, and a bar of the overview's cost chart
that opens the runs list filtered to its bucket and model."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("browser")


def test_the_cost_column_shows_and_a_cost_bar_opens_its_runs(browser, cost_server):
    from selenium.webdriver.common.by import By
    from test_browser import navigate

    driver = browser
    driver.get(cost_server.url + "/")
    header = driver.find_element(By.CSS_SELECTOR, "#runs thead th.cost")
    assert header.text == "Cost" and header.is_displayed()
    cells = {
        row.find_element(By.CSS_SELECTOR, "td.name").text: row.find_element(By.CSS_SELECTOR, "td.cost")
        for row in driver.find_elements(By.CSS_SELECTOR, "#runs tbody tr")
    }
    assert cells["two-frontier"].text == "$0.015" and cells["small"].text == "$0.000036"
    assert cells["tuned-only"].text == "–"
    assert cells["tuned-only"].get_attribute("title").startswith("no price for model my-tuned: add it with --prices")

    navigate(driver, driver.find_element(By.LINK_TEXT, "Overview"))
    bars = driver.find_elements(By.CSS_SELECTOR, '#chart-cost a.bar-link rect[data-series="gpt-4o-2024-08-06"]')
    assert bars and bars[0].size["height"] > 10  # drawn, not only in the markup
    navigate(driver, bars[0])
    assert "model=gpt-4o-2024-08-06" in driver.current_url and "since=" in driver.current_url
    names = sorted(cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#runs tbody td.name"))
    assert names == ["mixed", "two-frontier"]
    assert driver.find_element(By.CSS_SELECTOR, 'input[name="model"]').get_attribute("value") == "gpt-4o-2024-08-06"
