"""`TraceStore.timeline`: calls, tokens, outcomes and routes per hour or day, counted by the
database (strftime on SQLite, date_trunc on PostgreSQL), on rows of known times."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlmodel import col

from agent_tracer.errors import ConfigError
from agent_tracer.store import LLMCall

HOUR = 3600.0


@pytest.fixture
def two_hours(store, rec):
    """T0 = 10:00. Hour 10: runs 1 (success) and 2 (failure): 3 calls, one an error, one routed
    primary; hour 12: run 3 (no outcome, named "other"): 2 calls, fallback for a timeout, and the
    refused primary with the same reason. Hour 11 holds nothing."""
    store.write(
        [
            rec.trace(1, start=0),
            rec.trace(2, start=60),
            rec.trace(3, start=2 * HOUR + 5, name="other"),
            rec.call(1, rec.trace_id(1), start=1),
            rec.call(2, rec.trace_id(1), start=2, status="error", input_tokens=7, output_tokens=0),
            rec.call(3, rec.trace_id(2), start=61, route="primary"),
            rec.call(4, rec.trace_id(3), start=2 * HOUR + 6, route="primary", fallback_reason="timeout"),
            rec.call(5, rec.trace_id(3), start=2 * HOUR + 7, route="fallback", fallback_reason="timeout"),
        ]
    )
    store.record_feedback(rec.trace_id(1), outcome="success")
    store.record_feedback(rec.trace_id(2), outcome="failure")
    return store


def test_hour_buckets_count_calls_tokens_routes_and_outcomes(two_hours, rec):
    found = two_hours.timeline(bucket="hour", since=rec.T0, until=rec.at(3 * HOUR))
    assert [bucket.start for bucket in found.buckets] == [datetime(2024, 5, 1, hour) for hour in (10, 11, 12, 13)]
    ten, eleven, twelve, _ = found.buckets
    assert (ten.calls, ten.errors, ten.input_tokens, ten.output_tokens) == (3, 1, 27, 10)
    assert ten.routes == {"direct": 2, "primary": 1}
    assert (ten.runs, ten.outcomes) == (2, {"success": 1, "failure": 1})
    assert (eleven.calls, eleven.runs, eleven.routes, eleven.outcomes) == (0, 0, {}, {})
    assert (twelve.calls, twelve.routes, twelve.outcomes) == (2, {"primary": 1, "fallback": 1}, {"none": 1})
    assert [(r.route, r.reason, r.calls) for r in found.reasons] == [
        ("fallback", "timeout", 1),
        ("primary", "timeout", 1),
    ]
    assert (found.total("calls"), found.total("runs")) == (5, 3)


def test_day_buckets_and_filters(two_hours, rec):
    found = two_hours.timeline(bucket="day", since=rec.at(-HOUR), until=rec.at(20 * HOUR))
    assert [bucket.start for bucket in found.buckets] == [datetime(2024, 5, 1), datetime(2024, 5, 2)]
    assert (found.buckets[0].calls, found.buckets[0].runs, found.buckets[1].calls) == (5, 3, 0)
    named = two_hours.timeline(bucket="day", since=rec.at(-HOUR), until=rec.at(20 * HOUR), name="other")
    assert (named.total("calls"), named.total("runs"), named.buckets[0].routes) == (2, 1, {"primary": 1, "fallback": 1})
    failed = two_hours.timeline(bucket="hour", since=rec.T0, until=rec.at(HOUR), outcome="failure")
    assert (failed.total("calls"), failed.buckets[0].outcomes) == (1, {"failure": 1})
    late = two_hours.timeline(bucket="hour", since=rec.at(HOUR), until=rec.at(3 * HOUR))
    assert (late.total("calls"), late.total("runs")) == (2, 1)


def test_bad_bucket_and_spans_are_refused(two_hours, rec):
    with pytest.raises(ConfigError, match="bucket must be one of hour, day"):
        two_hours.timeline(bucket="week", since=rec.T0)
    with pytest.raises(ConfigError, match="until must come after since"):
        two_hours.timeline(since=rec.T0, until=rec.at(-1))
    with pytest.raises(ConfigError, match="too many bars"):
        two_hours.timeline(bucket="hour", since="1000d")


def blank(store, rec, n: int, *columns: str) -> None:
    """Call `n` without these columns (a write leaves a None field as it was)."""
    with store.engine.begin() as conn:
        query = sa.update(LLMCall).where(col(LLMCall.id) == rec.span_id(n))
        conn.execute(query.values(**dict.fromkeys(columns)))


def test_buckets_sum_tokens_per_answering_model_and_count_calls_without_tokens(two_hours, rec):
    two_hours.write([rec.call(6, rec.trace_id(3), start=2 * HOUR + 8, model="local")])
    blank(two_hours, rec, 6, "response_model")
    two_hours.write([rec.call(7, rec.trace_id(3), start=2 * HOUR + 9)])
    blank(two_hours, rec, 7, "output_tokens")
    ten, _, twelve = two_hours.timeline(bucket="hour", since=rec.T0, until=rec.at(2 * HOUR + 60)).buckets
    mini = ten.models["gpt-4o-mini-2024"]  # the answering model, not the one asked for
    assert (mini.calls, mini.input_tokens, mini.output_tokens, mini.untokened) == (3, 27, 10, 0)
    assert set(twelve.models) == {"gpt-4o-mini-2024", "local"}  # no answering model: the one asked for
    late = twelve.models["gpt-4o-mini-2024"]
    assert (late.calls, late.input_tokens, late.output_tokens, late.untokened) == (3, 20, 10, 1)
    assert twelve.input_tokens == 40  # the tokens chart still counts every recorded token


def test_tokens_by_model_groups_a_page_of_runs_in_one_query(two_hours, rec):
    two_hours.write([rec.call(6, rec.trace_id(3), start=2 * HOUR + 8, model="local")])
    blank(two_hours, rec, 6, "response_model")
    found = two_hours.tokens_by_model([rec.trace_id(1), rec.trace_id(3), rec.trace_id(9)])
    assert set(found) == {rec.trace_id(1), rec.trace_id(3)}  # a run without calls is left out
    first = {usage.model: (usage.calls, usage.input_tokens, usage.output_tokens) for usage in found[rec.trace_id(1)]}
    assert first == {"gpt-4o-mini-2024": (2, 17, 5)}
    third = {usage.model: usage.calls for usage in found[rec.trace_id(3)]}
    assert third == {"gpt-4o-mini-2024": 2, "local": 1}


def test_the_route_filter_finds_runs_by_the_route_that_answered(two_hours, rec):
    assert {t.id for t in two_hours.traces(route="primary")} == {rec.trace_id(2), rec.trace_id(3)}
    assert {t.id for t in two_hours.traces(route="fallback")} == {rec.trace_id(3)}
    assert {t.id for t in two_hours.traces(route="direct")} == {rec.trace_id(1)}
    assert two_hours.traces(route="shadow") == []
    with pytest.raises(ConfigError, match="route must be one of primary, fallback, shadow, direct"):
        two_hours.traces(route="sideways")
    routed = two_hours.timeline(bucket="day", since=rec.at(-HOUR), until=rec.at(20 * HOUR), route="fallback")
    assert (routed.total("calls"), routed.total("runs")) == (2, 1)
