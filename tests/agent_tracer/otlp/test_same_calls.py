"""One store, two writers of the same model calls: the agent's own transport capture
(`agent_tracer.init`) and `agent-tracer collect` receiving the OpenTelemetry `openai-v2`
instrumentation's spans of those calls over OTLP. Each call is stored once (matched by response
id, `store/same_calls.py`): the transport's copy, with its raw bodies, in the span's place under the
agent run, and the merges are counted by the writer that came second (`/metrics` of the
collector, or `agent_tracer.stats()`)."""

from __future__ import annotations

import inspect
import time

import pytest
from otlp_loop import CollectProcess, genai_spans_loop, otlp_provider

import agent_tracer
from agent_tracer.store import TraceStore

SPANS = 5
"""What the loop exports: the agent run, two tool executions, two model calls."""


@pytest.mark.parametrize("first", ["transport", "spans"])
def test_a_call_captured_and_received_over_otlp_is_stored_once(client, tmp_path, monkeypatch, first):
    pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    import wrapt
    from opentelemetry.instrumentation import openai_v2

    # 2.3b0 calls wrap_function_wrapper(module=…), which wrapt 2 renamed to target=.
    if "module" not in inspect.signature(wrapt.wrap_function_wrapper).parameters:
        monkeypatch.setattr(
            openai_v2,
            "wrap_function_wrapper",
            lambda module, name, wrapper: wrapt.wrap_function_wrapper(module, name, wrapper),
        )
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    collector = CollectProcess(url, "--spill", str(tmp_path / "collect-spill.jsonl"))
    interval = 0.02 if first == "transport" else 60  # "spans": the transport writes when flushed
    agent_tracer.init(db=url, spill_path=str(tmp_path / "spill.jsonl"), writer="thread", flush_interval_s=interval)
    try:
        with otlp_provider(collector.traces_url) as provider:
            instrumentor = openai_v2.OpenAIInstrumentor()
            instrumentor.instrument(tracer_provider=provider)
            try:
                trace_id = genai_spans_loop(provider.get_tracer(__name__), client, "merged-agent")
            finally:
                instrumentor.uninstrument()
            if first == "transport":
                assert agent_tracer.flush()  # before the provider's shutdown exports the spans
        deadline = time.monotonic() + 10
        while collector.metrics().get('agent_tracer_otlp_store_spans_total{stage="written"}', 0) < SPANS:
            assert time.monotonic() < deadline, "the collector did not write the spans"
            time.sleep(0.05)
        assert agent_tracer.flush()
        merged_here = agent_tracer.stats()["merged"]
        merged_there = collector.metrics()['agent_tracer_otlp_store_spans_total{stage="merged"}']
    finally:
        agent_tracer.uninstrument()
        collector.stop()
    with TraceStore(url) as store:
        traces = store.traces()
        detail = store.get_trace(trace_id)
    assert [t.id for t in traces] == [trace_id] and detail.trace.name == "merged-agent"
    [run] = detail.agent_runs
    assert len(detail.calls) == 2
    assert (merged_here, merged_there) == ((0, 2) if first == "transport" else (2, 0))
    for call in detail.calls:
        assert call.raw_request and call.api == "openai.chat" and call.response_id  # the transport's copy
        assert call.parent_span_id == run.id  # in the span's place: under the agent run
    assert [(c.input_tokens, c.output_tokens) for c in detail.calls] == [(16, 10), (24, 7)]
    assert [tool.name for tool in detail.tools] == ["get_weather", "get_time"]


@pytest.mark.parametrize("first", ["transport", "spans"])
def test_openinference_spans_without_response_ids_are_matched_by_their_text(client, tmp_path, first):
    """OpenInference's chat spans carry no response id: each is matched to the transport's copy by
    the call's text (`content_key`), under the same conditions of time and tokens."""
    pytest.importorskip("openinference.instrumentation.openai")
    from openinference.instrumentation import TracerProvider as OITracerProvider
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from otlp_loop import QUESTION, TOOL_FUNCTIONS, agent_loop

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    collector = CollectProcess(url, "--spill", str(tmp_path / "collect-spill.jsonl"))
    interval = 0.02 if first == "transport" else 60
    agent_tracer.init(db=url, spill_path=str(tmp_path / "spill.jsonl"), writer="thread", flush_interval_s=interval)
    provider = OITracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=collector.traces_url)))
    tracer = provider.get_tracer(__name__)
    tools = {tool: tracer.tool(name=tool)(function) for tool, function in TOOL_FUNCTIONS.items()}
    seen: list[str] = []

    @tracer.agent(name="openinference-merged")
    def run(question: str) -> str:
        seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))
        return agent_loop(client, question, lambda tool, arguments: tools[tool](**arguments))

    instrumentor = OpenAIInstrumentor()
    try:
        instrumentor.instrument(tracer_provider=provider)
        try:
            run(QUESTION)
        finally:
            instrumentor.uninstrument()
        if first == "transport":
            assert agent_tracer.flush()
        provider.shutdown()  # exports the spans
        deadline = time.monotonic() + 10
        while collector.metrics().get('agent_tracer_otlp_store_spans_total{stage="written"}', 0) < SPANS:
            assert time.monotonic() < deadline, "the collector did not write the spans"
            time.sleep(0.05)
        assert agent_tracer.flush()
        merged = (
            agent_tracer.stats()["merged"] + collector.metrics()['agent_tracer_otlp_store_spans_total{stage="merged"}']
        )
    finally:
        agent_tracer.uninstrument()
        collector.stop()
    with TraceStore(url) as store:
        traces = store.traces()
        detail = store.get_trace(seen[0])
    assert [t.id for t in traces] == [seen[0]] and detail.trace.name == "openinference-merged"
    [agent_run] = detail.agent_runs
    assert merged == 2 and len(detail.calls) == 2
    for call in detail.calls:
        assert call.raw_request and call.api == "openai.chat" and call.response_id  # the transport's copy
        assert call.parent_span_id == agent_run.id
    assert [tool.name for tool in detail.tools] == ["get_weather", "get_time"]
