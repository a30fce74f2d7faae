"""`agent-tracer proxy` takes OTLP trace exports at /v1/traces, and the GenAI message events of
their spans at /v1/logs, into its own store (never forwarding them upstream), with its keys when it
requires them, counted in its /metrics."""

from __future__ import annotations

import json
import os

import httpx
import pytest

pytest.importorskip("opentelemetry.proto")

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)

from agent_tracer.proxy.process import ProxyProcess  # noqa: E402
from agent_tracer.store import TraceStore  # noqa: E402


def export(trace_id: str, span_id: bytes | None = None) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.name, span.trace_id, span.span_id = "chat m", bytes.fromhex(trace_id), span_id or os.urandom(8)
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


def choice_log(trace_id: str, span_id: bytes) -> bytes:
    """The `gen_ai.choice` log event of a span, as openai-v2 sends it."""
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.event_name, record.trace_id, record.span_id = "gen_ai.choice", bytes.fromhex(trace_id), span_id
    for key, value in {
        "index": 0,
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": "hello"},
    }.items():
        entry = record.body.kvlist_value.values.add()
        entry.key = key
        if isinstance(value, dict):
            for inner_key, inner in value.items():
                pair = entry.value.kvlist_value.values.add()
                pair.key, pair.value.string_value = inner_key, inner
        elif isinstance(value, int):
            entry.value.int_value = value
        else:
            entry.value.string_value = value
    return request.SerializeToString()


def test_the_proxy_joins_log_events_to_their_calls(proxy, upstream, scrape):
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8)
    before = len(upstream.requests)
    headers = {"content-type": "application/x-protobuf"}
    assert httpx.post(f"{proxy.url}/v1/traces", content=export(trace_id, span_id), headers=headers).status_code == 200
    assert httpx.post(f"{proxy.url}/v1/logs", content=choice_log(trace_id, span_id), headers=headers).status_code == 200
    assert len(upstream.requests) == before  # not forwarded
    with TraceStore(proxy.db_url) as store:
        call = store.get_trace(trace_id).calls[0]
    assert call.response["message"] == {"role": "assistant", "content": "hello"}
    assert scrape(proxy.url)("agent_tracer_otlp_log_records_total", result="joined") == 1


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
        logs = choice_log(os.urandom(16).hex(), os.urandom(8))
        assert httpx.post(f"{process.url}/v1/logs", content=logs, headers=headers).status_code == 401
        assert httpx.post(f"{process.url}/v1/logs", content=logs, headers=keyed).status_code == 200
    finally:
        process.stop()
