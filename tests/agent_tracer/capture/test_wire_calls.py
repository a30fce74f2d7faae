"""The transport's note of the spans it recorded calls in: bounded, oldest first out."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from agent_tracer.recorder import WireCalls


def test_wire_calls_keep_the_newest_spans_up_to_the_limit_and_forget_what_is_taken():
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("agent run") as run:
        spans = [tracer.start_span(f"call {i}") for i in range(10)]
    calls = WireCalls(limit=4)
    for span in spans:
        calls.add(span)  # the call's span and its parent, the run's
    ids = [span.get_span_context().span_id for span in spans]
    assert not any(calls.take(span_id) for span_id in ids[:6])  # past the limit, the oldest went
    assert calls.take(ids[9])
    assert not calls.take(ids[9])  # taken once
    assert calls.take(ids[8]) and calls.take(ids[7]) and calls.take(ids[6])
    assert not calls.take(run.get_span_context().span_id)  # noted first, gone first
