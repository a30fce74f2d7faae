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

from agent_tracer.canonical import CanonicalRequest, CanonicalResponse
from agent_tracer.redact import has_secret, scrub, scrub_text

Record = tuple[str, dict[str, Any]]
MAX_VALUE_CHARS = 65_536
"""Agent inputs, outputs and tool results longer than this (as JSON) are stored truncated."""


def utc(ns: int) -> datetime:
    """Naive UTC datetime from epoch nanoseconds, as the store keeps them."""
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).replace(tzinfo=None)


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of a Python value (repr for what JSON cannot hold), truncated when huge."""
    text = json.dumps(value, default=repr, ensure_ascii=False)
    if len(text) > MAX_VALUE_CHARS:
        return text[:MAX_VALUE_CHARS] + f"… [{len(text) - MAX_VALUE_CHARS} more characters]"
    return json.loads(text)


@dataclass(slots=True)
class SpanIds:
    trace_id: str
    span_id: str
    parent_span_id: str | None


@dataclass(slots=True)
class LLMCallPayload:
    ids: SpanIds
    api: str
    provider: str
    operation: str
    endpoint: str
    request: CanonicalRequest
    response: CanonicalResponse | None
    raw_request: bytes
    raw_response: bytes
    started_ns: int
    ended_ns: int
    latency_ms: float
    ttft_ms: float | None
    streamed: bool
    status: str
    http_status: int | None
    error: str | None
    source: str
    route: str | None = None

    def records(self) -> list[Record]:
        raw_request = self.raw_request.decode("utf-8", "replace")
        raw_response = self.raw_response.decode("utf-8", "replace")
        request = self.request.to_dict()
        response = self.response.to_dict() if self.response else None
        if has_secret(raw_request):
            raw_request, request = scrub_text(raw_request), scrub(request)
        if has_secret(raw_response):
            raw_response, response = scrub_text(raw_response), scrub(response)
        tool_calls = self.response.tool_calls if self.response else []
        started, ended = utc(self.started_ns), utc(self.ended_ns)
        call = {
            "id": self.ids.span_id,
            "trace_id": self.ids.trace_id,
            "parent_span_id": self.ids.parent_span_id,
            "provider": self.provider,
            "api": self.api,
            "operation": self.operation,
            "request_model": self.request.model,
            "response_model": self.response.model if self.response else None,
            "response_id": self.response.id if self.response else None,
            "request": request,
            "response": response,
            "raw_request": raw_request,
            "raw_response": raw_response or None,
            "input_tokens": self.response.input_tokens if self.response else None,
            "output_tokens": self.response.output_tokens if self.response else None,
            "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms,
            "streamed": self.streamed,
            "status": self.status,
            "http_status": self.http_status,
            "error": scrub_text(self.error) if self.error else None,
            "finish_reasons": self.response.finish_reasons if self.response else [],
            "has_tool_calls": bool(tool_calls),
            "tool_names": [c.get("function", {}).get("name") for c in tool_calls],
            "route": self.route,
            "endpoint": self.endpoint,
            "started_at": started,
            "ended_at": ended,
        }
        trace = {
            "id": self.ids.trace_id,
            "name": f"{self.operation} {self.request.model or ''}".strip(),
            "started_at": started,
            "ended_at": ended,
            "source": self.source,
        }
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

    def records(self) -> list[Record]:
        started, ended = utc(self.started_ns), utc(self.ended_ns)
        run = {
            "id": self.ids.span_id,
            "trace_id": self.ids.trace_id,
            "parent_span_id": self.ids.parent_span_id,
            "name": self.name,
            "input": scrub(self.input),
            "output": scrub(self.output),
            "error": scrub_text(self.error) if self.error else None,
            "started_at": started,
            "ended_at": ended,
            "latency_ms": (self.ended_ns - self.started_ns) / 1e6,
        }
        trace: dict[str, Any] = {"id": self.ids.trace_id, "started_at": started, "ended_at": ended}
        if self.root:
            trace.update(
                authoritative=True,
                name=self.name,
                task=scrub_text(self.task) if self.task else None,
                status="error" if self.error else "ok",
                error=run["error"],
                tags=self.tags,
                meta=scrub(self.metadata),
                source="decorator",
            )
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

    def records(self) -> list[Record]:
        started, ended = utc(self.started_ns), utc(self.ended_ns)
        tool = {
            "id": self.ids.span_id,
            "trace_id": self.ids.trace_id,
            "parent_span_id": self.ids.parent_span_id,
            "name": self.name,
            "arguments": scrub(self.arguments),
            "result": scrub(self.result),
            "error": scrub_text(self.error) if self.error else None,
            "latency_ms": (self.ended_ns - self.started_ns) / 1e6,
            "started_at": started,
            "ended_at": ended,
        }
        trace = {"id": self.ids.trace_id, "started_at": started, "ended_at": ended, "source": "decorator"}
        return [("trace", trace), ("tool_execution", tool)]


@dataclass(slots=True)
class FeedbackPayload:
    row: dict[str, Any]
    """A `feedback` row: id, trace_id, outcome, rating, comment, label, source, created_at."""

    def records(self) -> list[Record]:
        return [("feedback", self.row)]
