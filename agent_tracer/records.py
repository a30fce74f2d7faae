"""What capture hands to the writer: one payload per finished span, turned into store rows later.

Payloads are built on the agent's thread, so they hold what was seen (bytes, decoded objects,
clock readings) and nothing more; `records()` runs on the writer thread and does the costly part:
text decoding, secret scrubbing, row dicts for `TraceStore.write`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from agent_tracer.canonical import Codec
from agent_tracer.decode import DecodedCall, decode_call
from agent_tracer.redact import has_secret, scrub, scrub_text

Record = tuple[str, dict[str, Any]]
MAX_VALUE_CHARS = 65_536
"""Agent inputs, outputs and tool results longer than this (as JSON) are stored truncated."""


def utc(ns: int) -> datetime:
    """Naive UTC datetime from epoch nanoseconds, as the store keeps them."""
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).replace(tzinfo=None)


_SCALARS = frozenset((bool, int, float, type(None)))


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of a Python value (repr for what JSON cannot hold), truncated when huge."""
    kind = type(value)
    if kind in _SCALARS or (kind is str and len(value) * 6 + 2 <= MAX_VALUE_CHARS):
        return value  # already JSON, and short even with every character escaped: no round trip
    if kind is dict or kind is list or kind is tuple:
        budget = [MAX_VALUE_CHARS]
        copied = _json_copy(value, budget, 0)
        if copied is not _NOT_PLAIN:
            return copied  # plain JSON data that cannot reach the limit: what the round trip would give
    text = json.dumps(value, default=repr, ensure_ascii=False)
    if len(text) > MAX_VALUE_CHARS:
        return text[:MAX_VALUE_CHARS] + f"… [{len(text) - MAX_VALUE_CHARS} more characters]"
    return json.loads(text)


_NOT_PLAIN = object()
_MAX_INT = 2**63


def _json_copy(value: Any, budget: list[int], depth: int) -> Any:
    """A copy of `value` as `json.loads(json.dumps(value))` would make it, when it is made only of
    dicts with str keys, lists, tuples, str and scalars, and its JSON (every character counted as
    escaped) fits in `budget`; else `_NOT_PLAIN`, and the caller takes the round trip."""
    kind = type(value)
    if kind is str:
        budget[0] -= len(value) * 6 + 4
        return value if budget[0] >= 0 else _NOT_PLAIN
    if kind is bool or value is None:
        budget[0] -= 7
        return value if budget[0] >= 0 else _NOT_PLAIN
    if kind is int:
        budget[0] -= 22
        return value if budget[0] >= 0 and -_MAX_INT < value < _MAX_INT else _NOT_PLAIN
    if kind is float:
        budget[0] -= 28
        return value if budget[0] >= 0 else _NOT_PLAIN
    if depth >= 32:
        return _NOT_PLAIN
    if kind is dict:
        budget[0] -= 2
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                return _NOT_PLAIN
            budget[0] -= len(key) * 6 + 4
            copied = _json_copy(item, budget, depth + 1)
            if copied is _NOT_PLAIN:
                return _NOT_PLAIN
            out[key] = copied
        return out
    if kind is list or kind is tuple:
        budget[0] -= 2
        items = []
        for item in value:
            copied = _json_copy(item, budget, depth + 1)
            if copied is _NOT_PLAIN:
                return _NOT_PLAIN
            items.append(copied)
        return items
    return _NOT_PLAIN


@dataclass(slots=True)
class SpanIds:
    trace_id: str
    span_id: str
    parent_span_id: str | None

    def row(self, started_ns: int, ended_ns: int) -> dict[str, Any]:
        """The columns every span's row has: ids, start, end, latency."""
        return {
            "id": self.span_id,
            "trace_id": self.trace_id,
            "parent_span_id": self.parent_span_id,
            "started_at": utc(started_ns),
            "ended_at": utc(ended_ns),
            "latency_ms": (ended_ns - started_ns) / 1e6,
        }


@dataclass(slots=True)
class RunLabels:
    """What a model call says about its trace when no agent span does (the proxy's clients name
    and tag their runs in headers): stored on the trace's row."""

    name: str | None = None
    tags: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class MadeRecords:
    """A payload whose records are already made (OTLP spans mapped in the ingest's request
    handler, or by an in-process span processor): the writer takes it as it takes the others."""

    __slots__ = ("_records",)

    def __init__(self, records: list[Record]) -> None:
        self._records = records

    def records(self) -> list[Record]:
        return self._records


