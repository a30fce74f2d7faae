"""UI fixtures: a store filled by really capturing agent runs (the OpenAI SDK against the loopback
fake API, through `agent_tracer.init`), and `agent-tracer ui` running on it as a child process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

import agent_tracer
from agent_tracer.loopback import free_port
from agent_tracer.store import TraceStore
from agent_tracer.testing import FakeUpstream, Reply

XSS = 'Hello <script>alert(1)</script> and <img src=x onerror=alert(1)> <a href="javascript:alert(1)">click me</a> bye'
KEY = "ui-test-key-0123456789abcdef"
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "The status of an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    },
}


@agent_tracer.trace_tool(name="lookup_order")
def lookup_order(order_id: str) -> dict:
    return {"order_id": order_id, "status": "shipped"}


def agent(client: openai.OpenAI, question: str, scenario: str, outcome: str | None, rating: float | None) -> str:
    messages = [
        {"role": "system", "content": "You answer questions about orders."},
        {"role": "user", "content": question},
    ]
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
    if outcome or rating is not None:
        agent_tracer.record_outcome(outcome=outcome, rating=rating)
    return reply.content or ""


orders_agent = agent_tracer.trace_agent(name="orders-agent", tags=["orders"])(agent)
billing_agent = agent_tracer.trace_agent(name="billing-agent", tags=["billing"])(agent)
xss_agent = agent_tracer.trace_agent(name="xss-agent")(agent)

RUNS = [
    (orders_agent, "What is the status of order A-17?", "auto", "success", 5),
    (orders_agent, "What is the status of order B-42?", "text", "failure", 1),
    (billing_agent, "Why was I charged twice?", "text", "failure", 2),
    (billing_agent, "Refund order C-99 please", "auto", "success", 4),
    (orders_agent, "Is order D-1 late?", "auto", None, None),
    (xss_agent, XSS, "text", None, None),
    *[(billing_agent, f"Invoice question #{n}", "text", "partial", 3) for n in range(5)],
]
"""(agent, question, fake API scenario, outcome, rating): 11 runs, oldest first."""


@pytest.fixture(scope="package")
def captured_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An SQLite store holding `RUNS`, captured through the OpenAI SDK."""
    folder = tmp_path_factory.mktemp("ui-store")
    url = f"sqlite:///{folder / 'traces.db'}"
    with FakeUpstream() as upstream:
        agent_tracer.init(db=url, spill_path=str(folder / "spill.jsonl"), writer="thread", flush_interval_s=0.02)
        try:
            client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
            for run, question, scenario, outcome, rating in RUNS:
                run(client, question, scenario, outcome, rating)
                time.sleep(0.002)  # distinct start times, so "newest first" is one order
            assert agent_tracer.flush()
        finally:
            agent_tracer.uninstrument()
    return url


@pytest.fixture
def store(captured_url: str) -> Iterator[TraceStore]:
    with TraceStore(captured_url) as opened:
        yield opened


