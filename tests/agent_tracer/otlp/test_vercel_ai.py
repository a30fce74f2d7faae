"""The Vercel AI SDK under Node: the real `ai` package (from the npm registry, versions pinned in
`vercel/package.json`) runs the two-tool loop with its telemetry on, exported by OpenTelemetry's
OTLP protobuf exporter to `agent-tracer collect`, while its model calls go through `agent-tracer
proxy`. One run, recorded both ways: each model call the collector stored must be the one the
proxy stored (same messages, tools, answer, tokens; same `dataset sft --per call` rows), and the
run's tool executions must carry the arguments and results.

Skipped without `node` and `npm`, or when the packages cannot be installed (no registry); they are
installed once into a cache folder outside the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from otlp_loop import QUESTION, package_cache, sft_rows, snapshot

from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore

HERE = Path(__file__).parent / "vercel"


@pytest.fixture(scope="session")
def vercel_agent() -> Path:
    """agent.mjs in a folder whose node_modules holds the pinned packages."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("the Vercel AI SDK test needs node and npm")
    folder = package_cache("vercel", (HERE / "package.json").read_bytes())
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "package.json", folder / "package.json")
    shutil.copy(HERE / "agent.mjs", folder / "agent.mjs")
    if not (folder / "node_modules" / "ai").is_dir():
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.skip(f"npm install failed: {done.stderr.strip()[-300:]}")
    return folder / "agent.mjs"


def test_vercel_ai_sdk_spans_store_what_the_proxy_records(vercel_agent, scripted_upstream, collector, tmp_path):
    proxy = ProxyProcess(scripted_upstream.url, tmp_path / "proxy.db")
    try:
        done = subprocess.run(
            ["node", str(vercel_agent), proxy.openai_base_url, collector.traces_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        proxy.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Sunny, and it is noon in Paris."

    deadline = time.monotonic() + 10
    detail = None
    while time.monotonic() < deadline:
        try:
            with TraceStore(collector.db_url) as store:
                (run,) = store.traces(name="vercel-agent")
                detail = store.get_trace(run.id)
            if len(detail.calls) == 2 and detail.agent_runs:
                break
        except ValueError:  # not stored yet
            pass
        time.sleep(0.05)
    assert detail is not None
    assert detail.trace.task == QUESTION and detail.trace.status == "ok"
    assert sorted((t.name, t.arguments, t.result) for t in detail.tools) == [  # run side by side
        ("get_time", {"city": "Paris"}, {"city": "Paris", "time": "12:00"}),
        ("get_weather", {"city": "Paris"}, {"city": "Paris", "sky": "sunny"}),
    ]
    assert {c.parent_span_id for c in detail.calls} == {detail.agent_runs[0].id}

    with TraceStore(proxy.db_url) as store:
        recorded = {call.response_id: call.trace_id for call in store.calls()}
    for call in detail.calls:
        received = _call_snapshot(collector.db_url, detail.trace.id, call.id)
        expected = _call_snapshot(proxy.db_url, recorded[call.response_id], None)
        assert received == expected
    own = sft_rows(proxy.db_url, tmp_path / "proxy.jsonl", None, "--per", "call")
    received_rows = sft_rows(collector.db_url, tmp_path / "received.jsonl", "vercel-agent", "--per", "call")
    assert own and sorted(map(repr, received_rows)) == sorted(map(repr, own))


def _call_snapshot(url: str, trace_id: str, call_id: str | None) -> dict:
    """One model call of a trace as `snapshot` shows it (the proxy's traces hold one call each)."""
    with TraceStore(url) as store:
        ids = [call.id for call in store.get_trace(trace_id).calls]
    index = ids.index(call_id) if call_id else 0
    return snapshot(url, trace_id)["calls"][index]
