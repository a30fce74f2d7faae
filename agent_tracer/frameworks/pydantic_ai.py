"""PydanticAI (`pydantic-ai` / `pydantic-ai-slim`): its own OpenTelemetry GenAI spans, stored in process.

    agent_tracer.init(frameworks="auto")                 # or frameworks=["pydantic-ai"]; or, after init():
    agent_tracer.frameworks.pydantic_ai.instrument()

PydanticAI instruments itself (`invoke_agent NAME`, `execute_tool NAME`, `chat MODEL` spans in the
GenAI conventions). `instrument()` turns that on for every agent with
`Agent.instrument_all(InstrumentationSettings(tracer_provider=...))` and hands the spans to
`otel_spans.GenAISpanProcessor`, which maps them as `POST /v1/traces` does:

- the agent run is a trace named after the agent (`Agent(name=...)`, else "agent"), its input the
  user prompt (the trace's task), its output the final result;
- each tool call is a tool execution with the arguments the model sent and the tool's result;
- the model calls are stored by the transport capture, with their whole bodies, in the agent's
  trace; PydanticAI's `chat` spans are counted, not stored (`model_spans_left_to_transport`).

Which TracerProvider: when the app has set an SDK TracerProvider globally (Logfire, its own
exporters), the processor is added to it and PydanticAI keeps exporting wherever it did;
otherwise a private provider is made for PydanticAI, the global one is left alone. A user who
already called `Agent.instrument_all(...)` keeps those settings (content included or not): with
the global SDK provider our processor sees the spans; with a provider of their own, add
`processor()` to it (`provider.add_span_processor(agent_tracer.frameworks.pydantic_ai.processor())`).
An agent made with `instrument=False` or its own settings is left as made.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from agent_tracer.frameworks.otel_spans import GenAISpanProcessor, OneProcessor

logger = logging.getLogger("agent_tracer")

SOURCE = "pydantic-ai"
SCOPES = ("pydantic-ai",)
"""PydanticAI's instrumentation scope name."""

_lock = threading.Lock()
_one = OneProcessor(SCOPES, SOURCE)
_previous_default: Any = None
_set_default: Any = None


def current() -> GenAISpanProcessor | None:
    """The processor, if one was made in this process."""
    return _one.current


def processor() -> GenAISpanProcessor:
    """The process's span processor for PydanticAI's spans, made on first use."""
    return _one.get()


def instrument() -> GenAISpanProcessor:
    """Record PydanticAI's spans (while `agent_tracer.init()` is in force); returns the processor."""
    global _previous_default, _set_default
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings

    found = processor()
    found.enabled = True
    with _lock:
        default = Agent._instrument_default
        if _set_default is not None and default is _set_default:
            return found  # instrumented by us already
        provider = trace.get_tracer_provider()
        if isinstance(provider, TracerProvider):  # the app's own: PydanticAI keeps exporting there too
            _one.add_to(provider)
            if default is False:
                settings = InstrumentationSettings(tracer_provider=provider, include_content=True)
                _previous_default, _set_default = default, settings
                Agent.instrument_all(settings)
            return found
        if default is not False:
            logger.warning(
                "agent-tracer: PydanticAI is already instrumented with a provider of its own; add "
                "agent_tracer.frameworks.pydantic_ai.processor() to that TracerProvider to store its spans"
            )
            return found
        private = TracerProvider(resource=Resource.create({"service.name": "pydantic-ai"}))
        _one.add_to(private)
        settings = InstrumentationSettings(tracer_provider=private, include_content=True)
        _previous_default, _set_default = default, settings
        Agent.instrument_all(settings)
    return found


def uninstrument() -> None:
    """Stop recording, and give PydanticAI back the default it had (if we set ours)."""
    global _previous_default, _set_default
    if _one.current is not None:
        _one.current.enabled = False
    with _lock:
        if _set_default is None:
            return
        from pydantic_ai import Agent

        if Agent._instrument_default is _set_default:
            Agent.instrument_all(_previous_default)
        _previous_default = _set_default = None
