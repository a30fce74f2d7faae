"""`/metrics`: what a Prometheus server scrapes, parsed with Prometheus' own client library."""

from __future__ import annotations

import json
import os
import time

import httpx
import openai
import pytest

from agent_tracer.loopback import free_port
from agent_tracer.proxy.metrics import BUCKETS, Metrics
from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore


def test_requests_errors_latency_and_spans_are_counted(upstream, tmp_path, scrape):
    process = ProxyProcess(upstream.url, tmp_path / "traces.db")
    try:
        client = openai.OpenAI(base_url=process.openai_base_url, api_key="sk-test", max_retries=0)
        for _ in range(3):
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="gpt-test",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-fake-scenario": "error:429"},
            )
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="gpt-test",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-fake-scenario": "error:503"},
            )
        client.models.list()
        httpx.post(process.url + "/v1/messages", content=b"{oops", headers={"content-type": "application/json"})

        samples = scrape(process.url)
        assert samples("agent_tracer_proxy_requests_total", api="openai", recorded="true", code="200") == 3
        assert samples("agent_tracer_proxy_requests_total", api="openai", recorded="true", code="429") == 1
        assert samples("agent_tracer_proxy_requests_total", api="openai", recorded="true", code="503") == 1
        assert samples("agent_tracer_proxy_requests_total", api="openai", recorded="false", code="200") == 1
        assert samples("agent_tracer_proxy_requests_total", api="anthropic", recorded="true", code="400") == 1
        assert samples("agent_tracer_proxy_upstream_errors_total", api="openai", reason="http_429") == 1
        assert samples("agent_tracer_proxy_upstream_errors_total", api="openai", reason="http_5xx") == 1
        assert samples("agent_tracer_proxy_request_duration_seconds_count", api="openai") == 6
        assert samples("agent_tracer_proxy_request_duration_seconds_bucket", api="openai", le="+Inf") == 6
        assert 0 < samples("agent_tracer_proxy_request_duration_seconds_sum", api="openai") < 6
        assert samples("agent_tracer_proxy_requests_in_flight") == 0
        assert samples("agent_tracer_spans_total", stage="captured") == 5  # the 400 was never sent
        assert samples("agent_tracer_spans_total", stage="dropped") == 0
        assert samples("agent_tracer_store_up") == 1 and samples("agent_tracer_spill_bytes") == 0
        assert samples("agent_tracer_writer_queued") <= 5  # captured a moment ago: maybe not written yet
        deadline = time.monotonic() + 10
        while samples("agent_tracer_writer_queued") and time.monotonic() < deadline:
            time.sleep(0.1)
            samples = scrape(process.url)
        assert (
            samples("agent_tracer_writer_queued") == 0 and samples("agent_tracer_writer_oldest_unwritten_seconds") == 0
        )
        assert samples("agent_tracer_store_writes_total") >= 1
        assert 0 <= samples("agent_tracer_store_write_seconds_total") < 5
        health = httpx.get(process.url + "/healthz").json()
        assert (health["status"], health["store"], health["queued"], health["spill_bytes"]) == ("ok", "ok", 0, 0)
    finally:
        process.stop()


def test_healthz_and_metrics_show_a_store_that_refuses_writes(upstream, tmp_path, scrape):
    """Calls go through and are spilled; the proxy stays up (200) and says it is degraded."""
    path = tmp_path / "ro.db"
    TraceStore(f"sqlite:///{path}").close()
    spill = tmp_path / "spill.jsonl"
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    process = ProxyProcess(upstream.url, read_only, "--no-ui", env={"AGENT_TRACER_SPILL": str(spill)})
    try:
        client = openai.OpenAI(base_url=process.openai_base_url, api_key="sk-test", max_retries=0)
        for _ in range(2):
            answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            assert answer.choices[0].message.content == "Echo: hi"
        deadline = time.monotonic() + 20
        while not (spill.exists() and spill.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.1)
        health = httpx.get(process.url + "/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded" and health.json()["store"] == "unreachable"
        assert health.json()["spill_bytes"] == spill.stat().st_size > 0
        samples = scrape(process.url)
        assert samples("agent_tracer_store_up") == 0 and samples("agent_tracer_spill_bytes") > 0
        assert samples("agent_tracer_spans_total", stage="spilled") == 2
    finally:
        process.stop()


def test_upstream_unreachable_is_counted(tmp_path, scrape):
    process = ProxyProcess(f"http://127.0.0.1:{free_port()}", tmp_path / "traces.db")
    try:
        httpx.post(
            process.openai_base_url + "/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        samples = scrape(process.url)
        assert samples("agent_tracer_proxy_upstream_errors_total", api="openai", reason="unreachable") == 1
        assert samples("agent_tracer_proxy_requests_total", api="openai", recorded="true", code="502") == 1
    finally:
        process.stop()


def test_workers_totals_add_up_and_a_dead_workers_gauge_does_not(tmp_path, parse_metrics):
    """Two workers' files and this worker's live counts make one exposition."""
    own = Metrics(lambda: {"captured": 1, "written": 1}, str(tmp_path))
    own.observe("openai", True, 200, 0.003)
    own.in_flight = 2
    other = Metrics(lambda: {"captured": 4, "written": 3}, str(tmp_path))
    other.observe("openai", True, 200, 0.2)
    other.observe("openai", True, 200, 500.0)
    other.upstream_error("openai", "timeout")
    other.in_flight = 1
    snapshot = other.snapshot()
    for pid, in_flight in ((os.getppid(), 1), (2**22 + 12345, 7)):  # a live process and a dead one
        (tmp_path / f"{pid}.json").write_text(json.dumps({**snapshot, "pid": pid, "in_flight": in_flight}))

    samples = parse_metrics(own.render())
    assert samples("agent_tracer_proxy_requests_total", api="openai", recorded="true", code="200") == 5
    assert samples("agent_tracer_proxy_upstream_errors_total", api="openai", reason="timeout") == 2
    assert samples("agent_tracer_proxy_requests_in_flight") == 3  # 2 here + 1 live; the dead one's 7 left out
    assert samples("agent_tracer_spans_total", stage="captured") == 9
    histogram = "agent_tracer_proxy_request_duration_seconds"
    assert samples(histogram + "_bucket", api="openai", le="0.005") == 1
    assert samples(histogram + "_bucket", api="openai", le="0.25") == 3
    assert samples(histogram + "_bucket", api="openai", le=repr(BUCKETS[-1])) == 3
    assert samples(histogram + "_bucket", api="openai", le="+Inf") == 5
    assert samples(histogram + "_count", api="openai") == 5