class UIProcess:
    """`python -m agent_tracer.cli ui …` on a free loopback port, ready once /healthz answers."""

    def __init__(self, db_url: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if k not in ("AGENT_TRACER_DB", "AGENT_TRACER_PROXY_KEYS")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent_tracer.cli", "ui", "--db", db_url, "--port", str(self.port), *extra],
            env={**base, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"agent-tracer ui exited with {self.process.returncode}: {output}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("agent-tracer ui did not answer /healthz within 30 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


@pytest.fixture(scope="package")
def ui_server(captured_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIProcess]:
    """The UI over the captured store, with the fake API's model priced (as a user prices a model
    the default table does not know), so its pages (and the README's screenshots) show costs."""
    prices = tmp_path_factory.mktemp("prices") / "prices.yaml"
    prices.write_text("gpt-test: {input: 0.0025, output: 0.01}\n")
    server = UIProcess(captured_url, "--prices", str(prices))
    yield server
    server.stop()


@pytest.fixture(scope="package")
def read_only_server(captured_url: str) -> Iterator[UIProcess]:
    server = UIProcess(captured_url, "--read-only")
    yield server
    server.stop()


@pytest.fixture(scope="package")
def ui_key() -> str:
    """The client key `keyed_server` takes."""
    return KEY


@pytest.fixture(scope="package")
def keyed_server(captured_url: str) -> Iterator[UIProcess]:
    server = UIProcess(captured_url, "--require-key", env={"AGENT_TRACER_PROXY_KEYS": KEY})
    yield server
    server.stop()


@pytest.fixture
def writable_server(captured_url: str, tmp_path: Path) -> Iterator[tuple[str, UIProcess]]:
    """`agent-tracer ui` on a fresh copy of the captured store, for a test that writes and must
    neither see nor leave other tests' reviews: (the copy's URL, the server)."""
    copy = tmp_path / "copy.db"
    source, target = sqlite3.connect(captured_url.removeprefix("sqlite:///")), sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    url = f"sqlite:///{copy}"
    server = UIProcess(url)
    yield url, server
    server.stop()


@pytest.fixture
def datasets_server(captured_url: str, tmp_path: Path) -> Iterator[tuple[Path, UIProcess]]:
    """`agent-tracer ui --datasets-dir` a fresh folder: (the folder, the server)."""
    folder = tmp_path / "datasets"
    server = UIProcess(captured_url, "--datasets-dir", str(folder))
    yield folder, server
    server.stop()


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    """Debian's chromium, headless, driven by Selenium through chromedriver."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.implicitly_wait(2)
    yield driver
    driver.quit()


EVAL_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
    },
}
EVAL_CASES = 3
"""Cases o0, o1, o2: "order N", wanting lookup_order(id="AN"). The tuned endpoint calls it, the
base one answers in prose holding `XSS`; o2 asks the tuned one for the wrong id."""


@pytest.fixture(scope="package")
def eval_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one report, `first`, that `agent-tracer eval --report` really wrote (run
    through CliRunner against two scripted fake APIs)."""
    from click.testing import CliRunner

    from agent_tracer.cli import main
    from agent_tracer.testing import Reply

    folder = tmp_path_factory.mktemp("eval-reports")

    def asked(body: dict) -> str:
        return body["messages"][-1]["content"].split()[-1]

    def tuned_reply(body: dict) -> Reply:
        wanted = "A" + asked(body) if asked(body) != "2" else "WRONG"
        return Reply(calls=[("lookup_order", {"id": wanted})], model="tuned-m", prompt_tokens=100, completion_tokens=20)

    def base_reply(body: dict) -> Reply:
        return Reply(content=f"Order {asked(body)}: {XSS}", model="base-m", prompt_tokens=100, completion_tokens=20)

    cases = folder / "input.jsonl"
    cases.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"o{i}",
                    "messages": [{"role": "user", "content": f"order {i}"}],
                    "tools": [EVAL_TOOL],
                    "expected": {"tool_calls": [{"name": "lookup_order", "arguments": {"id": f"A{i}"}}]},
                }
            )
            + "\n"
            for i in range(EVAL_CASES)
        )
    )
    with (
        FakeUpstream(reply=tuned_reply, models=["tuned-m"]) as tuned,
        FakeUpstream(reply=base_reply, models=["base-m"]) as base,
    ):
        arguments = ["eval", "--cases", str(cases), "--no-progress", "--report", str(folder / "reports" / "first")]
        arguments += [f"--endpoint=tuned={tuned.openai_base_url}", f"--endpoint=base={base.openai_base_url}"]
        result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    return folder / "reports"


@pytest.fixture(scope="package")
def evals_server(captured_url: str, eval_reports: Path) -> Iterator[UIProcess]:
    server = UIProcess(captured_url, "--reports", str(eval_reports))
    yield server
    server.stop()


