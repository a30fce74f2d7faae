"""`agent-tracer proxy` takes OTLP trace exports at /v1/traces into its own store (never forwarding
them upstream), with its keys when it requires them, counted in its /metrics."""

from __future__ import annotations

import json
import os

import httpx
import pytest

pytest.importorskip("opentelemetry.proto")

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)

from agent_tracer.proxy.process import ProxyProcess  # noqa: E402
from agent_tracer.store import TraceStore  # noqa: E402


def export(trace_id: str) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.name, span.trace_id, span.span_id = "chat m", bytes.fromhex(trace_id), os.urandom(8)
    span.start_time_unix_nano, span.end_time_unix_nano = 1_767_000_000_000_000_000, 1_767_000_000_100_000_000
    for key, value in {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "m",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]),
    }.items():
        attribute = span.attributes.add()
        attribute.key, attribute.value.string_value = key, value
    return request.SerializeToString()


def test_the_proxy_stores_otlp_exports_and_counts_them(proxy, upstream, scrape):
    trace_id = os.urandom(16).hex()
    before = len(upstream.requests)
    answer = httpx.post(
        f"{proxy.url}/v1/traces", content=export(trace_id), headers={"content-type": "application/x-protobuf"}
    )
    assert answer.status_code == 200
    assert len(upstream.requests) == before  # not forwarded
    with TraceStore(proxy.db_url) as store:
        assert store.get_trace(trace_id).calls[0].request["messages"] == [{"role": "user", "content": "hi"}]
    samples = scrape(proxy.url)
    assert samples("agent_tracer_otlp_requests_total", code="200") == 1
    assert samples("agent_tracer_otlp_spans_total", result="llm_call") == 1
    assert samples("agent_tracer_otlp_store_spans_total", stage="written") == 1


def test_a_keyed_proxy_asks_its_key(upstream, tmp_path):
    key = "proxy-otlp-key-0123456789abcdef"
    process = ProxyProcess(
        upstream.url,
        tmp_path / "traces.db",
        "--require-key",
        env={"AGENT_TRACER_PROXY_KEYS": key, "OPENAI_API_KEY": "sk-up"},
    )
    try:
        headers = {"content-type": "application/x-protobuf"}
        body = export(os.urandom(16).hex())
        assert httpx.post(f"{process.url}/v1/traces", content=body, headers=headers).status_code == 401
        keyed = {**headers, "authorization": f"Bearer {key}"}
        assert httpx.post(f"{process.url}/v1/traces", content=body, headers=keyed).status_code == 200
    finally:
        process.stop()
