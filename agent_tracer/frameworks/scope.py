"""What every framework adapter shares: ids, the trace context made current, and the payloads.

A framework tells an adapter "a run started", "a tool ended" through its own hooks; the adapter
turns each into the same payloads `@trace_agent` and `@trace_tool` hand to the writer, so a
framework's run lands in the store as our own decorators would have stored it.

Model calls are never stored by an adapter: the transport capture (`capture.py`) records every
call the framework's SDK makes over httpx, and finds its trace and parent in the OpenTelemetry
context. So an adapter makes a `Scope` current while the framework runs a trace, an agent or a
tool: a non-recording span holding our ids, which tasks and threads started inside inherit as
they inherit every context variable. A call a framework reports in its own span too (a
`generation` span, an LLM callback) is therefore stored once, by the transport; adapters count
those spans as `model_spans_left_to_transport`.

A scope is left only from the context that entered it. The Agents SDK ends its spans where it
started them; LangChain's async end callbacks run in a copy of the context (`@shielded`), where
leaving is impossible: the scope is then closed instead, and a closed scope's span reads as the
span it replaced, so the context it stays in behaves as before the run. `context_mismatches`
counts those.
"""

from __future__ import annotations

import hashlib
import threading
import time
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from agent_tracer import runtime as _runtime
from agent_tracer.records import AgentRunPayload, SpanIds, ToolPayload, jsonable
from agent_tracer.run_ids import trace_id_for


class AdapterStats:
    """Counts of what one adapter saw; `agent_tracer.frameworks.stats()` returns them all."""

    FIELDS = ("runs", "agent_runs", "tool_executions", "model_spans_left_to_transport", "errors", "context_mismatches")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def trace_hex(framework_id: str) -> str:
    """A framework's trace or run id as our 32-hex trace id: its hex part when it has 32 hex
    digits (`trace_<32 hex>`, a UUID), else a hash of it."""
    compact = framework_id.lower().replace("-", "")
    compact = compact.partition("_")[2] if compact.startswith("trace_") else compact
    return trace_id_for(compact)


def span_hex(framework_id: str) -> str:
    """A framework's span or run id as a 16-hex span id: a hash of the whole id, since a prefix
    is not unique (LangChain's time-ordered UUIDs share their first 12 hex digits within a
    millisecond)."""
    return hashlib.sha256(framework_id.encode("utf-8")).hexdigest()[:16]


def epoch_ns(iso: str | None, default: int) -> int:
    """Nanoseconds since the epoch of an ISO 8601 time (naive is UTC), or `default`."""
    if not iso:
        return default
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return default
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1e9)


class ScopeSpan(NonRecordingSpan):
    """The span a `Scope` makes current: our ids while the framework runs, then (closed) the
    span it replaced, so a context the framework leaves it in reads as if it never had it."""

    def __init__(self, context: SpanContext, previous: trace.Span) -> None:
        super().__init__(context)
        self.previous = previous
        self.closed = False

    def get_span_context(self) -> SpanContext:
        return self.previous.get_span_context() if self.closed else super().get_span_context()


def in_framework_run(span: trace.Span | None = None) -> bool:
    """Whether `span` (default: the current one) is an open framework run's scope, or lies in one."""
    span = span if span is not None else trace.get_current_span()
    while isinstance(span, ScopeSpan):
        if not span.closed:
            return True
        span = span.previous
    return False


_entered: ContextVar[int] = ContextVar("agent_tracer_framework_scope", default=0)
"""Set where a scope is entered: resetting it tells whether a scope is left from that context."""


class Scope:
    """Our ids for one framework run or span, current in the OpenTelemetry context while it runs.

    `enter` and `exit` are called by the framework's hooks, in the context the framework runs
    the span in; model calls made in between (in that context, or in tasks and threads that copy
    it) are recorded under `ids`."""

    __slots__ = ("ids", "_span", "_token", "_mark")

    def __init__(self, ids: SpanIds) -> None:
        self.ids = ids
        self._span: ScopeSpan | None = None
        self._token: Token[Any] | None = None
        self._mark: Token[int] | None = None

    @classmethod
    def opened(cls, framework_trace_id: str, span_id: str) -> Scope:
        """A scope in the trace that is current (a `@trace_agent` around the framework's run, an
        outer framework run), or a root in the framework's own trace when none is."""
        current = trace.get_current_span().get_span_context()
        if current.is_valid:
            return cls(SpanIds(format(current.trace_id, "032x"), span_id, format(current.span_id, "016x")))
        return cls(SpanIds(trace_hex(framework_trace_id), span_id, None))

    @property
    def root(self) -> bool:
        return self.ids.parent_span_id is None

    def enter(self) -> None:
        context = SpanContext(
            int(self.ids.trace_id, 16),
            int(self.ids.span_id, 16),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        previous = trace.get_current_span()
        while isinstance(previous, ScopeSpan) and previous.closed:  # a closed scope left here: skip it
            previous = previous.previous
        self._span = ScopeSpan(context, previous)
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        self._mark = _entered.set(_entered.get() + 1)

    def exit(self, stats: AdapterStats) -> None:
        """Close the scope, and leave it if this is the context that entered it (else it stays
        there, closed: it then reads as the span it replaced)."""
        if self._span is None or self._token is None or self._mark is None:
            return
        self._span.closed = True
        token, mark = self._token, self._mark
        self._token = self._mark = None
        try:
            _entered.reset(mark)
        except ValueError:  # ended in another context than it started (LangChain's async end callbacks)
            stats.add("context_mismatches")
            return
        otel_context.detach(token)


def submit_run(
    rt: _runtime.Runtime,
    ids: SpanIds,
    *,
    name: str,
    started_ns: int,
    ended_ns: int | None = None,
    input: Any = None,
    output: Any = None,
    error: str | None = None,
    task: str | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    source: str,
) -> None:
    """An agent run's payload, as `@trace_agent` builds it; a root one makes the trace's row."""
    payload = AgentRunPayload(
        ids=ids,
        name=name,
        input=jsonable(input),
        output=jsonable(output),
        error=error,
        started_ns=started_ns,
        ended_ns=ended_ns or time.time_ns(),
        root=ids.parent_span_id is None,
        task=task,
        tags=list(tags or ()),
        metadata=jsonable(metadata or {}),
        source=source,
    )
    rt.submit(payload)


def submit_tool(
    rt: _runtime.Runtime,
    ids: SpanIds,
    *,
    name: str,
    arguments: Any,
    result: Any,
    error: str | None,
    started_ns: int,
    ended_ns: int | None = None,
    source: str,
) -> None:
    """A tool execution's payload, as `@trace_tool` builds it."""
    rt.submit(
        ToolPayload(
            ids=ids,
            name=name,
            arguments=jsonable(arguments),
            result=jsonable(result) if error is None else None,
            error=error,
            started_ns=started_ns,
            ended_ns=ended_ns or time.time_ns(),
            source=source,
        )
    )
