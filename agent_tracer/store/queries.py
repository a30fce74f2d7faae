"""The SELECT of traces that every reader shares (`TraceStore.traces`, counts, runs, chunks,
the UI's timeline), its keyset steps, and the times it accepts: ISO strings, datetimes, or ages
such as "7d"."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement
from sqlmodel import col

from agent_tracer.errors import ConfigError, StoreError
from agent_tracer.formats.examples import HELD_OUT_TAG
from agent_tracer.store.models import LLMCall, Trace, utcnow
from agent_tracer.store.search import search_condition
from agent_tracer.store.timeline import DIRECT, ROUTES

ORDERS = ("newest", "oldest", "best")
STATUSES = ("ok", "error")


def trace_query(
    *,
    outcome: str | None = None,
    min_rating: float | None = None,
    name: str | None = None,
    tags: Sequence[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    model: str | None = None,
    has_tool_calls: bool | None = None,
    rated: bool | None = None,
    status: str | None = None,
    held_out: bool | None = None,
    text: str | None = None,
    route: str | None = None,
    order: str = "newest",
    after: tuple[datetime | None, str] | None = None,
    before: tuple[datetime | None, str] | None = None,
    dense_text: bool = False,
) -> Any:
    """The SELECT of traces for `TraceStore.traces()`'s filters (all but limit); `dense_text`:
    the search in the shape for a word many calls hold (`search.search_condition`)."""
    if order not in ORDERS:
        raise ConfigError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    query = sa.select(Trace)
    for word, keyset in (("after", after), ("before", before)):
        if keyset is not None and order != "newest":
            raise ConfigError(f"keyset pagination ({word}=) goes with order 'newest', not {order!r}")
    if after is not None:
        query = query.where(_after_newest(*after))
    if before is not None:
        query = query.where(_before_newest(*before))
    if outcome is not None:
        query = query.where(col(Trace.outcome) == outcome)
    if min_rating is not None:
        query = query.where(col(Trace.rating) >= min_rating)
    if name is not None:
        if "*" in name:
            pattern = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
            query = query.where(col(Trace.name).like(pattern, escape="\\"))
        else:
            query = query.where(col(Trace.name) == name)
    for tag in dict.fromkeys(tag for tag in tags or () if tag):
        query = query.where(has_tag(tag))
    if since is not None:
        query = query.where(col(Trace.started_at) >= parse_time(since))
    if until is not None:
        query = query.where(col(Trace.started_at) < parse_time(until))
    if model is not None:
        query = query.where(
            sa.exists().where(
                col(LLMCall.trace_id) == Trace.id,
                sa.or_(col(LLMCall.request_model) == model, col(LLMCall.response_model) == model),
            )
        )
    if has_tool_calls is not None:
        # coalesce() keeps SQLite from walking has_tool_calls' own index for each trace (every call
        # with that value, 70 s a page at 100,000 runs) instead of the trace's calls by trace_id.
        called = sa.func.coalesce(col(LLMCall.has_tool_calls), sa.false()) == sa.true()
        with_tools = sa.exists().where(col(LLMCall.trace_id) == Trace.id, called)
        query = query.where(with_tools if has_tool_calls else ~with_tools)
    if rated is not None:
        query = query.where(col(Trace.rating).is_not(None) if rated else col(Trace.rating).is_(None))
    if status is not None:
        if status not in STATUSES:
            raise ConfigError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        failed = sa.or_(
            col(Trace.status).is_not_distinct_from("error"),  # NULL-safe, so that "ok" is its negation
            sa.exists().where(col(LLMCall.trace_id) == Trace.id, col(LLMCall.status) != "ok"),
        )
        query = query.where(failed if status == "error" else ~failed)
    if held_out is not None:
        tagged = has_tag(HELD_OUT_TAG)
        query = query.where(tagged if held_out else sa.or_(col(Trace.tags).is_(None), ~tagged))
    if route is not None:  # a call the router answered by this route ("direct": one that passed no router)
        if route not in (*ROUTES, DIRECT):
            raise ConfigError(f"route must be one of {', '.join((*ROUTES, DIRECT))}, not {route!r}")
        routed = col(LLMCall.route).is_(None) if route == DIRECT else col(LLMCall.route) == route
        query = query.where(sa.exists().where(col(LLMCall.trace_id) == Trace.id, routed))
    if text is not None and text.strip():
        query = query.where(search_condition(text, dense=dense_text))
    newest = (col(Trace.started_at).desc().nulls_last(), col(Trace.id).desc())
    if before is not None:  # a step back: the newest-first order reversed, nearest first
        return query.order_by(col(Trace.started_at).asc().nulls_first(), col(Trace.id).asc())
    if order == "newest":
        return query.order_by(*newest)
    if order == "oldest":
        return query.order_by(col(Trace.started_at).asc().nulls_last(), col(Trace.id).asc())
    return query.order_by(col(Trace.rating).desc().nulls_last(), *newest)


def has_tag(tag: str) -> Any:
    """Whether a trace's tags (a JSON list) hold `tag` as an element, exactly (case and all), as
    `tag in trace.tags` does: `HasTag`, which each database answers with its JSON functions."""
    return HasTag(tag)


class HasTag(ColumnElement[bool]):
    """True for a `traces` row whose tags list holds this string. SQLite: a text element of
    `json_each(tags)` equal to it. PostgreSQL: `tags::jsonb ? tag` (a string element; the column
    is `json`, whose text the cast reads), written as m005's statistics on `tags::jsonb` are, so
    that the planner knows how common a tag is: without them it took any tag for rare and sorted
    every run of a tag rather than walk the list's index (92 ms for `held-out` at 100,000 runs)."""

    inherit_cache = False
    type = sa.Boolean()

    def __init__(self, tag: str) -> None:
        self.tag = tag


