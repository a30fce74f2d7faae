"""An in-process OpenTelemetry `SpanProcessor` for frameworks that emit GenAI spans themselves
(PydanticAI; Google ADK, Strands and the like emit the same conventions).

Each span that ends is turned into the OTLP span model (`agent_tracer.otlp.spans.Span`, no
protobuf on the way) and mapped by the same mapper as `POST /v1/traces` (`otlp/mapping.py`): an
agent span is an agent run, a tool span a tool execution with its arguments and result, a chat
span a model call. The records go to the running capture's writer (`agent_tracer.runtime`), so a
dead store spills to the spill file like every other capture; `on_end` never blocks on the store
and never raises into the framework (a failure is counted in `stats.errors` and in
`agent_tracer.stats()["capture_errors"]`, logged once).

A model call is stored once. While the transport capture is on (every `agent_tracer.init()`), it
records each call the framework's SDK makes over httpx in a format it decodes (OpenAI, Anthropic)
with its whole request and response, and finds its trace and parent in the OpenTelemetry context,
where the framework's own chat span is current: so the call lands in the framework's trace, under
its chat span. The transport notes that span (`recorder.WireCalls`) when the request goes out,
which is always before the span ends; a chat span found there is not stored again (counted as
`model_spans_left_to_transport`: the two copies merged into the transport's). A chat span the
transport did not record (Gemini through google-genai, a client that is not httpx, a runtime
started with `instrument=False`) is stored as the model call, from what the span carries
(`model_calls_stored`). The store's own match by response id (`store/same_calls.py`) is the net
under both: a copy that reaches it anyway is merged there.

Only spans of the instrumentation scopes given are read (PydanticAI's is "pydantic-ai"), so the
other spans of a shared TracerProvider (a web request's, agent-tracer's own) are left alone.
Spans that are not stored (a chat span left to the transport, PydanticAI's "running tools"
grouping span) are skipped in the tree: a stored span hangs under its nearest stored ancestor.
The model call the transport stores keeps the chat span's id as its parent, which is not stored;
the UI shows such a call at the top of its trace.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from agent_tracer import runtime as _runtime
from agent_tracer.frameworks.scope import AdapterStats
from agent_tracer.otlp.mapping import kind_of, span_records
from agent_tracer.otlp.spans import Event, Span
from agent_tracer.records import MadeRecords

logger = logging.getLogger("agent_tracer")

KEPT_WITH_TRANSPORT = ("agent_run", "tool_execution")
"""The span kinds stored while the transport capture stores the model calls."""


class SpanStats(AdapterStats):
    FIELDS = (*AdapterStats.FIELDS, "model_calls_stored", "spans_skipped")  # type: ignore[assignment]  # longer tuple
    """`model_calls_stored`: chat spans stored as model calls (the transport did not record
    them); `model_spans_left_to_transport`: chat spans the transport recorded too, merged into
    its copy; `spans_skipped`: spans of the framework's scope in no stored kind (a grouping span)."""


