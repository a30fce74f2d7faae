"""agent-tracer: record every LLM call an agent makes, then turn the records into a tuned model.

The public API is this module's `__all__`; everything else may change between releases.

    import agent_tracer
    agent_tracer.init()                                 # SQLite file by default; AGENT_TRACER_DB or db=

    @agent_tracer.trace_agent(name="support-agent")
    def run(task): ...                                  # every openai / anthropic SDK call inside is captured

    agent_tracer.record_outcome(trace_id, "success", rating=5)
"""

from __future__ import annotations

import atexit
import sys
from typing import TYPE_CHECKING, Any

from agent_tracer.errors import AgentTracerError, ConfigError, StoreError, TraceNotFound

if TYPE_CHECKING:
    from agent_tracer.config import TracerConfig
    from agent_tracer.decorators import trace_agent, trace_tool

__all__ = [
    "AgentTracerError",
    "ConfigError",
    "StoreError",
    "TraceNotFound",
    "current_trace_id",
    "flush",
    "init",
    "record_outcome",
    "stats",
    "trace_agent",
    "trace_tool",
    "uninstrument",
]


def _stop_at_exit() -> None:
    """Write what is queued when the process exits: registered when the package is imported (the
    runtime itself loads only with `init()`), so it runs after the exit handlers registered later."""
    runtime = sys.modules.get("agent_tracer.runtime")
    if runtime is not None:
        runtime.stop()


atexit.register(_stop_at_exit)


def __getattr__(name: str) -> Any:
    """The decorators, `frameworks` and `__version__`, imported on first use: importing the
    package (as the CLI does) loads no OpenTelemetry SDK and no codec until capturing is asked for."""
    if name in ("trace_agent", "trace_tool"):
        from agent_tracer import decorators

        value = getattr(decorators, name)
    elif name == "__version__":
        from agent_tracer.runtime import VERSION as value
    elif name == "frameworks":  # the adapters' package: `agent_tracer.frameworks.langchain.callback_handler()`
        import agent_tracer.frameworks as value
    else:
        raise AttributeError(f"module 'agent_tracer' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), "trace_agent", "trace_tool", "frameworks", "__version__"})


def init(db: str | None = None, *, frameworks: str | list[str] | None = None, **settings: Any) -> TracerConfig:
    """Start capturing: wrap the httpx transports, start the writer. Idempotent.

    `db` is a SQLAlchemy URL (default `AGENT_TRACER_DB`, else `sqlite:///agent_tracer.db`); other
    settings are the fields of `TracerConfig` (spill_path, otlp_endpoint, capture_content, …).
    `frameworks="auto"` also turns on the adapters of the agent frameworks installed (the OpenAI
    Agents SDK, LangChain / LangGraph, PydanticAI), or a list names them: see `agent_tracer.frameworks`.
    The database is not touched here: if it is down, calls are still captured, retried and spilled.
    """
    from agent_tracer import runtime as _runtime
    from agent_tracer.config import TracerConfig

    unknown = set(settings) - TracerConfig.field_names()
    if unknown:
        raise ConfigError(f"unknown init() settings: {', '.join(sorted(unknown))}")
    if frameworks:
        from agent_tracer import frameworks as _frameworks

        _frameworks.names(frameworks)  # an unknown name is an error before anything starts
    config = _runtime.start(TracerConfig(db=db or "", **settings)).config
    if frameworks:
        _frameworks.instrument(frameworks)
    return config


def uninstrument(timeout: float | None = None) -> None:
    """Stop capturing: restore the transports, write what is queued (spill the rest), close the store."""
    from agent_tracer import runtime as _runtime

    adapters = sys.modules.get("agent_tracer.frameworks")
    if adapters is not None:
        adapters.uninstrument()
    _runtime.stop(timeout)


def current_trace_id() -> str | None:
    """The id of the trace being recorded in this context (32 hex characters), or None."""
    from agent_tracer.recorder import current_span_ids

    ids = current_span_ids()
    return ids[0] if ids else None


def record_outcome(
    trace_id: str | None = None,
    outcome: str | None = None,
    *,
    rating: float | None = None,
    comment: str | None = None,
    label: str | None = None,
    db: str | None = None,
) -> None:
    """Attach an outcome (success, failure, …), a 0-5 rating, a comment or a label to a trace.

    Inside a process that called `init()`, it goes through the writer like everything else (never
    blocks, never fails the agent). Elsewhere (a review tool, a batch job) it writes to the store
    at `db` / AGENT_TRACER_DB directly. `trace_id` defaults to the current trace.
    """
    from agent_tracer import runtime as _runtime
    from agent_tracer.config import TracerConfig
    from agent_tracer.feedback import feedback_row
    from agent_tracer.records import FeedbackPayload

    trace_id = trace_id or current_trace_id()
    rt = _runtime.current()
    row = feedback_row(trace_id or "", outcome, rating, comment, label, source="api")
    if rt is not None and db is None:
        rt.submit(FeedbackPayload(row))
        return
    from agent_tracer.store import TraceStore

    store = TraceStore(TracerConfig(db=db or "").db)
    try:
        store.write([("feedback", row)])
    finally:
        store.close()


def flush(timeout: float | None = 10.0) -> bool:
    """Wait until everything captured so far is in the store (or spilled); False on time-out."""
    from agent_tracer import runtime as _runtime

    rt = _runtime.current()
    return rt.exporter.flush(timeout) if rt is not None else True


def stats() -> dict[str, int]:
    """Counts of spans: captured, written, retried, spilled, reloaded, dropped, lost (held by an
    earlier process that was killed, counted when this one started), capture_errors, and merged
    (model calls stored once though seen twice: by the transport and in a framework's span)."""
    from agent_tracer import runtime as _runtime
    from agent_tracer.exporter import CaptureStats

    rt = _runtime.current()
    return rt.stats.snapshot() if rt is not None else dict.fromkeys(CaptureStats.FIELDS, 0)
