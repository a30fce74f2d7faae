"""The store's tables, as SQLModel classes.

Other code (the exporter, the proxy, the trainer) writes and reads these columns by name: a change
here needs a migration in `migrations.py` too. Ids are OpenTelemetry ids in hex: 32 characters
for a trace, 16 for a span. Every datetime is naive UTC: `sa_type=DateTime`, because recent
SQLModel maps `datetime` to a type that demands time-zone-aware values.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text, text
from sqlmodel import Field, SQLModel

from agent_tracer.store.compressed import CompressedText

WIRE_COPY = "raw_request IS NOT NULL AND api IS NOT NULL"
"""A model call made from the HTTP bodies (the transport, the proxy), not from a span."""
SPAN_COPY = "raw_request IS NULL OR api IS NULL"
"""A model call made from a span (OTLP, a framework's span processor): not `WIRE_COPY`."""


class Trace(SQLModel, table=True):
    """One agent run (the root span), or the calls that share a trace id."""

    __tablename__ = "traces"
    __table_args__ = (
        # In the runs list's order, newest first (`DESC NULLS LAST` on PostgreSQL): m005_list_indexes.
        Index("ix_traces_newest", "started_at", "id"),
        Index("ix_traces_name_newest", "name", "started_at", "id"),
        Index("ix_traces_outcome_newest", "outcome", "started_at", "id"),
        Index(
            "ix_traces_unrated_newest",
            "started_at",
            "id",
            sqlite_where=text("rating IS NULL"),
            postgresql_where=text("rating IS NULL"),
        ),
    )

    id: str = Field(primary_key=True)
    name: str | None = None
    task: str | None = None
    started_at: datetime | None = Field(default=None, sa_type=DateTime)
    ended_at: datetime | None = Field(default=None, sa_type=DateTime)
    status: str | None = None
    """"ok" or "error"."""
    error: str | None = None
    outcome: str | None = None
    rating: float | None = None
    comment: str | None = None
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    source: str | None = None
    """"decorator", "proxy", "import", "call", a framework adapter ("openai-agents", "langchain"),
    or "feedback" for a trace known only by its feedback."""
    updated_at: datetime = Field(default_factory=lambda: utcnow(), sa_type=DateTime)


class AgentRun(SQLModel, table=True):
    """One `@trace_agent` span; the root one also makes the `Trace` row, nested ones only this."""

    __tablename__ = "agent_runs"

    id: str = Field(primary_key=True)
    trace_id: str = Field(index=True)
    parent_span_id: str | None = None
    name: str | None = None
    input: Any = Field(default=None, sa_column=Column(JSON))
    output: Any = Field(default=None, sa_column=Column(JSON))
    error: str | None = None
    started_at: datetime | None = Field(default=None, sa_type=DateTime)
    ended_at: datetime | None = Field(default=None, sa_type=DateTime)
    latency_ms: float | None = None


class LLMCall(SQLModel, table=True):
    """One model call, in canonical form (`CanonicalRequest` / `CanonicalResponse` dicts) and raw."""

    __tablename__ = "llm_calls"
    __table_args__ = (
        # The failed calls' trace ids, for the status filter: m005_list_indexes.
        Index(
            "ix_llm_calls_failed",
            "trace_id",
            sqlite_where=text("status <> 'ok'"),
            postgresql_where=text("status <> 'ok'"),
        ),
        # Two copies of one call, the wire's and a span's, matched by response id: m007_response_ids.
        Index(
            "ix_llm_calls_wire_response_id",
            "response_id",
            "started_at",
            sqlite_where=text(WIRE_COPY),
            postgresql_where=text(WIRE_COPY),
        ),
        Index(
            "ix_llm_calls_span_response_id",
            "response_id",
            "started_at",
            sqlite_where=text(SPAN_COPY),
            postgresql_where=text(SPAN_COPY),
        ),
        # And by their text, when the span carries no response id: m008_content_keys.
        Index(
            "ix_llm_calls_wire_content_key",
            "content_key",
            "started_at",
            sqlite_where=text(WIRE_COPY),
            postgresql_where=text(WIRE_COPY),
        ),
        Index(
            "ix_llm_calls_span_content_key",
            "content_key",
            "started_at",
            sqlite_where=text(SPAN_COPY),
            postgresql_where=text(SPAN_COPY),
        ),
    )

    id: str = Field(primary_key=True)
    trace_id: str = Field(index=True)
    parent_span_id: str | None = None
    provider: str | None = None
    api: str | None = None
    """"openai.chat", "openai.responses" or "anthropic.messages"."""
    operation: str | None = None
    request_model: str | None = Field(default=None, index=True)
    response_model: str | None = None
    response_id: str | None = None
    """The provider's id of its answer: how two copies of one call are matched (`same_calls.py`,
    through the indexes on it and `started_at` of each kind of copy: m007)."""
    request: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    raw_request: str | None = Field(default=None, sa_column=Column(CompressedText))
    raw_response: str | None = Field(default=None, sa_column=Column(CompressedText))
    """The bodies as they crossed the wire; SQLite keeps long ones compressed (`compressed.py`)."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    streamed: bool = False
    status: str = "ok"
    """"ok", "error" or "incomplete" (a stream that ended early)."""
    http_status: int | None = None
    error: str | None = None
    finish_reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    has_tool_calls: bool = Field(default=False, index=True)
    tool_names: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    route: str | None = None
    """"primary", "fallback" or "shadow" when the call went through the proxy's router."""
    fallback_reason: str | None = None
    """Why the router's fallback answered (on both the refused primary call and the fallback's),
    or why a shadow call's answer would have been refused: see `proxy/router.py`."""
    endpoint: str | None = None
    started_at: datetime | None = Field(default=None, index=True, sa_type=DateTime)
    ended_at: datetime | None = Field(default=None, sa_type=DateTime)
    search_text: str | None = Field(default=None, sa_column=Column(Text))
    """What full-text search reads: the messages' and the answer's text, tool-call names and
    arguments (`store/search.py`); set when the call is written."""
    content_key: str | None = None
    """A digest of `search_text` without its white space (`search.content_key`): how two copies of
    one call are matched when the span's copy has no response id (`same_calls.py`)."""


class ToolExecution(SQLModel, table=True):
    """One `@trace_tool` span: a tool the agent itself ran."""

    __tablename__ = "tool_executions"

    id: str = Field(primary_key=True)
    trace_id: str = Field(index=True)
    parent_span_id: str | None = None
    name: str | None = None
    arguments: Any = Field(default=None, sa_column=Column(JSON))
    result: Any = Field(default=None, sa_column=Column(JSON))
    error: str | None = None
    latency_ms: float | None = None
    started_at: datetime | None = Field(default=None, sa_type=DateTime)
    ended_at: datetime | None = Field(default=None, sa_type=DateTime)


class Feedback(SQLModel, table=True):
    """An outcome, rating, comment, label or correction given to a trace, often later and from elsewhere."""

    __tablename__ = "feedback"

    id: str = Field(primary_key=True)
    trace_id: str = Field(index=True)
    outcome: str | None = None
    rating: float | None = None
    comment: str | None = None
    label: str | None = None
    source: str | None = None
    created_at: datetime = Field(default_factory=lambda: utcnow(), sa_type=DateTime)
    correction: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON(none_as_null=True)))
    """The answer the run should have given, as an assistant message (`feedback.correction_message`):
    `dataset dpo` makes it the chosen answer against the run's own."""