class GenAISpanProcessor(SpanProcessor):
    """An OpenTelemetry SDK `SpanProcessor` that stores the GenAI spans of the given
    instrumentation scopes through agent-tracer's writer."""

    def __init__(self, scopes: Iterable[str], *, source: str) -> None:
        self.scopes = frozenset(scopes)
        self.source = source
        self.stats = SpanStats()
        self.enabled = True
        self._lock = threading.Lock()
        self._open: dict[int, tuple[int | None, Any]] = {}
        """span id → (its parent's span id, the span), while it is open."""

    # -- the SpanProcessor interface ------------------------------------------------------------

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        rt = _runtime.current()
        if rt is None or not self.enabled or not self._ours(span):
            return
        parent = span.parent.span_id if span.parent is not None else None
        with self._lock:
            self._open[span.context.span_id] = (parent, span)

    def on_end(self, span: Any) -> None:
        rt = _runtime.current()
        if rt is None or not self.enabled or not self._ours(span):
            return
        try:
            self._ended(rt, span)
        except Exception as exc:  # tracing never breaks the agent: counted, logged once
            self.stats.add("errors")
            rt.capture_failed(f"the {self.source} span processor (span end)", exc)

    def shutdown(self) -> None:
        """Nothing held here: records go to agent-tracer's writer as spans end."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """See `shutdown`; `agent_tracer.flush()` waits for the writer."""
        return True

    # -- what an ended span becomes --------------------------------------------------------------

    def _ours(self, span: Any) -> bool:
        scope = getattr(span, "instrumentation_scope", None)
        return scope is not None and scope.name in self.scopes

    @staticmethod
    def _stored(rt: _runtime.Runtime, span: Any) -> bool:
        """Whether an open span will be stored, as far as its attributes tell now (frameworks set
        them after the start: ADK names its operation then): a chat span is taken for left to the
        transport while it is on, so a span under it hangs under an ancestor surely stored."""
        kind = kind_of(_attributes_only(span))
        if kind in KEPT_WITH_TRANSPORT:
            return True
        return kind == "llm_call" and not rt.patch.installed

    def _ended(self, rt: _runtime.Runtime, span: Any) -> None:
        span_id = span.context.span_id
        with self._lock:
            self._open.pop(span_id, None)
            parent = self._stored_ancestor(rt, span.parent.span_id if span.parent is not None else None)
        converted = to_otlp_span(span, parent)
        kind = kind_of(converted)
        if kind == "llm_call" and rt.wire_calls.take(span_id):
            self.stats.add("model_spans_left_to_transport")
            return
        if kind in ("unmapped_span", "workflow"):  # ADK's invoke_workflow: its agent run is the root here
            self.stats.add("spans_skipped")
            return
        kind, records = span_records(converted)
        for name, row in records:
            if name == "trace":
                row["source"] = self.source
        self.stats.add(_COUNTED[kind])
        if kind == "agent_run" and parent is None:
            self.stats.add("runs")
        rt.submit(MadeRecords(records))

    def _stored_ancestor(self, rt: _runtime.Runtime, parent: int | None) -> int | None:
        """The nearest ancestor that is stored (or not ours: a `@trace_agent` span, a remote
        parent); called with the lock held."""
        while parent is not None and parent in self._open:
            grand, open_span = self._open[parent]
            if self._stored(rt, open_span):
                return parent
            parent = grand
        return parent


def _attributes_only(span: Any) -> Span:
    """The span as far as `kind_of` reads it (attributes and events), also while it is open."""
    return Span("", "", None, span.name, None, 0, 0, _plain(dict(span.attributes or {})), _events(span))


def to_otlp_span(span: Any, parent_span_id: int | None = None) -> Span:
    """An OpenTelemetry SDK `ReadableSpan` as the OTLP span model (what `spans.from_protobuf`
    makes of the same span once exported); `parent_span_id` replaces the span's parent."""
    context = span.context
    status = span.status
    scope = span.instrumentation_scope
    resource = getattr(span, "resource", None)
    events = _events(span)
    status_code = int(getattr(status.status_code, "value", 0)) if status is not None else 0
    status_message = (status.description or "") if status is not None else ""
    return Span(
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        parent_span_id=format(parent_span_id, "016x") if parent_span_id else None,
        name=span.name,
        kind=_KINDS.get(int(getattr(span.kind, "value", 0))),
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        attributes=_plain(dict(span.attributes or {})),
        events=events,
        status_code=status_code,
        status_message=status_message,
        resource=_plain(dict(resource.attributes)) if resource is not None else {},
        scope=scope.name if scope is not None else None,
    )


_COUNTED = {"agent_run": "agent_runs", "tool_execution": "tool_executions", "llm_call": "model_calls_stored"}

_KINDS = {0: "internal", 1: "server", 2: "client", 3: "producer", 4: "consumer"}
"""The SDK's `SpanKind` values (INTERNAL is 0 there, 1 in OTLP) → `spans.SPAN_KINDS` names."""


def _events(span: Any) -> list[Event]:
    return [Event(e.name, e.timestamp or 0, _plain(dict(e.attributes or {}))) for e in span.events or ()]


def _plain(attributes: dict[str, Any]) -> dict[str, Any]:
    """Attribute values as the OTLP decoder gives them: sequences (tuples in the SDK) as lists."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in attributes.items()}


class OneProcessor:
    """A framework's span processor, one per process, made on first use, and the TracerProviders
    it was added to (once each): what each GenAI-span framework's module (`pydantic_ai.py`,
    `google_adk.py`) keeps."""

    def __init__(self, scopes: Iterable[str], source: str) -> None:
        self.scopes, self.source = tuple(scopes), source
        self.current: GenAISpanProcessor | None = None
        self._providers: list[Any] = []
        self._lock = threading.Lock()

    def get(self) -> GenAISpanProcessor:
        with self._lock:
            if self.current is None:
                self.current = GenAISpanProcessor(self.scopes, source=self.source)
            return self.current

    def add_to(self, provider: Any) -> None:
        """Add the processor to `provider`, unless it was added already."""
        found = self.get()
        with self._lock:
            if not any(provider is known for known in self._providers):
                provider.add_span_processor(found)
                self._providers.append(provider)