@pytest.fixture
def start_ui(captured_url: str) -> Iterator[Callable[..., UIProcess]]:
    """`start_ui(*options, db=…, env=…)`: `agent-tracer ui` with more options (its endpoints, say,
    when the test has started them), over the captured store or `db`; stopped after the test."""
    started: list[UIProcess] = []

    def start(*extra: str, db: str | None = None, env: dict[str, str] | None = None) -> UIProcess:
        started.append(UIProcess(db or captured_url, *extra, env=env))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def long_report_server(captured_url: str, eval_reports: Path, tmp_path: Path) -> Iterator[UIProcess]:
    """The UI over a report `big` of 1,200 cases: the real report's rows for case o0, copied under
    case ids c0000…c1199."""
    rows = [json.loads(line) for line in (eval_reports / "first" / "results.jsonl").read_text().splitlines()]
    big = tmp_path / "big"
    big.mkdir()
    with (big / "results.jsonl").open("w") as out:
        for i in range(1200):
            out.writelines(json.dumps({**row, "case_id": f"c{i:04d}"}) + "\n" for row in rows if row["case_id"] == "o0")
    server = UIProcess(captured_url, "--reports", str(big))
    yield server
    server.stop()


# -- costs: runs of known models and token counts --------------------------------------------------

PRICED_MODELS = {"frontier": "gpt-4o-2024-08-06", "small": "gpt-4o-mini"}
"""The model a request names → the one the fake API answers as (others: the one asked for)."""
PRICED_TOKENS = {"frontier": (1000, 500), "small": (200, 10), "my-tuned": (1000, 500)}

PRICED_RUNS = {
    "two-frontier": ["frontier", "frontier"],  # 2 × (1000 × $0.0025 + 500 × $0.01) / 1K = $0.015
    "tuned-only": ["my-tuned"],  # not in the default table: "–"
    "mixed": ["frontier", "my-tuned"],  # partial: "≥ $0.0075"
    "small": ["small"],  # 200 × $0.00015 + 10 × $0.0006 per 1K = $0.000036
}


def priced_answer(body: dict) -> Reply:
    prompt, completion = PRICED_TOKENS[body["model"]]
    return Reply(
        content="done", model=PRICED_MODELS.get(body["model"]), prompt_tokens=prompt, completion_tokens=completion
    )


@pytest.fixture(scope="package")
def priced_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An SQLite store holding `PRICED_RUNS`, each an agent of that name, captured through the OpenAI SDK."""
    folder = tmp_path_factory.mktemp("cost-store")
    url = f"sqlite:///{folder / 'traces.db'}"
    with FakeUpstream(reply=priced_answer) as upstream:
        agent_tracer.init(db=url, spill_path=str(folder / "spill.jsonl"), writer="thread", flush_interval_s=0.02)
        try:
            client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
            for name, models in PRICED_RUNS.items():

                def run(models: list[str] = models) -> None:
                    for model in models:
                        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])

                agent_tracer.trace_agent(name=name)(run)()
                time.sleep(0.002)
            assert agent_tracer.flush()
        finally:
            agent_tracer.uninstrument()
    return url


@pytest.fixture(scope="package")
def cost_server(priced_url: str) -> Iterator[UIProcess]:
    server = UIProcess(priced_url)
    yield server
    server.stop()


PRICE_FILE = {"my-tuned": {"input": 0.0001, "output": 0.0002}, "gpt-4o": {"input": 0.005, "output": 0.02}}


@pytest.fixture(scope="package")
def price_file_server(priced_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIProcess]:
    """`agent-tracer ui --prices FILE` over the priced runs, the file holding `PRICE_FILE`."""
    path = tmp_path_factory.mktemp("prices") / "prices.json"
    path.write_text(json.dumps(PRICE_FILE))
    server = UIProcess(priced_url, "--prices", str(path))
    yield server
    server.stop()
