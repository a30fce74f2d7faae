"""Calls, tokens, outcomes and routes per time bucket, aggregated by the database.

`TraceStore.timeline()` runs three GROUP BY queries (model calls by bucket, route and model, runs by
bucket and outcome, fallback reasons) and fills the buckets between `since` and `until` that hold
nothing, so a chart has one bar per hour or day. The bucket is the start time truncated in SQL:
`strftime` on SQLite, `date_trunc` on PostgreSQL (`bucket_start`); times are UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from agent_tracer.errors import ConfigError
from agent_tracer.store.models import LLMCall, Trace, utcnow
from agent_tracer.store.usage import ModelTokens, call_model, read_usage, usage_columns

BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_BUCKETS = 2000
"""More bars than this is not a chart: the caller is asked for a larger bucket or a shorter span."""
ROUTES = ("primary", "fallback", "shadow")
DIRECT = "direct"
"""A call that went through no router (the decorator, or the proxy without --routes)."""
NO_OUTCOME = "none"

_SQLITE_FORMATS = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}


@dataclass
class Bucket:
    start: datetime
    calls: int = 0
    errors: int = 0
    """Calls whose status is not "ok"."""
    input_tokens: int = 0
    output_tokens: int = 0
    routes: dict[str, int] = field(default_factory=dict)
    """primary, fallback, shadow, or `DIRECT` → calls."""
    models: dict[str | None, ModelTokens] = field(default_factory=dict)
    """A call's model (`store.usage`: the answering one, else the one asked for) → its calls and
    tokens, for pricing (`agent_tracer.prices`)."""
    runs: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    """A run's outcome (`NO_OUTCOME` without one) → runs started in the bucket."""


@dataclass
class FallbackReason:
    route: str
    reason: str
    calls: int


@dataclass
class Timeline:
    bucket: str
    since: datetime
    until: datetime
    buckets: list[Bucket]
    reasons: list[FallbackReason]
    """Why the router fell back (on the refused primary and the fallback) or would have refused a
    shadow, most calls first."""

    def total(self, name: str) -> int:
        return sum(getattr(bucket, name) for bucket in self.buckets)


def truncate(value: datetime, bucket: str) -> datetime:
    """The start of the bucket holding `value`, as `bucket_start` computes it in SQL."""
    value = value.replace(minute=0, second=0, microsecond=0)
    return value.replace(hour=0) if bucket == "day" else value


def bucket_start(dialect: str, column: Any, bucket: str) -> Any:
    """SQL for the start of `column`'s bucket: text "YYYY-MM-DD HH:00:00" on SQLite, a timestamp on
    PostgreSQL (`read_bucket` reads both)."""
    if bucket not in BUCKETS:
        raise ConfigError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    if dialect == "sqlite":
        return sa.func.strftime(_SQLITE_FORMATS[bucket], column)
    if dialect == "postgresql":
        return sa.func.date_trunc(bucket, column)
    raise ConfigError(f"unsupported database dialect {dialect!r}")


def read_bucket(value: Any) -> datetime:
    return value.replace(tzinfo=None) if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def timeline(
    engine: Engine,
    *,
    bucket: str = "day",
    since: datetime,
    until: datetime | None = None,
    tags: Sequence[str] | None = None,
    **filters: Any,
) -> Timeline:
    """See `TraceStore.timeline`."""
    from agent_tracer.store.queries import has_tag, trace_query

    if bucket not in BUCKETS:
        raise ConfigError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
    until = until or utcnow()
    if until <= since:
        raise ConfigError("until must come after since")
    first, last = truncate(since, bucket), truncate(until, bucket)
    count = int((last - first) / BUCKETS[bucket]) + 1
    if count > MAX_BUCKETS:
        raise ConfigError(f"{count:,} {bucket}s is too many bars: choose a larger bucket or a later since")
    buckets = {first + n * BUCKETS[bucket]: Bucket(first + n * BUCKETS[bucket]) for n in range(count)}
    dialect = engine.dialect.name

    runs = None  # the runs the filters pick (None: every call counts, also those of no run)
    wanted = [tag for tag in tags or () if tag]
    if any(value is not None for value in filters.values()) or wanted:
        query = trace_query(**filters).with_only_columns(col(Trace.id)).order_by(None)
        for tag in wanted:
            query = query.where(has_tag(tag))
        runs = query

    def calls_in(query: Any) -> Any:
        query = query.where(col(LLMCall.started_at) >= since, col(LLMCall.started_at) < until)
        return query if runs is None else query.where(col(LLMCall.trace_id).in_(runs))

    call_bucket = bucket_start(dialect, col(LLMCall.started_at), bucket).label("bucket")
    route = sa.func.coalesce(col(LLMCall.route), DIRECT).label("route")
    model = call_model().label("model")
    by_route = calls_in(
        sa.select(
            call_bucket,
            route,
            model,
            sa.func.count().filter(col(LLMCall.status) != "ok"),
            sa.func.coalesce(sa.func.sum(LLMCall.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(LLMCall.output_tokens), 0),
            *usage_columns(),
        )
    ).group_by(call_bucket, route, model)
    run_bucket = bucket_start(dialect, col(Trace.started_at), bucket).label("bucket")
    outcome = sa.func.coalesce(col(Trace.outcome), NO_OUTCOME).label("outcome")
    by_outcome = (
        sa.select(run_bucket, outcome, sa.func.count())
        .where(col(Trace.started_at) >= since, col(Trace.started_at) < until)
        .group_by(run_bucket, outcome)
    )
    if runs is not None:
        by_outcome = by_outcome.where(col(Trace.id).in_(runs))
    reason_count = sa.func.count().label("calls")
    reasons = (
        calls_in(
            sa.select(route, col(LLMCall.fallback_reason), reason_count).where(
                col(LLMCall.fallback_reason).is_not(None)
            )
        )
        .group_by(route, col(LLMCall.fallback_reason))
        .order_by(reason_count.desc(), route, col(LLMCall.fallback_reason))
    )
    with engine.connect() as conn:
        for start, name, model_name, errors, tokens_in, tokens_out, *usage in conn.execute(by_route):
            found = buckets.get(read_bucket(start))
            if found is None:  # cannot happen: the WHERE keeps the span
                continue
            priced = read_usage(model_name, *usage)
            found.models.setdefault(model_name, ModelTokens(model_name)).add(priced)
            calls = priced.calls
            found.calls += calls
            found.errors += errors
            found.input_tokens += int(tokens_in or 0)
            found.output_tokens += int(tokens_out or 0)
            found.routes[name] = found.routes.get(name, 0) + calls
        for start, name, runs_started in conn.execute(by_outcome):
            found = buckets.get(read_bucket(start))
            if found is not None:
                found.runs += runs_started
                found.outcomes[name] = found.outcomes.get(name, 0) + runs_started
        found_reasons = [FallbackReason(name, reason, calls) for name, reason, calls in conn.execute(reasons)]
    return Timeline(bucket, since, until, list(buckets.values()), found_reasons)