@dataclass(slots=True)
class LLMCallPayload:
    """A model call as the transport saw it: bytes, clock readings, and how the body ended."""

    ids: SpanIds
    codec: Codec
    endpoint: str
    raw_request: bytes
    raw_response: bytes
    streamed: bool
    """The response was a server-sent event stream."""
    ending: str
    http_status: int | None
    error: str | None
    """The exception that ended the call, as text, if one did."""
    started_ns: int
    ended_ns: int
    latency_ms: float
    ttft_ms: float | None
    source: str
    route: str | None = None
    fallback_reason: str | None = None
    labels: RunLabels | None = None
    decoded: DecodedCall | None = None
    """Set on the agent's thread when the span needed it; otherwise decoded by `records()`."""

    def records(self) -> list[Record]:
        """Raises ValueError (CodecError) when the request turns out not to be of the codec's format."""
        decoded = self.decoded or decode_call(
            self.codec,
            self.raw_request,
            self.raw_response,
            sse=self.streamed,
            ending=self.ending,
            http_status=self.http_status,
            error=self.error,
        )
        request, response = decoded.request, decoded.response
        raw_request = self.raw_request.decode("utf-8", "replace")
        raw_response = self.raw_response.decode("utf-8", "replace")
        request_row = request.to_dict()
        response_row = response.to_dict() if response else None
        if has_secret(raw_request):
            raw_request, request_row = scrub_text(raw_request), scrub(request_row)
        if has_secret(raw_response):
            raw_response, response_row = scrub_text(raw_response), scrub(response_row)
        tool_calls = response.tool_calls if response else []
        started, ended = utc(self.started_ns), utc(self.ended_ns)
        call = {
            "id": self.ids.span_id,
            "trace_id": self.ids.trace_id,
            "parent_span_id": self.ids.parent_span_id,
            "provider": self.codec.provider,
            "api": self.codec.api,
            "operation": self.codec.operation,
            "request_model": request.model,
            "response_model": response.model if response else None,
            "response_id": response.id if response else None,
            "request": request_row,
            "response": response_row,
            "raw_request": raw_request,
            "raw_response": raw_response or None,
            "input_tokens": response.input_tokens if response else None,
            "output_tokens": response.output_tokens if response else None,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "streamed": self.streamed,
            "status": decoded.status,
            "http_status": self.http_status,
            "error": scrub_text(decoded.error) if decoded.error else None,
            "finish_reasons": response.finish_reasons if response else [],
            "has_tool_calls": bool(tool_calls),
            "tool_names": [c.get("function", {}).get("name") for c in tool_calls],
            "route": self.route,
            "fallback_reason": self.fallback_reason,
            "endpoint": self.endpoint,
            "started_at": started,
            "ended_at": ended,
        }
        trace = {
            "id": self.ids.trace_id,
            "name": f"{self.codec.operation} {request.model or ''}".strip(),
            "started_at": started,
            "ended_at": ended,
            "source": self.source,
        }
        if self.labels is not None:
            trace.update(tags=self.labels.tags, meta=scrub(self.labels.meta))
            if self.labels.name:
                trace["name"] = scrub_text(self.labels.name)
        return [("trace", trace), ("llm_call", call)]


@dataclass(slots=True)
class AgentRunPayload:
    ids: SpanIds
    name: str
    input: Any
    output: Any
    error: str | None
    started_ns: int
    ended_ns: int
    root: bool
    """The outermost `trace_agent` of its trace: it names the trace and sets its status."""
    task: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "decorator"
    """What recorded the run: "decorator", or a framework adapter ("openai-agents", "langchain")."""

    def records(self) -> list[Record]:
        run = self.ids.row(self.started_ns, self.ended_ns)
        run.update(
            name=self.name,
            input=scrub(self.input),
            output=scrub(self.output),
            error=scrub_text(self.error) if self.error else None,
        )
        trace: dict[str, Any] = {"id": self.ids.trace_id, "started_at": run["started_at"], "ended_at": run["ended_at"]}
        if self.root:
            trace.update(
                authoritative=True,
                name=self.name,
                task=scrub_text(self.task) if self.task else None,
                status="error" if self.error else "ok",
                error=run["error"],
                tags=self.tags,
                meta=scrub(self.metadata),
                source=self.source,
            )
        else:  # a nested run's tags join the trace's, its metadata fills keys the trace lacks (a
            # LangGraph graph paused by interrupt() inside `@trace_agent` marks that trace)
            if self.tags:
                trace["tags"] = self.tags
            if self.metadata:
                trace["meta"] = scrub(self.metadata)
        return [("trace", trace), ("agent_run", run)]


@dataclass(slots=True)
class ToolPayload:
    ids: SpanIds
    name: str
    arguments: Any
    result: Any
    error: str | None
    started_ns: int
    ended_ns: int
    source: str = "decorator"

    def records(self) -> list[Record]:
        tool = self.ids.row(self.started_ns, self.ended_ns)
        tool.update(
            name=self.name,
            arguments=scrub(self.arguments),
            result=scrub(self.result),
            error=scrub_text(self.error) if self.error else None,
        )
        trace = {
            "id": self.ids.trace_id,
            "started_at": tool["started_at"],
            "ended_at": tool["ended_at"],
            "source": self.source,
        }
        return [("trace", trace), ("tool_execution", tool)]


@dataclass(slots=True)
class FeedbackPayload:
    row: dict[str, Any]
    """A `feedback` row: id, trace_id, outcome, rating, comment, label, source, created_at."""

    def records(self) -> list[Record]:
        return [("feedback", self.row)]
