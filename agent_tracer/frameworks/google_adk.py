"""Google ADK (`google-adk`): its own OpenTelemetry GenAI spans, stored in process.

    agent_tracer.init(frameworks="auto")                 # or frameworks=["google-adk"]; or, after init():
    agent_tracer.frameworks.google_adk.instrument()

ADK traces itself in the GenAI conventions (instrumentation scope "gcp.vertex.agent"):
`invoke_agent NAME`, `execute_tool NAME`, `generate_content MODEL`, and an `invoke_workflow NAME`
around a run. `instrument()` hands them to `otel_spans.GenAISpanProcessor`, which maps them as
`POST /v1/traces` does:

- the agent run is a trace named after the agent (`invoke_workflow` has no stored kind: skipped,
  so the agent run is the trace's root);
- each tool call is a tool execution with the arguments the model sent and the tool's result;
- each model call is stored once: Gemini through google-genai is not a format the transport
  capture decodes, so ADK's `generate_content` span is the model call, with its messages, tool
  definitions, answer and token counts (`model_calls_stored`); a call the transport does record
  (over httpx, in ADK's span) is merged into the transport's copy (`model_spans_left_to_transport`).

Content: ADK puts messages, tool arguments and results on its spans only when asked
(`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` = `SPAN_ONLY` or `SPAN_AND_EVENT`, or a
run's `RunConfig(telemetry=...)`). `instrument()` sets that variable to `SPAN_ONLY` when it is
unset, since the store is for the conversations; a value the user set is kept (then the calls
are stored without their messages). `uninstrument()` unsets what it set.

Which TracerProvider: ADK takes its tracer from the global provider. When the app has set an SDK
TracerProvider globally, the processor is added to it and ADK keeps exporting wherever it did;
when none is set yet, ADK's tracer is pointed at a private provider of ours (until
`uninstrument()`), and the global one is left alone.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from agent_tracer.frameworks.otel_spans import GenAISpanProcessor, OneProcessor

logger = logging.getLogger("agent_tracer")

SOURCE = "google-adk"
SCOPES = ("gcp.vertex.agent",)
"""ADK's instrumentation scope name."""
CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

_lock = threading.Lock()
_one = OneProcessor(SCOPES, SOURCE)
_pointed: Any = None
"""ADK's proxy tracer, while it points at our private provider."""
_set_content = False


def current() -> GenAISpanProcessor | None:
    """The processor, if one was made in this process."""
    return _one.current


def processor() -> GenAISpanProcessor:
    """The process's span processor for ADK's spans, made on first use."""
    return _one.get()


def instrument() -> GenAISpanProcessor:
    """Record ADK's spans (while `agent_tracer.init()` is in force); returns the processor."""
    global _pointed, _set_content
    from google.adk.telemetry import tracing
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    found = processor()
    found.enabled = True
    with _lock:
        if CONTENT_VARIABLE not in os.environ:
            os.environ[CONTENT_VARIABLE] = "SPAN_ONLY"
            _set_content = True
        provider = trace.get_tracer_provider()
        tracer = tracing.tracer
        if isinstance(provider, TracerProvider):  # the app's own: ADK exports there too
            _one.add_to(provider)
            return found
        if _pointed is not None:
            return found  # pointed at ours already
        if not isinstance(tracer, trace.ProxyTracer) or tracer._real_tracer is not None:
            logger.warning(
                "agent-tracer: Google ADK's tracer is bound to a provider that is not the OpenTelemetry SDK's; "
                "add agent_tracer.frameworks.google_adk.processor() to it to store ADK's spans"
            )
            return found
        private = TracerProvider(resource=Resource.create({"service.name": "google-adk"}))
        private.add_span_processor(found)
        tracer._real_tracer = private.get_tracer(
            tracer._instrumenting_module_name, tracer._instrumenting_library_version, tracer._schema_url
        )
        _pointed = tracer
    return found


def uninstrument() -> None:
    """Stop recording; give ADK's tracer back to the global provider and unset the content
    variable, if we set them."""
    global _pointed, _set_content
    if _one.current is not None:
        _one.current.enabled = False
    with _lock:
        if _pointed is not None:
            _pointed._real_tracer = None
            _pointed = None
        if _set_content:
            os.environ.pop(CONTENT_VARIABLE, None)
            _set_content = False
