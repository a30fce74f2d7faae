"""Tokens per model, summed by the database, for pricing outside it (`agent_tracer.prices`).

A call's model is the one that answered (`response_model`), else the one asked for. A call
without both token counts is counted apart (`untokened`), its tokens left out of the sums: it
cannot be priced. `TraceStore.tokens_by_model` groups a page of runs' calls by run and model in
one query; the overview's timeline groups by bucket and model with the same columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from agent_tracer.store.models import LLMCall

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
