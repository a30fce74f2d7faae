"""The examples are run as a user runs them, each in a process of its own against loopback servers
(the fake model API, `agent-tracer proxy`, the tiny model served), and judged by what the user
would see: the exit code, the output, and what the store holds afterwards. An example that rots
fails here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent_tracer.loopback import free_port
from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore
from agent_tracer.testing import FakeUpstream

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ORDERS = {"A-17", "B-42", "C-99"}


def run_example(*command: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run `command` (a Python example's file name, or a whole command line) from a clean
    environment: no store, API or key settings but `env`'s. Returns what it printed; fails with
    the output on a non-zero exit."""
    if command[0].endswith(".py"):
        command = (sys.executable, str(EXAMPLES / command[0]), *command[1:])
    cleared = ("AGENT_TRACER_DB", "OPENAI_BASE_URL", "OPENAI_API_KEY")
    base = {key: value for key, value in os.environ.items() if key not in cleared}
    result = subprocess.run(command, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def proxy(upstream, tmp_path):
    """`agent-tracer proxy` in front of the fake API, recording into its own SQLite file."""
    process = ProxyProcess(upstream.url, tmp_path / "proxy.db")
    yield process
    process.stop()


def stopped(proxy: ProxyProcess) -> TraceStore:
    """The proxy's store, once the proxy has stopped (its writer flushed everything)."""
    output = proxy.stop()
    assert proxy.stopped_cleanly, output
    return TraceStore(proxy.db_url)


def test_decorator_agent_records_runs_tools_and_outcomes(tmp_path):
    db = f"sqlite:///{tmp_path / 'example.db'}"
    output = run_example("decorator_agent.py", "--db", db)
    assert [line.split(":")[0] for line in output.splitlines()[:3]] == sorted(ORDERS)
    with TraceStore(db) as store:
        traces = store.traces(name="support-agent")
        assert len(traces) == 3
        for trace in traces:
            detail = store.get_trace(trace.id)
            assert detail.trace.outcome in ("success", "failure") and detail.trace.rating is not None
            assert detail.trace.task.startswith("What is the status of order")
            assert [t.name for t in detail.tools] == ["lookup_order"]
            assert len(detail.calls) == 2 and detail.calls[0].has_tool_calls


def test_decorator_agent_takes_its_api_from_openai_base_url(upstream, tmp_path):
    before = len(upstream.requests)
    run_example(
        "decorator_agent.py",
        "--db",
        f"sqlite:///{tmp_path / 'example.db'}",
        "--model",
        "gpt-test",
        env={"OPENAI_BASE_URL": upstream.openai_base_url},
    )
    sent = upstream.requests[before:]
    assert len(sent) == 6 and {request["json"]["model"] for request in sent} == {"gpt-test"}


def test_proxy_agent_groups_each_run_and_sends_its_outcome(proxy):
    output = run_example("proxy_agent.py", "--proxy", proxy.url)
    run_ids = [line.split("(run ")[1].split(":")[0] for line in output.splitlines()]
    assert [run_id.split("-")[1] for run_id in run_ids] == ["A", "B", "C"]
    with stopped(proxy) as store:
        assert len(store.traces(name="support-agent")) == 3
        for run_id in run_ids:
            detail = store.get_trace(run_id)  # the agent's own run id finds its trace
            assert detail.trace.meta["run_id"] == run_id
            assert len(detail.calls) == 2 and detail.calls[0].has_tool_calls  # the tool call and the answer
            assert [(f.outcome, f.rating, f.source) for f in detail.feedback] == [("failure", 1, "proxy")]
            assert detail.trace.outcome == "failure"


def test_proxy_agent_without_a_proxy_says_so_in_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "proxy_agent.py"), "--proxy", url], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr == f"error: no agent-tracer proxy at {url}: start one with `agent-tracer proxy`\n"


def test_proxy_curl_script_records_the_call_and_the_outcome(proxy):
    output = run_example("sh", str(EXAMPLES / "proxy_curl.sh"), proxy.url, env={"RUN_ID": "curl-test-1"})
    assert '"status":"accepted"' in output.replace(" ", "") and "traces show curl-test-1" in output
    with stopped(proxy) as store:
        detail = store.get_trace("curl-test-1")
        assert detail.trace.name == "curl-agent" and len(detail.calls) == 1
        assert detail.calls[0].request_model == "gpt-4o-mini" and detail.calls[0].status == "ok"
        assert [(f.outcome, f.rating, f.comment) for f in detail.feedback] == [("success", 5, "sent with curl")]


