"""`/metrics`: what a Prometheus server scrapes, parsed with Prometheus' own client library."""

from __future__ import annotations

import json
import os

import httpx
import openai
import pytest

from agent_tracer.loopback import free_port
from agent_tracer.proxy.metrics import BUCKETS, Metrics
from agent_tracer.proxy.process import ProxyProcess


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
