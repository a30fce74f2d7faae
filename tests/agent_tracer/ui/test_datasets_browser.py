"""The datasets page in a real browser: from a filtered runs list to a built dataset, its steps,
its command and its files.

With AGENT_TRACER_SCREENSHOTS=1 the build's page is saved as docs/ui-dataset.png (the README shows it)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from test_browser import navigate

from agent_tracer.store import TraceStore

DOCS = Path(__file__).resolve().parents[3] / "docs"

pytestmark = pytest.mark.usefixtures("browser")


def test_a_dataset_built_from_the_filtered_runs(browser, datasets_server, captured_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    folder, server = datasets_server
    driver = browser
    driver.get(server.url + "/?outcome=success")
    navigate(driver, driver.find_element(By.ID, "dataset-these"))
    assert urlparse(driver.current_url).path == "/datasets"
    assert parse_qs(urlparse(driver.current_url).query) == {"outcome": ["success"]}
    assert "--outcome=success" in driver.find_element(By.ID, "command").text
    form = driver.find_element(By.ID, "dataset-form")
    Select(form.find_element(By.NAME, "kind")).select_by_value("sft")
    Select(form.find_element(By.NAME, "per")).select_by_value("call")
    navigate(driver, driver.find_element(By.ID, "build"))

    assert urlparse(driver.current_url).path.startswith("/datasets/")
    build_id = urlparse(driver.current_url).path.rsplit("/", 1)[1]
    steps = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in driver.find_elements(By.CSS_SELECTOR, "#steps tbody tr")
    ]
    assert [step[0] for step in steps][:2] == ["select", "convert"]
    with TraceStore(captured_url) as store:  # other tests' reviews may have made more successes
        successes = str(store.count_traces(outcome="success"))
    assert steps[0][1:3] == [successes, successes]
    command = driver.find_element(By.ID, "command").text
    assert command.startswith("agent-tracer dataset sft ") and "--outcome=success --" in command
    assert "--per=call" in command and f"--out={folder / build_id / 'sft.jsonl'}" in command
    link = driver.find_element(By.CSS_SELECTOR, '#files tr[data-label="train"] a')
    assert link.text == "sft.jsonl"
    response = httpx.get(link.get_attribute("href"))
    assert response.status_code == 200
    assert response.content == (folder / build_id / "sft.jsonl").read_bytes()
    assert response.content.count(b"\n") == int(driver.find_element(By.ID, "splits").text.split()[1].rstrip(","))
    if os.environ.get("AGENT_TRACER_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        driver.set_window_size(1280, 1100)
        driver.save_screenshot(str(DOCS / "ui-dataset.png"))
        driver.set_window_size(1280, 900)

    driver.get(server.url + "/datasets")
    listed = driver.find_elements(By.CSS_SELECTOR, "#builds tbody tr a")
    assert [element.text for element in listed] == [build_id]
