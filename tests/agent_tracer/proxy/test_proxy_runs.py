"""Grouping proxied calls into runs by headers, and outcomes reported over HTTP."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agent_tracer.errors import TraceNotFound
from agent_tracer.proxy.runs import run_from_headers
from agent_tracer.run_ids import trace_id_for
from agent_tracer.testing.proxy_process import marked, wait_for_call


def wait_for_trace(store, trace_id, predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            detail = store.get_trace(trace_id)
        except TraceNotFound:
            detail = None
        if (detail is not None and predicate(detail)) or time.monotonic() > deadline:
            assert detail is not None and predicate(detail), detail
            return detail
        time.sleep(0.05)


# -- the headers, one by one


def test_trace_id_for_keeps_trace_ids_and_hashes_other_run_ids():
    hex_id = uuid.uuid4().hex
    assert trace_id_for(hex_id) == hex_id
    assert trace_id_for(hex_id.upper()) == hex_id
    as_uuid = uuid.UUID(hex_id)
    assert trace_id_for(str(as_uuid)) == hex_id
    hashed = trace_id_for("run-42")
    assert len(hashed) == 32 and int(hashed, 16) and hashed == trace_id_for(" run-42 ")
    assert hashed != trace_id_for("run-43")
    for bad in ("", "   ", "x" * 201):
        with pytest.raises(ValueError):
            trace_id_for(bad)
    assert trace_id_for("0" * 32) != "0" * 32  # the invalid all-zero id is hashed like any other text


def test_run_headers():
    run = run_from_headers(
        {"x-agent-trace-id": "run-42", "x-agent-name": " support-agent ", "x-agent-tags": "prod, eu,,prod , beta"}
    )
    assert run.trace_id == trace_id_for("run-42")
    assert run.labels.name == "support-agent"
    assert run.labels.tags == ["prod", "eu", "beta"]
    assert run.labels.meta == {"run_id": "run-42"}

    trace_hex, span_hex = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    run = run_from_headers({"traceparent": f"00-{trace_hex}-{span_hex}-01"})
    assert run.trace_id == trace_hex and run.labels is None
    # the explicit header wins over traceparent
    assert run_from_headers(
        {"traceparent": f"00-{trace_hex}-{span_hex}-01", "x-agent-trace-id": "r1"}
    ).trace_id == trace_id_for("r1")


@pytest.mark.parametrize(
    "value",
    [
        "00-" + "0" * 32 + "-" + "1" * 16 + "-01",  # all-zero trace id
        "00-" + "a" * 32 + "-" + "0" * 16 + "-01",  # all-zero parent id
        "ff-" + "a" * 32 + "-" + "1" * 16 + "-01",  # forbidden version
        "00-" + "a" * 32 + "-" + "1" * 16 + "-01-x",  # version 00 has exactly four fields
        "00-" + "a" * 31 + "-" + "1" * 16 + "-01",
        "garbage",
    ],
)
def test_a_bad_traceparent_is_ignored(value):
    run = run_from_headers({"traceparent": value})
    assert run.context is None and run.trace_id is None


# -- through a real proxy process


def test_calls_with_a_run_id_are_one_named_tagged_trace(proxy, proxy_store, upstream):
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    client = openai.OpenAI(
        base_url=proxy.openai_base_url,
        api_key="sk-test",
        max_retries=0,
        default_headers={"X-Agent-Trace-Id": run_id, "X-Agent-Name": "billing-agent", "X-Agent-Tags": "prod,eu"},
    )
    first = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": f"step one {run_id}"}]
    )
    assert "x-agent-" not in " ".join(upstream.requests[-1]["headers"])  # the run headers stay with the proxy
    client.responses.create(model="gpt-test", input=f"step two {run_id}")

    trace_id = trace_id_for(run_id)
    assert first.headers["x-agent-trace-id"] == trace_id
    detail = wait_for_trace(proxy_store, trace_id, lambda d: len(d.calls) == 2)
    assert detail.trace.name == "billing-agent"
    assert detail.trace.tags == ["prod", "eu"]
    assert detail.trace.meta == {"run_id": run_id}
    assert detail.trace.source == "proxy"
    assert [c.api for c in detail.calls] == ["openai.chat", "openai.responses"]
    assert len({c.parent_span_id for c in detail.calls}) == 1  # siblings under the run


def test_calls_without_headers_are_traces_of_their_own(proxy, proxy_store):
    marker = uuid.uuid4().hex
    client = openai.OpenAI(base_url=proxy.openai_base_url, api_key="sk-test", max_retries=0)
    for step in ("a", "b"):
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": f"{step} {marker}"}])
    first = wait_for_call(proxy_store, marked(f"a {marker}"))
    second = wait_for_call(proxy_store, marked(f"b {marker}"))
    assert first.trace_id != second.trace_id


def test_traceparent_from_an_opentelemetry_client_joins_its_trace(proxy, proxy_store, upstream):
    """An agent instrumented with OpenTelemetry (in any language) propagates its span in a
    traceparent header; the call becomes that span's child. (Plain httpx here: the anthropic SDK
    puts a traceparent of its own span in when a global TracerProvider is set.)"""
    tracer = TracerProvider().get_tracer("some-agent")
    marker = uuid.uuid4().hex
    with tracer.start_as_current_span("agent step") as span:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        response = httpx.post(
            proxy.url + "/v1/messages",
            headers={"x-api-key": "sk-ant-test", **carrier},
            json={"model": "claude-test", "max_tokens": 20, "messages": [{"role": "user", "content": marker}]},
        )
    assert response.status_code == 200
    ctx = span.get_span_context()
    assert response.headers["x-agent-trace-id"] == f"{ctx.trace_id:032x}"
    assert upstream.requests[-1]["headers"]["traceparent"] == carrier["traceparent"]  # forwarded as sent
    call = wait_for_call(proxy_store, marked(marker))
    assert call.trace_id == f"{ctx.trace_id:032x}"
    assert call.parent_span_id == f"{ctx.span_id:016x}"


def test_feedback_endpoint_sets_the_outcome_of_a_run(proxy, proxy_store):
    run_id = f"ticket-{uuid.uuid4().hex[:8]}"
    client = openai.OpenAI(
        base_url=proxy.openai_base_url, api_key="sk-test", max_retries=0, default_headers={"X-Agent-Trace-Id": run_id}
    )
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": run_id}])

    response = httpx.post(
        f"{proxy.url}/agent-tracer/v1/traces/{run_id}/feedback",
        json={"outcome": "success", "rating": 4.5, "comment": "solved on first try"},
    )
    assert response.status_code == 202
    body = response.json()
    assert body["trace_id"] == trace_id_for(run_id) and body["status"] == "accepted" and body["id"]

    detail = wait_for_trace(proxy_store, trace_id_for(run_id), lambda d: d.trace.outcome is not None and d.calls)
    assert (detail.trace.outcome, detail.trace.rating, detail.trace.comment) == ("success", 4.5, "solved on first try")
    assert [f.source for f in detail.feedback] == ["proxy"]


def test_feedback_endpoint_takes_a_correction(proxy, proxy_store):
    run_id = f"ticket-{uuid.uuid4().hex[:8]}"
    client = openai.OpenAI(
        base_url=proxy.openai_base_url, api_key="sk-test", max_retries=0, default_headers={"X-Agent-Trace-Id": run_id}
    )
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": run_id}])
    correction = {"content": "Shipped.", "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A1"}}]}
    response = httpx.post(
        f"{proxy.url}/agent-tracer/v1/traces/{run_id}/feedback", json={"outcome": "failure", "correction": correction}
    )
    assert response.status_code == 202
    detail = wait_for_trace(proxy_store, trace_id_for(run_id), lambda d: d.feedback and d.calls)
    assert detail.feedback[0].correction == {
        "role": "assistant",
        "content": "Shipped.",
        "tool_calls": [{"type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "A1"}'}}],
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"correction": {"tool_calls": [{"arguments": {}}]}}', "tool call 1 needs a tool name"),
        (b"not json", "JSON object"),
        (b'{"rating": 9}', "rating"),
        (b'{"score": 5}', "Unknown field(s) score"),
        (b"{}", "at least one of"),
        (b'{"outcome": "success", "comment": 5}', "comment"),
    ],
)
def test_bad_feedback_is_400_with_the_reason(proxy, body, message):
    response = httpx.post(
        f"{proxy.url}/agent-tracer/v1/traces/run-1/feedback", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_traces_show_and_rate_take_the_agents_own_run_id(proxy, proxy_store):
    from click.testing import CliRunner

    from agent_tracer.cli import main

    run_id = f"order {uuid.uuid4().hex[:6]}"
    openai.OpenAI(
        base_url=proxy.openai_base_url,
        api_key="sk-test",
        max_retries=0,
        default_headers={"X-Agent-Trace-Id": run_id, "X-Agent-Name": "orders"},
    ).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": run_id}])
    wait_for_trace(proxy_store, trace_id_for(run_id), lambda d: d.calls)
    shown = CliRunner().invoke(main, ["traces", "show", run_id, "--db", proxy.db_url])
    assert shown.exit_code == 0, shown.output
    assert trace_id_for(run_id) in shown.output and "orders" in shown.output
    rated = CliRunner().invoke(main, ["traces", "rate", run_id, "--rating", "2", "--db", proxy.db_url])
    assert rated.exit_code == 0, rated.output
    assert proxy_store.get_trace(run_id).trace.rating == 2
