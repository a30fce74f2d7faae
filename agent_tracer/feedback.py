"""Feedback rows: an outcome, a rating, a comment or a label for one trace, validated in one place
for `record_outcome`, `TraceStore.record_feedback`, the CLI and the proxy."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Any

from agent_tracer.errors import ConfigError

MAX_RATING = 5.0
BETTER_THAN = "better_than:"
"""The label of a pairwise judgement: the trace given feedback answered better than the trace whose
id follows (`agent-tracer traces rate A --better-than B`); reward data pairs the two."""


def feedback_row(
    trace_id: str,
    outcome: str | None = None,
    rating: float | None = None,
    comment: str | None = None,
    label: str | None = None,
    source: str = "api",
) -> dict[str, Any]:
    """A `feedback` record for the store; ConfigError on values that cannot be stored."""
    if not trace_id or not isinstance(trace_id, str):
        raise ConfigError("feedback needs a trace id (agent_tracer.current_trace_id() inside a traced run)")
    if outcome is None and rating is None and comment is None and label is None:
        raise ConfigError("feedback needs at least one of outcome, rating, comment, label")
    for name, value in (("outcome", outcome), ("comment", comment), ("label", label)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{name} must be text, got {type(value).__name__} {value!r}")
    if outcome is not None and not outcome.strip():
        raise ConfigError("outcome must not be empty")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or math.isnan(rating):
            raise ConfigError(f"rating must be a number from 0 to {MAX_RATING:g}, got {rating!r}")
        if not 0 <= rating <= MAX_RATING:
            raise ConfigError(f"rating must be from 0 to {MAX_RATING:g}, got {rating}")
    return {
        "id": uuid.uuid4().hex,
        "trace_id": trace_id.strip().lower(),
        "outcome": outcome.strip() if outcome is not None else None,
        "rating": float(rating) if rating is not None else None,
        "comment": comment,
        "label": label,
        "source": source,
        "created_at": datetime.now(timezone.utc).replace(tzinfo=None),
    }