_TAGS = Trace.__table__.c.tags  # type: ignore[attr-defined]  # SQLModel types omit __table__


@compiles(HasTag, "sqlite")
def _sqlite_has_tag(element: HasTag, compiler: SQLCompiler, **kw: Any) -> str:
    tags = compiler.process(_TAGS, **kw)
    tag = compiler.process(sa.bindparam("tag", element.tag, unique=True), **kw)
    return f"EXISTS (SELECT 1 FROM json_each({tags}) WHERE type = 'text' AND value = {tag})"


@compiles(HasTag, "postgresql")
def _postgresql_has_tag(element: HasTag, compiler: SQLCompiler, **kw: Any) -> str:
    tags = compiler.process(_TAGS, **kw)
    tag = compiler.process(sa.bindparam("tag", element.tag, unique=True), **kw)
    return f"(CAST({tags} AS JSONB) ? {tag})"


@compiles(HasTag)
def _other_has_tag(element: HasTag, compiler: SQLCompiler, **kw: Any) -> str:
    raise sa.exc.CompileError(f"the tags filter is not available on {compiler.dialect.name}")


def _after_newest(started_at: datetime | None, trace_id: str) -> Any:
    """The traces that come after `(started_at, trace_id)` newest first: started earlier, or at the
    same time with a smaller id; traces without a start time come last, by id."""
    started, ident = col(Trace.started_at), col(Trace.id)
    if started_at is None:
        return sa.and_(started.is_(None), ident < trace_id)
    started_at = to_utc(started_at)
    return sa.or_(started < started_at, sa.and_(started == started_at, ident < trace_id), started.is_(None))


def _before_newest(started_at: datetime | None, trace_id: str) -> Any:
    """The traces that come before `(started_at, trace_id)` newest first (`_after_newest`'s mirror)."""
    started, ident = col(Trace.started_at), col(Trace.id)
    if started_at is None:
        return sa.or_(started.is_not(None), sa.and_(started.is_(None), ident > trace_id))
    started_at = to_utc(started_at)
    return sa.or_(started > started_at, sa.and_(started == started_at, ident > trace_id))


# -- times --------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def to_utc(value: datetime | str) -> datetime:
    """A datetime or ISO-8601 string as a naive UTC datetime (naive input is taken as UTC)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise StoreError(f"not an ISO-8601 datetime: {value!r}") from None
    if not isinstance(value, datetime):
        raise StoreError(f"not a datetime: {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def parse_age(value: str) -> timedelta | None:
    """An age such as "30m", "2h", "7d", "1w" as a duration; None for anything else."""
    match = _RELATIVE.match(value)
    if match is None:
        return None
    return timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})


def parse_time(value: datetime | str, *, now: datetime | None = None) -> datetime:
    """A point in time as naive UTC: a datetime, an ISO-8601 date or datetime, or an age before
    now such as "30m", "2h", "7d", "1w". Raises `ConfigError` for anything else."""
    if isinstance(value, str):
        age = parse_age(value)
        if age is not None:
            return (now or utcnow()) - age
    try:
        return to_utc(value)
    except StoreError:
        raise ConfigError(f"not a time: {value!r} (use an ISO date like 2024-05-01, or an age like 2h, 7d)") from None
