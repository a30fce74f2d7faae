"""Failures to pairs: a failed run corrected on its page (typed, or the answer of a successful run
of the same task) and `agent-tracer dataset dpo` making the pair, as a user would: the runs go
through the OpenAI SDK to the loopback fake API, recorded by `@trace_agent` into SQLite; the page
is driven in Chromium (the `browser` cases) or through HTTP; the dataset is built by the CLI.

With AGENT_TRACER_SCREENSHOTS=1 the section is saved as docs/ui-pair.png (the README shows it)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from test_browser import navigate

import agent_tracer
from agent_tracer.cli import main
from agent_tracer.store import TraceStore
from agent_tracer.testing import FakeUpstream
from agent_tracer.ui import create_app

DOCS = Path(__file__).resolve().parents[3] / "docs"
QUESTION = "What is the status of order B-42?"
SYSTEM = {"role": "system", "content": "You answer questions about orders."}
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


@agent_tracer.trace_tool(name="lookup_order")
def lookup_order(order_id: str) -> dict:
    return {"order_id": order_id, "status": "shipped"}


@agent_tracer.trace_agent(name="orders-agent")
def orders_agent(client: openai.OpenAI, question: str, scenario: str, outcome: str | None) -> None:
    """Ask, look orders up while the model calls the tool, then record the outcome."""
    messages = [SYSTEM, {"role": "user", "content": question}]
    for _ in range(4):
        reply = (
            client.chat.completions.create(
                model="gpt-test", messages=messages, tools=[LOOKUP], extra_headers={"x-fake-scenario": scenario}
            )
            .choices[0]
            .message
        )
        if not reply.tool_calls:
            break
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls:
            result = lookup_order(**json.loads(call.function.arguments or "{}"))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
        scenario = "auto"
    if outcome:
        agent_tracer.record_outcome(outcome=outcome)


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, str]:
    """A store of four captured runs: `failed` (answered in prose, rated a failure), `success` (the
    same question, looked the order up: a success), `other` (another question, a success) and
    `unrated` (the same question, no outcome). Returns their trace ids and the store's `url`."""
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    plan = [
        ("failed", QUESTION, "text", "failure"),
        ("success", QUESTION, "auto", "success"),
        ("other", "Where is order Z-9?", "auto", "success"),
        ("unrated", QUESTION, "auto", None),
    ]
    with FakeUpstream() as upstream:
        agent_tracer.init(db=url, spill_path=str(tmp_path / "spill.jsonl"), writer="thread", flush_interval_s=0.02)
        try:
            client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
            for _, question, scenario, outcome in plan:
                orders_agent(client, question, scenario, outcome)
                time.sleep(0.002)
            assert agent_tracer.flush()
        finally:
            agent_tracer.uninstrument()
    with TraceStore(url) as store:
        ids = [trace.id for trace in store.traces(order="oldest")]
    return {"url": url, **{name: trace_id for (name, *_), trace_id in zip(plan, ids)}}


def dpo(url: str, out: Path, *extra: str) -> tuple[list[dict], dict]:
    """`agent-tracer dataset dpo` as a user runs it: (the train file's rows, the JSON summary)."""
    result = CliRunner().invoke(
        main,
        ["dataset", "dpo", "--db", url, "--out", str(out), "--no-progress", "--eval-ratio", "0", "--json", *extra],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()], json.loads(result.output)


def step(summary: dict, name: str) -> dict:
    return next(item for item in summary["steps"] if item["step"] == name)


def corrections(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["source"] == "corrections"]


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


# -- in a real browser


