"""Tokens per model, summed by the database, for pricing outside it (`agent_tracer.prices`), and
the store's counts and aggregates (`TraceStore.stats`: `agent-tracer traces stats`).

A call's model is the one that answered (`response_model`), else the one asked for. A call
without both token counts is counted apart (`untokened`), its tokens left out of the sums: it
cannot be priced. `TraceStore.tokens_by_model` groups a page of runs' calls by run and model in
one query; the overview's timeline groups by bucket and model with the same columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col

from agent_tracer.store.models import Feedback, LLMCall, ToolExecution, Trace

_CHUNK = 500


@dataclass
class ModelTokens:
    """A model's calls and the tokens of those that recorded both counts."""

    model: str | None
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    untokened: int = 0
    """Calls without an input or an output token count."""

    def add(self, other: ModelTokens) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.untokened += other.untokened


def call_model() -> Any:
    """SQL for a call's model: the answering one, else the one asked for."""
    return sa.func.coalesce(col(LLMCall.response_model), col(LLMCall.request_model))


def usage_columns() -> list[Any]:
    """calls, input tokens, output tokens (of calls with both counts), calls without both."""
    counted = sa.and_(col(LLMCall.input_tokens).is_not(None), col(LLMCall.output_tokens).is_not(None))
    return [
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(LLMCall.input_tokens).filter(counted), 0),
        sa.func.coalesce(sa.func.sum(LLMCall.output_tokens).filter(counted), 0),
        sa.func.count().filter(sa.not_(counted)),
    ]


def read_usage(model: str | None, calls: Any, tokens_in: Any, tokens_out: Any, untokened: Any) -> ModelTokens:
    return ModelTokens(model, int(calls), int(tokens_in or 0), int(tokens_out or 0), int(untokened or 0))


def tokens_by_model(engine: Engine, trace_ids: Sequence[str]) -> dict[str, list[ModelTokens]]:
    """See `TraceStore.tokens_by_model`."""
    ids = sorted(set(trace_ids))
    found: dict[str, list[ModelTokens]] = {}
    model = call_model().label("model")
    with engine.connect() as conn:
        for start in range(0, len(ids), _CHUNK):
            query = (
                sa.select(col(LLMCall.trace_id), model, *usage_columns())
                .where(col(LLMCall.trace_id).in_(ids[start : start + _CHUNK]))
                .group_by(col(LLMCall.trace_id), model)
            )
            for trace_id, name, *usage in conn.execute(query):
                found.setdefault(trace_id, []).append(read_usage(name, *usage))
    return found


def store_stats(engine: Engine, start: datetime | None) -> dict[str, Any]:
    """`TraceStore.stats`: counts and aggregates over traces and calls started at or after
    `start` (all when None), in a handful of grouped queries."""

    def where(query: Any, column: Any) -> Any:
        return query if start is None else query.where(column >= start)

    model = sa.func.coalesce(LLMCall.request_model, LLMCall.response_model)
    failed = sa.func.count().filter(col(LLMCall.status) != "ok")
    with engine.connect() as conn:

        def scalar(query: Any) -> Any:
            return conn.execute(query).scalar_one()

        by_outcome = {
            outcome if outcome is not None else "none": count
            for outcome, count in conn.execute(
                where(sa.select(col(Trace.outcome), sa.func.count()), Trace.started_at).group_by(Trace.outcome)
            )
        }
        by_model = [
            {
                "model": name,
                "calls": calls,
                "input_tokens": int(tokens_in or 0),
                "output_tokens": int(tokens_out or 0),
                "errors": errors,
            }
            for name, calls, tokens_in, tokens_out, errors in conn.execute(
                where(
                    sa.select(
                        model,
                        sa.func.count(),
                        sa.func.sum(LLMCall.input_tokens),
                        sa.func.sum(LLMCall.output_tokens),
                        failed,
                    ),
                    LLMCall.started_at,
                ).group_by(model)
            )
        ]
        by_model.sort(key=lambda item: (-item["calls"], item["model"] or ""))
        return {
            "since": start.isoformat() if start else None,
            "traces": sum(by_outcome.values()),
            "llm_calls": sum(item["calls"] for item in by_model),
            "tool_executions": scalar(
                where(sa.select(sa.func.count()).select_from(ToolExecution), ToolExecution.started_at)
            ),
            "feedback": scalar(where(sa.select(sa.func.count()).select_from(Feedback), Feedback.created_at)),
            "by_outcome": dict(sorted(by_outcome.items(), key=lambda item: -item[1])),
            "by_model": by_model,
            "errors": sum(item["errors"] for item in by_model),
            "trace_errors": scalar(
                where(sa.select(sa.func.count()).where(col(Trace.status) == "error"), Trace.started_at)
            ),
            "tool_errors": scalar(
                where(
                    sa.select(sa.func.count()).where(col(ToolExecution.error).is_not(None)),
                    ToolExecution.started_at,
                )
            ),
            "input_tokens": sum(item["input_tokens"] for item in by_model),
            "output_tokens": sum(item["output_tokens"] for item in by_model),
            "latency_ms": {
                "p50": _percentile(conn, LLMCall.latency_ms, 50, start),
                "p95": _percentile(conn, LLMCall.latency_ms, 95, start),
            },
            "ttft_ms": {"p50": _percentile(conn, LLMCall.ttft_ms, 50, start)},
            "store": _size(conn, engine),
        }


GROWTH_DAYS = 7


def _size(conn: Connection, engine: Engine) -> dict[str, Any]:
    """The store's size, its bytes per model call (all tables and indexes over all calls), and
    the calls of each of the last `GROWTH_DAYS` days: how fast it grows, for retention settings."""
    from agent_tracer.store.models import utcnow
    from agent_tracer.store.retention import store_size

    size = store_size(engine)
    calls = conn.execute(sa.select(sa.func.count()).select_from(LLMCall)).scalar_one()
    since = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=GROWTH_DAYS - 1)
    day = sa.func.date(col(LLMCall.started_at))
    per_day = {
        str(found): count
        for found, count in conn.execute(
            sa.select(day, sa.func.count()).where(col(LLMCall.started_at) >= since).group_by(day).order_by(day)
        )
    }
    per_call = size / calls if size is not None and calls else None
    mean_calls = sum(per_day.values()) / GROWTH_DAYS
    return {
        "bytes": size,
        "bytes_per_call": round(per_call) if per_call is not None else None,
        "calls_per_day": per_day,
        "bytes_per_day": round(per_call * mean_calls) if per_call is not None else None,
    }


def _percentile(conn: Connection, column: Any, pct: float, since: datetime | None) -> float | None:
    """Nearest-rank percentile, computed by the database (no rows fetched)."""
    base = sa.select(column).where(column.is_not(None))
    if since is not None:
        base = base.where(col(LLMCall.started_at) >= since)
    count = conn.execute(sa.select(sa.func.count()).select_from(base.subquery())).scalar_one()
    if not count:
        return None
    rank = max(math.ceil(pct / 100 * count), 1)
    return conn.execute(base.order_by(column).offset(rank - 1).limit(1)).scalar_one()
