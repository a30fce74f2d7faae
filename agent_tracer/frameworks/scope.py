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
those spans as `model_spans_left_to_transport`. A scope may also read its ids when asked
(`resolve`): the Agents SDK adapter makes one scope current per SDK trace, whose ids are those
of the agent the SDK runs at that moment, rather than switching context on every span.

A scope is left only from the context that entered it. The Agents SDK ends its spans where it
started them; LangChain's async end callbacks run in a copy of the context (`@shielded`), where
leaving is impossible: the scope is then closed instead, and a closed scope's span reads as the
span it replaced, so the context it stays in behaves as before the run. `context_mismatches`
counts those.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, SpanContext, TraceFlags

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
    if len(framework_id) == 38 and framework_id.startswith("trace_"):  # the Agents SDK's, on every run
        compact = framework_id[6:].lower()
        if _HEX32.fullmatch(compact) and compact != "0" * 32:
            return compact
    compact = framework_id.lower().replace("-", "")
    compact = compact.partition("_")[2] if compact.startswith("trace_") else compact
    return trace_id_for(compact)


_HEX32 = re.compile("[0-9a-f]{32}")


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


def span_context(trace_id: str, span_id: str) -> SpanContext:
    """Our hex ids as a sampled, local OpenTelemetry span context."""
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))


class ScopeSpan(NonRecordingSpan):
    """The span a `Scope` makes current: our ids while the framework runs, then (closed) the
    span it replaced, so a context the framework leaves it in reads as if it never had it.
    With `resolve`, its ids are asked for when read (the span the framework is in now), so an
    adapter need not make a new scope current for every span the framework opens."""

    def __init__(
        self, context: SpanContext, previous: trace.Span, resolve: Callable[[], SpanContext] | None = None
    ) -> None:
        super().__init__(context)
        self.previous = previous
        self.closed = False
        self.resolve = resolve

    def get_span_context(self) -> SpanContext:
        if self.closed:
            return self.previous.get_span_context()
        return self.resolve() if self.resolve is not None else super().get_span_context()


def in_framework_run(span: trace.Span | None = None) -> bool:
    """Whether `span` (default: the current one) is an open framework run's scope, or lies in one."""
    span = span if span is not None else trace.get_current_span()
    while type(span) is ScopeSpan:
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
    def opened(cls, framework_trace_id: str, span_id: str | None = None) -> Scope:
        """A scope in the trace that is current (a `@trace_agent` around the framework's run, an
        outer framework run), or a root in the framework's own trace when none is. `span_id`
        None: the first half of our id of the framework's trace (a run with no id of its own)."""
        current = trace.get_current_span().get_span_context()
        if current.is_valid:
            span_id = span_id or trace_hex(framework_trace_id)[:16]
            return cls(SpanIds(format(current.trace_id, "032x"), span_id, format(current.span_id, "016x")))
        trace_id = trace_hex(framework_trace_id)
        return cls(SpanIds(trace_id, span_id or trace_id[:16], None))

    @property
    def root(self) -> bool:
        return self.ids.parent_span_id is None

    def enter(self, resolve: Callable[[], SpanContext] | None = None) -> None:
        """Make the scope current; `resolve`: see `ScopeSpan`."""
        context = INVALID_SPAN_CONTEXT if resolve is not None else span_context(self.ids.trace_id, self.ids.span_id)
        previous = trace.get_current_span()
        while type(previous) is ScopeSpan and previous.closed:  # a closed scope left here: skip it
            previous = previous.previous
        self._span = ScopeSpan(context, previous, resolve)
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


def submit_run(rt: _runtime.Runtime, ids: SpanIds, **fields: Any) -> None:
    """Hand the writer an agent run's payload (`run_payload`)."""
    rt.submit(run_payload(ids, **fields))


def submit_tool(rt: _runtime.Runtime, ids: SpanIds, **fields: Any) -> None:
    """Hand the writer a tool execution's payload (`tool_payload`)."""
    rt.submit(tool_payload(ids, **fields))


def run_payload(
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
) -> AgentRunPayload:
    """An agent run's payload, as `@trace_agent` builds it; a root one makes the trace's row."""
    return AgentRunPayload(
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


def tool_payload(
    ids: SpanIds,
    *,
    name: str,
    arguments: Any,
    result: Any,
    error: str | None,
    started_ns: int,
    ended_ns: int | None = None,
    source: str,
) -> ToolPayload:
    """A tool execution's payload, as `@trace_tool` builds it."""
    return ToolPayload(
        ids=ids,
        name=name,
        arguments=jsonable(arguments),
        result=jsonable(result) if error is None else None,
        error=error,
        started_ns=started_ns,
        ended_ns=ended_ns or time.time_ns(),
        source=source,
    )