def test_a_failed_run_corrected_in_the_page_becomes_a_dpo_pair(browser, start_ui, runs, tmp_path):
    from selenium.webdriver.common.by import By

    server = start_ui(db=runs["url"])
    try:
        driver = browser
        driver.get(f"{server.url}/runs/{runs['failed']}")
        form = driver.find_element(By.ID, "pair-form")
        content = form.find_element(By.NAME, "content")
        assert content.get_attribute("value") == f"Echo: {QUESTION}"  # filled with what the run answered
        assert form.find_element(By.NAME, "tool_calls").get_attribute("value") == ""
        content.clear()
        content.send_keys("Order B-42 shipped on Monday.")
        calls = form.find_element(By.NAME, "tool_calls")
        calls.send_keys('[{"name": "lookup_order", "arguments": {"order_id": "B-42"}')  # its end left off
        navigate(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        assert driver.find_element(By.ID, "message").text.startswith("Not saved: tool calls are not JSON")
        form = driver.find_element(By.ID, "pair-form")  # kept as typed
        assert form.find_element(By.NAME, "content").get_attribute("value") == "Order B-42 shipped on Monday."
        calls = form.find_element(By.NAME, "tool_calls")
        assert calls.get_attribute("value") == '[{"name": "lookup_order", "arguments": {"order_id": "B-42"}'
        calls.send_keys("}]")
        navigate(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        assert not driver.find_elements(By.ID, "message"), driver.find_element(By.ID, "message").text
        assert driver.current_url.endswith(f"/runs/{runs['failed']}#feedback")
        shown = driver.find_elements(By.CSS_SELECTOR, "#feedback td.correction")[-1].text  # after the outcome's row
        assert "Order B-42 shipped on Monday." in shown and 'lookup_order({"order_id": "B-42"})' in shown
    finally:
        server.stop()

    rows, summary = dpo(runs["url"], tmp_path / "dpo.jsonl")
    [pair] = corrections(rows)
    assert pair["prompt"] == [SYSTEM, {"role": "user", "content": QUESTION}]
    assert pair["rejected"] == [{"role": "assistant", "content": f"Echo: {QUESTION}"}]
    assert pair["chosen"] == [
        {
            "role": "assistant",
            "content": "Order B-42 shipped on Monday.",
            "tool_calls": [
                {"type": "function", "function": {"name": "lookup_order", "arguments": {"order_id": "B-42"}}}
            ],
        }
    ]
    assert step(summary, "pairs from corrections") == {
        "step": "pairs from corrections",
        "in": 1,
        "out": 1,
        "reasons": {},
    }
    assert summary["sources"]["corrections"] == 1


def test_the_answer_of_a_successful_run_of_the_same_task_becomes_the_chosen_one(browser, start_ui, runs, tmp_path):
    from selenium.webdriver.common.by import By

    server = start_ui(db=runs["url"])
    try:
        driver = browser
        driver.get(f"{server.url}/runs/{runs['failed']}")
        navigate(driver, driver.find_element(By.ID, "find-same-task"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#same-task tbody tr")
        assert [row.get_attribute("data-id") for row in rows] == [runs["success"]]  # not the other task, not unrated
        assert "lookup_order" in rows[0].text  # its answer at this point: the lookup
        if os.environ.get("AGENT_TRACER_SCREENSHOTS") == "1":
            driver.execute_script("document.getElementById('pair').scrollIntoView()")
            DOCS.mkdir(exist_ok=True)
            driver.save_screenshot(str(DOCS / "ui-pair.png"))
        navigate(driver, rows[0].find_element(By.CSS_SELECTOR, "button.use-answer"))
        assert driver.current_url.endswith(f"/runs/{runs['failed']}#feedback")
        assert f"answer of run {runs['success']}" in driver.find_element(By.ID, "feedback").text
    finally:
        server.stop()

    with TraceStore(runs["url"]) as store:
        looked_up = store.get_trace(runs["success"]).calls[0].response["message"]["tool_calls"][0]
    rows, summary = dpo(runs["url"], tmp_path / "dpo.jsonl")
    [pair] = corrections(rows)
    assert pair["prompt"] == [SYSTEM, {"role": "user", "content": QUESTION}]
    assert pair["rejected"] == [{"role": "assistant", "content": f"Echo: {QUESTION}"}]
    [call] = pair["chosen"][0]["tool_calls"]
    assert call["function"] == {"name": "lookup_order", "arguments": json.loads(looked_up["function"]["arguments"])}
    assert call["id"] == looked_up["id"]
    # The pairing of runs makes the same pair from the same two runs: kept once, as a correction.
    assert step(summary, "curate")["reasons"].get("exact duplicate", 0) >= 1
    assert not [row for row in rows if row["source"] == "traces" and row["rejected"] == pair["rejected"]]


# -- through HTTP


def test_edit_it_first_fills_the_form_with_the_other_runs_answer(runs):
    with TestClient(create_app(runs["url"])) as client:
        page = client.get(f"/runs/{runs['failed']}").text
        assert 'id="same-task"' not in page and 'id="find-same-task"' in page  # the search waits to be asked
        page = client.get(f"/runs/{runs['failed']}?same_task=1&use={runs['success']}").text
        tool_calls = re.search(r'<textarea name="tool_calls"[^>]*>([^<]*)</textarea>', page).group(1)
        assert json.loads(tool_calls.replace("&#34;", '"'))[0]["name"] == "lookup_order"
        assert f'value="answer of run {runs["success"]}"' in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"content": "", "tool_calls": ""}, "a correction needs the answer&#39;s text or tool calls"),
        ({"content": "x", "tool_calls": '{"name": "a"}'}, "tool_calls must be a list, not dict"),
        ({"content": "x", "tool_calls": '[{"arguments": {}}]'}, "tool call 1 needs a tool name"),
        ({"content": "", "tool_calls": '[{"name": "a", "arguments": [1]}]'}, "arguments must be a JSON object"),
        ({"from_run": "f" * 32}, "the other run: no trace with id"),
    ],
)
def test_a_refused_correction_is_one_line_and_nothing_is_saved(runs, fields, message):
    with TestClient(create_app(runs["url"])) as client:
        page = client.get(f"/runs/{runs['failed']}").text
        response = client.post(f"/runs/{runs['failed']}/pair", data={"csrf_token": csrf(page), **fields})
        assert response.status_code == 400
        [line] = re.findall(r'<p class="error" id="message">([^<]*)</p>', response.text)
        assert line.startswith("Not saved: ") and message in line
    with TraceStore(runs["url"]) as store:
        assert store.feedback(corrections=True) == []