def test_routes_file_checks_against_servers_on_its_endpoints(upstream, tmp_path):
    """The shipped file, its two URLs pointed at loopback servers: it loads and both answer."""
    text = (EXAMPLES / "routes.yaml").read_text()
    with FakeUpstream() as frontier:
        for shipped, local in (
            ("http://127.0.0.1:8001/v1", upstream.openai_base_url),
            ("https://api.openai.com/v1", frontier.openai_base_url),
        ):
            assert shipped in text
            text = text.replace(shipped, local)
        routes = tmp_path / "routes.yaml"
        routes.write_text(text)
        checked = run_example(
            sys.executable, "-m", "agent_tracer.cli", "routes", "check", str(routes), env={"OPENAI_API_KEY": "sk-test"}
        )
    assert checked.strip() == "ok: 1 route(s), 2 endpoint(s) reachable"
    shown = run_example(
        sys.executable,
        "-m",
        "agent_tracer.cli",
        "routes",
        "show",
        str(EXAMPLES / "routes.yaml"),
        env={"OPENAI_API_KEY": "sk-test"},
    )
    assert shown.startswith("support-agent: fallback; primary tuned at http://127.0.0.1:8001/v1")


def test_pipeline_runs_from_traces_to_a_table_of_base_and_tuned(tiny_model_dir, tmp_path):
    output = run_example(
        "pipeline.py",
        "--model",
        tiny_model_dir,
        "--dir",
        str(tmp_path),
        "--traces",
        "20",
        "--cases",
        "4",
        "--max-steps",
        "2",
        "--max-tokens",
        "16",
        timeout=120,
    )
    assert "imported 400 BFCL simple_python questions" in output
    assert "imported 258 BFCL live_simple questions (tagged held-out" in output
    assert "trained" in output and (tmp_path / "runs" / "sft" / "adapter_model.safetensors").exists()
    table = output[output.index("endpoint  model") :].splitlines()
    assert [row.split()[0] for row in table[1:3]] == ["base", "tuned"]
    assert (tmp_path / "report" / "report.md").exists()
    with TraceStore(f"sqlite:///{tmp_path / 'traces.db'}") as store:
        held_out = {trace.task for trace in store.traces(tags=["live_simple"], limit=None)}
    trained = [json.loads(line)["messages"][0]["content"] for line in (tmp_path / "sft.jsonl").open()]
    assert len(held_out) > 200 and len(trained) == 20 and not held_out & set(trained)


def test_quality_bench_validates_on_non_live_rows_then_asks_live_simple(tiny_model_dir, tmp_path):
    bench = EXAMPLES.parent / "bench" / "quality.py"
    output = run_example(
        sys.executable,
        str(bench),
        "--model",
        tiny_model_dir,
        "--dir",
        str(tmp_path),
        "--train-on",
        "multi_turn_base,simple_python,irrelevance,exec_multiple",
        "--traces",
        "60",
        "--validate",
        "--unused-params",
        "1",
        "--cases",
        "4",
        "--max-steps",
        "2",
        "--max-tokens",
        "16",
        timeout=180,
    )
    assert "imported 400 BFCL simple_python questions" in output and "parallel questions" not in output
    assert "imported 49 BFCL exec_multiple questions, 1 skipped" in output  # its ground truth computes p=1/6
    assert "imported 199 BFCL multi_turn_base turns" in output  # the turns that are one call they spell out
    assert re.search(r"unused parameters +(\d+) +\1 +parameters added \d", output)
    validation = json.loads((tmp_path / "sft.manifest.json").read_text())["eval_traces"]
    assert f"validation: {len(validation)} non-live questions held out of training: tool-call format" in output
    asked = {json.loads(line)["case_id"] for line in (tmp_path / "report-validation" / "results.jsonl").open()}
    assert asked == {trace[:12] for trace in validation}
    assert "## live_simple: 4 held-out questions" in output
    refused = subprocess.run(
        [sys.executable, str(bench), "--train-on", "simple_python,live_simple"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "not a category to train on: 'live_simple'" in refused.stderr


def test_cli_help_is_fast_and_imports_no_torch():
    code = (
        "import sys, agent_tracer.cli; agent_tracer.cli.main(['--help'], standalone_mode=False); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_every_public_module_imports_first_in_a_fresh_process():
    """No import cycle bites a user who imports a codec or the store before agent_tracer itself."""
    for module in (
        "integrations",
        "integrations.openai_chat",
        "integrations.anthropic_messages",
        "agent_tracer.store",
        "agent_tracer.testing.upstream",
        "agent_tracer.cli",
    ):
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, capture_output=True)