class UnmappedSpan(SQLModel, table=True):
    """A span received over OTLP in no layout agent-tracer maps (`agent_tracer/otlp/mapping.py`):
    kept whole, so nothing sent is lost and a later mapper can read it again."""

    __tablename__ = "unmapped_spans"

    id: str = Field(primary_key=True)
    trace_id: str = Field(index=True)
    parent_span_id: str | None = None
    name: str | None = None
    kind: str | None = None
    """OpenTelemetry's span kind: "internal", "server", "client", "producer" or "consumer"."""
    scope: str | None = None
    """The instrumentation scope's name (the library that made the span)."""
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    events: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    resource: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    status: str | None = None
    error: str | None = None
    started_at: datetime | None = Field(default=None, sa_type=DateTime)
    ended_at: datetime | None = Field(default=None, sa_type=DateTime)
    latency_ms: float | None = None


TABLE_MODELS: dict[str, type[SQLModel]] = {
    "trace": Trace,
    "agent_run": AgentRun,
    "llm_call": LLMCall,
    "tool_execution": ToolExecution,
    "feedback": Feedback,
    "unmapped_span": UnmappedSpan,
}
"""Record kind (as in `TraceStore.write` and the spill file) → table model."""


def utcnow() -> datetime:
    """Now, as the naive UTC datetime every column holds."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