def test_read_only_shows_no_pair_form_and_refuses_a_correction(runs):
    with TestClient(create_app(runs["url"], read_only=True)) as client:
        page = client.get(f"/runs/{runs['failed']}").text
        assert 'id="pair-form"' not in page and "Make a DPO pair" not in page
        token = csrf(client.get("/login").text)  # a token of this session, so the refusal is read-only's
        response = client.post(f"/runs/{runs['failed']}/pair", data={"csrf_token": token, "content": "x"})
        assert (
            response.status_code == 403
            and "read-only" in response.text
            and "corrections are not saved" in response.text
        )
    with TraceStore(runs["url"]) as store:
        assert store.feedback(corrections=True) == []


# -- the command line


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_traces_correct_writes_what_the_page_writes_and_the_newest_counts(runs, tmp_path):
    url, failed = runs["url"], runs["failed"]
    first = cli("traces", "correct", failed[:10], "--answer", "first try", "--db", url)
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f'Corrected {failed[:12]}: "first try"'
    answer = tmp_path / "answer.txt"
    answer.write_text("Order B-42 shipped.", encoding="utf-8")
    second = cli(
        "traces", "correct", failed, "--answer-file", str(answer), "--tool-calls", '[{"name": "lookup_order"}]',
        "--db", url, "--json",
    )  # fmt: skip
    assert second.exit_code == 0, second.output
    stored = json.loads(second.output)
    assert stored["source"] == "cli" and stored["correction"] == {
        "role": "assistant",
        "content": "Order B-42 shipped.",
        "tool_calls": [{"type": "function", "function": {"name": "lookup_order", "arguments": "{}"}}],
    }
    shown = cli("traces", "show", failed, "--db", url)
    assert 'correction "Order B-42 shipped.", lookup_order({})' in shown.output

    rows, summary = dpo(url, tmp_path / "dpo.jsonl", "--negatives", "corrections")
    assert [row["chosen"][0]["content"] for row in rows] == ["Order B-42 shipped."]  # the newest of the two
    assert step(summary, "pairs from corrections")["in"] == 1

    taken = cli("traces", "correct", failed, "--from-run", runs["success"], "--db", url)
    assert taken.exit_code == 0 and "lookup_order(" in taken.output
    rows, _ = dpo(url, tmp_path / "dpo.jsonl", "--negatives", "corrections")
    assert rows[0]["chosen"][0]["tool_calls"][0]["function"]["name"] == "lookup_order"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give --answer, --answer-file, --tool-calls or --from-run"),
        (("--answer", "a", "--from-run", "x"), "--from-run takes the whole answer"),
        (("--tool-calls", "[{"), "not JSON"),
        (("--answer", " "), "a correction needs the answer's text or tool calls"),
        (("--from-run", "f" * 32), "no trace with id"),
    ],
)
def test_traces_correct_refuses_in_one_line(runs, args, message):
    result = CliRunner().invoke(main, ["traces", "correct", runs["failed"], *args, "--db", runs["url"]])
    assert result.exit_code != 0
    last = result.output.strip().splitlines()[-1]  # after click's usage lines, if any: the one error line
    assert last.startswith("Error: ") and message in last
    with TraceStore(runs["url"]) as store:
        assert store.feedback(corrections=True) == []


def test_a_correction_of_a_run_left_out_of_the_selection_is_counted(runs, tmp_path):
    assert cli("traces", "correct", runs["failed"], "--answer", "better", "--db", runs["url"]).exit_code == 0
    result = CliRunner().invoke(
        main,
        ["dataset", "dpo", "--db", runs["url"], "--out", str(tmp_path / "dpo.jsonl"), "--no-progress"]
        + ["--negatives", "corrections", "--outcome", "success"],
    )
    assert result.exit_code == 1  # nothing else to write: the summary says why
    assert re.search(r"pairs from corrections +1 +0 +run not in the selection 1", result.output), result.output
