"""TraceStore queries: every filter of traces() and calls(), get_trace, stats."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agent_tracer.errors import ConfigError, TraceNotFound
from agent_tracer.store import TraceDetail
from agent_tracer.store.models import utcnow
from agent_tracer.store.queries import parse_time


@pytest.fixture
def filled(store, rec):
    """Five traces: different names, tags, models, tool use, outcomes and ratings, an hour apart."""
    hour = 3600
    records = [
        rec.trace(1, name="planner", tags=["prod", "eu"], start=0 * hour),
        rec.call(11, rec.trace_id(1), model="gpt-4o", tool_calls=True, start=0 * hour),
        rec.call(12, rec.trace_id(1), model="gpt-4o", start=0 * hour + 1),
        rec.trace(2, name="planner", tags=["prod"], start=1 * hour, status="error", error="boom"),
        rec.call(21, rec.trace_id(2), model="gpt-4o-mini", start=1 * hour, status="error", latency_ms=900.0),
        rec.trace(3, name="researcher", tags=["eu"], start=2 * hour),
        rec.call(
            31, rec.trace_id(3), model="claude-3-5-sonnet", tool_calls=True, start=2 * hour, ttft_ms=80.0, streamed=True
        ),
        rec.trace(4, name="researcher-v2", tags=[], start=3 * hour),
        rec.trace(5, name="writer", start=4 * hour),
        rec.call(51, rec.trace_id(5), model="gpt-4o-mini", start=4 * hour, response_model="ft:gpt-4o-mini:acme"),
        (
            "tool_execution",
            {
                "id": rec.span_id(91),
                "trace_id": rec.trace_id(1),
                "name": "search",
                "started_at": rec.at(2),
                "error": "timeout",
            },
        ),
    ]
    store.write(records)
    store.record_feedback(rec.trace_id(1), outcome="success", rating=5)
    store.record_feedback(rec.trace_id(2), outcome="failure", rating=1)
    store.record_feedback(rec.trace_id(3), outcome="success", rating=3.5)
    return store


def ids(traces) -> list[int]:
    return [int(trace.id, 16) for trace in traces]


def test_traces_default_order_is_newest_first(filled):
    assert ids(filled.traces()) == [5, 4, 3, 2, 1]
    assert ids(filled.traces(order="oldest")) == [1, 2, 3, 4, 5]
    assert ids(filled.traces(order="best")) == [1, 3, 2, 5, 4]  # rated high to low, then unrated newest first
    assert ids(filled.traces(limit=2)) == [5, 4]
    with pytest.raises(ConfigError, match="order must be"):
        filled.traces(order="random")


def test_traces_filters(filled, rec):
    assert ids(filled.traces(outcome="success")) == [3, 1]
    assert ids(filled.traces(min_rating=3.5)) == [3, 1]
    assert ids(filled.traces(name="planner")) == [2, 1]
    assert ids(filled.traces(name="researcher*")) == [4, 3]
    assert ids(filled.traces(name="*er")) == [5, 3, 2, 1]
    assert ids(filled.traces(name="research_r")) == []  # "_" is not a wildcard
    assert ids(filled.traces(tags=["eu"])) == [3, 1]
    assert ids(filled.traces(tags=["prod", "eu"])) == [1]
    assert ids(filled.traces(tags=["eu"], limit=1)) == [3]
    assert ids(filled.traces(tags=["nope"])) == []
    assert ids(filled.traces(since=rec.at(3600), until=rec.at(3 * 3600))) == [3, 2]
    assert ids(filled.traces(since="2024-05-01T12:00:00")) == [5, 4, 3]
    assert ids(filled.traces(until="2024-05-01")) == []
    assert ids(filled.traces(model="gpt-4o")) == [1]
    assert ids(filled.traces(model="gpt-4o-mini")) == [5, 2]
    assert ids(filled.traces(model="ft:gpt-4o-mini:acme")) == [5]  # the response model counts too
    assert ids(filled.traces(has_tool_calls=True)) == [3, 1]
    assert ids(filled.traces(has_tool_calls=False)) == [5, 4, 2]
    assert ids(filled.traces(outcome="success", has_tool_calls=True, tags=["eu"], model="gpt-4o")) == [1]


def test_traces_rated_and_a_step_back(filled, rec):
    """`rated` keeps traces with or without a rating; `before` walks the newest-first order back."""
    assert ids(filled.traces(rated=False)) == [5, 4]
    assert ids(filled.traces(rated=True)) == [3, 2, 1]
    assert filled.count_traces(rated=False, name="*er") == 1
    at = lambda n: (rec.at((n - 1) * 3600), rec.trace_id(n))  # noqa: E731
    assert ids(filled.traces(before=at(2))) == [3, 4, 5]  # nearest first
    assert ids(filled.traces(before=at(2), rated=False, limit=1)) == [4]
    assert ids(filled.traces(after=at(4), rated=False)) == []
    assert ids(filled.traces(before=at(5))) == []
    assert filled.known_traces([rec.trace_id(1), rec.trace_id(9)]) == {rec.trace_id(1)}
    with pytest.raises(ConfigError, match="before="):
        filled.traces(before=at(2), order="oldest")


def test_traces_relative_times(store, rec):
    now = utcnow()
    store.write(
        [
            ("trace", {"id": rec.trace_id(1), "started_at": now - timedelta(minutes=30)}),
            ("trace", {"id": rec.trace_id(2), "started_at": now - timedelta(hours=5)}),
            ("trace", {"id": rec.trace_id(3), "started_at": now - timedelta(days=10)}),
        ]
    )
    assert ids(store.traces(since="2h")) == [1]
    assert ids(store.traces(since="7d")) == [1, 2]
    assert ids(store.traces(until="1h", since="1w")) == [2]
    with pytest.raises(ConfigError, match="not a time"):
        store.traces(since="last tuesday")


def test_parse_time_forms():
    now = datetime(2024, 5, 10, 12, 0)
    assert parse_time("2h", now=now) == datetime(2024, 5, 10, 10, 0)
    assert parse_time("7d", now=now) == datetime(2024, 5, 3, 12, 0)
    assert parse_time("1.5h", now=now) == datetime(2024, 5, 10, 10, 30)
    assert parse_time("90s", now=now) == datetime(2024, 5, 10, 11, 58, 30)
    assert parse_time("2w", now=now) == datetime(2024, 4, 26, 12, 0)
    assert parse_time("2024-05-01") == datetime(2024, 5, 1)
    assert parse_time("2024-05-01T10:00:00+02:00") == datetime(2024, 5, 1, 8, 0)


def test_get_trace_by_id_and_prefix(filled, rec):
    detail = filled.get_trace(rec.trace_id(1))
    assert isinstance(detail, TraceDetail)
    assert detail.trace.name == "planner"
    assert [call.id for call in detail.calls] == [rec.span_id(11), rec.span_id(12)]  # ordered by started_at
    assert [tool.name for tool in detail.tools] == ["search"]
    assert [item.outcome for item in detail.feedback] == ["success"]
    assert detail.to_dict()["trace"]["started_at"] == "2024-05-01T10:00:00"

    filled.write([("trace", {"id": "abcdef" + "0" * 26}), ("trace", {"id": "abcd99" + "0" * 26})])
    assert filled.get_trace("abcde").trace.id == "abcdef" + "0" * 26
    assert filled.get_trace("ABCDEF").trace.id == "abcdef" + "0" * 26
    with pytest.raises(TraceNotFound, match="ambiguous"):
        filled.get_trace("abcd")
    with pytest.raises(TraceNotFound, match="no trace with id 'ffff'"):
        filled.get_trace("ffff")
    with pytest.raises(TraceNotFound, match="no trace with id '0%'"):
        filled.get_trace("0%")  # LIKE wildcards are taken literally
    with pytest.raises(TraceNotFound):
        filled.get_trace("  ")


def test_calls_filters(filled, rec):
    assert [call.id for call in filled.calls(trace_id=rec.trace_id(1))] == [rec.span_id(11), rec.span_id(12)]
    assert {call.id for call in filled.calls(model="gpt-4o-mini")} == {rec.span_id(21), rec.span_id(51)}
    assert [call.id for call in filled.calls(model="ft:gpt-4o-mini:acme")] == [rec.span_id(51)]
    assert {call.id for call in filled.calls(has_tool_calls=True)} == {rec.span_id(11), rec.span_id(31)}
    assert [call.id for call in filled.calls(status="error")] == [rec.span_id(21)]
    assert [call.id for call in filled.calls(since=rec.at(2 * 3600))] == [rec.span_id(31), rec.span_id(51)]
    assert [call.id for call in filled.calls(until=rec.at(1))] == [rec.span_id(11)]
    assert [call.id for call in filled.calls(limit=2, order="newest")] == [rec.span_id(51), rec.span_id(31)]
    assert len(filled.calls()) == 5


def test_stats(filled, rec):
    stats = filled.stats()
    assert (stats["traces"], stats["llm_calls"], stats["tool_executions"], stats["feedback"]) == (5, 5, 1, 3)
    assert stats["by_outcome"] == {"success": 2, "none": 2, "failure": 1}
    assert stats["by_model"][0] == {"model": "gpt-4o", "calls": 2, "input_tokens": 20, "output_tokens": 10, "errors": 0}
    mini = next(item for item in stats["by_model"] if item["model"] == "gpt-4o-mini")
    assert (mini["calls"], mini["errors"]) == (2, 1)
    assert (stats["errors"], stats["trace_errors"], stats["tool_errors"]) == (1, 1, 1)
    assert (stats["input_tokens"], stats["output_tokens"]) == (50, 25)
    # latencies 111, 112, 131, 151, 900: nearest rank
    assert stats["latency_ms"] == {"p50": 131.0, "p95": 900.0}
    assert stats["ttft_ms"] == {"p50": 80.0}
    later = filled.stats(since=rec.at(2 * 3600))
    assert (later["traces"], later["llm_calls"], later["errors"]) == (3, 2, 0)
    assert later["latency_ms"]["p50"] == 131.0


def test_stats_on_an_empty_store(store):
    stats = store.stats()
    assert stats["traces"] == 0 and stats["by_model"] == [] and stats["latency_ms"] == {"p50": None, "p95": None}
    assert stats["store"]["bytes"] > 0 and stats["store"]["bytes_per_call"] is None


def test_stats_say_the_stores_size_and_its_growth_a_day(store, rec):
    from agent_tracer.store.models import utcnow

    today = utcnow().replace(microsecond=0)
    records = [rec.trace(n, start=0.0) for n in range(1, 4)]
    records += [rec.call(n, rec.trace_id(1), started_at=today - timedelta(days=n % 2)) for n in range(1, 11)]
    records += [rec.call(99, rec.trace_id(2), started_at=today - timedelta(days=30))]  # older than the week
    store.write(records)
    size = store.stats()["store"]
    assert size["calls_per_day"] == {str(today.date()): 5, str((today - timedelta(days=1)).date()): 5}
    assert size["bytes"] > 0 and size["bytes_per_call"] == round(size["bytes"] / 11)
    assert size["bytes_per_day"] == round(size["bytes"] / 11 * 10 / 7)


def test_trace_summaries(filled, rec):
    summaries = filled.trace_summaries([rec.trace_id(1), rec.trace_id(2), rec.trace_id(4)])
    assert summaries[rec.trace_id(1)] == {"calls": 2, "input_tokens": 20, "output_tokens": 10, "errors": 0}
    assert summaries[rec.trace_id(2)]["errors"] == 1
    assert rec.trace_id(4) not in summaries


def test_iter_runs_streams_traces_with_their_calls_in_chunks(filled):
    runs = list(filled.iter_runs(order="oldest", chunk=2))
    assert [int(run.trace["id"], 16) for run in runs] == [1, 2, 3, 4, 5]
    assert [[int(call["id"], 16) for call in run.calls] for run in runs] == [[11, 12], [21], [31], [], [51]]
    assert runs[0].calls[0]["response"]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert [int(r.trace["id"], 16) for r in filled.iter_runs(order="best", limit=3, chunk=2)] == [1, 3, 2]
    assert [int(r.trace["id"], 16) for r in filled.iter_runs(tags=["eu"], limit=1, chunk=1)] == [3]
    assert filled.count_traces() == 5 and filled.count_traces(outcome="success") == 2
    assert filled.count_traces(tags=["prod"]) == 2 and filled.count_traces(name="nobody") == 0


def test_the_tool_calls_filter_finds_a_runs_calls_by_trace_id(tmp_path):
    """SQLite picked has_tool_calls' index for the subquery, reading every call with that value
    per trace (70 s for a page of 100,000 runs in bench/ui.py); by trace_id it reads the run's own."""
    import sqlalchemy as sa

    from agent_tracer.store import TraceStore
    from agent_tracer.store.queries import trace_query

    with TraceStore(f"sqlite:///{tmp_path / 'plan.db'}") as store:
        for with_tools in (True, False):
            query = trace_query(has_tool_calls=with_tools)
            sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
            with store.engine.connect() as conn:
                plan = " ".join(str(row) for row in conn.execute(sa.text("EXPLAIN QUERY PLAN " + sql)))
            assert "ix_llm_calls_trace_id" in plan and "ix_llm_calls_has_tool_calls" not in plan, plan


def test_the_tags_filter_matches_whole_tags_in_sql_as_python_would(store, rec):
    """Tags are filtered by the database (a page of the list stops after its rows), exactly as
    `tag in trace.tags`: case, a tag inside another, quotes, non-ASCII; with keyset steps and counts."""
    tag_lists = [["vip"], ["VIP"], ["vip-2", "x"], ['say "vip"'], ["x", "vip"], ["café", "vip"], [], ["held-out"]]
    store.write([rec.trace(n, tags=tags, start=n) for n, tags in enumerate(tag_lists, start=1)])
    newest_first = list(range(len(tag_lists), 0, -1))
    for tag in ("vip", "VIP", "vip-2", 'say "vip"', "café", "x", "vi", "held-out", "%", "_"):
        expected = [n for n in newest_first if tag in tag_lists[n - 1]]
        assert ids(store.traces(tags=[tag])) == expected, tag
        assert store.count_traces(tags=[tag]) == len(expected), tag
    assert ids(store.traces(tags=["vip", "x"])) == [5]
    assert ids(store.traces(tags=["vip", "café"], held_out=False)) == [6]
    assert ids(store.traces(held_out=True)) == [8] and 8 not in ids(store.traces(held_out=False))
    first = store.traces(tags=["vip"], limit=2)
    assert ids(first) == [6, 5]
    rest = store.traces(tags=["vip"], after=(first[-1].started_at, first[-1].id), limit=2)
    assert ids(rest) == [1]
    assert ids(store.traces(tags=["vip"], before=(rest[0].started_at, rest[0].id), limit=1)) == [5]
    assert store.count_traces(tags=["vip"], limit=2) == 2
    assert [int(run.trace["id"], 16) for run in store.iter_runs(tags=["vip"], limit=2, chunk=1)] == [6, 5]
    shards = [
        [
            int(r.trace["id"], 16)
            for _, runs in store.iter_run_chunks(tags=["vip"], limit=2, chunk=1, shard=(i, 2))
            for r in runs
        ]
        for i in range(2)
    ]
    assert shards == [[6], [5]]


def _plan(store, query) -> str:
    """The database's plan of `query`, as one text (PostgreSQL: told not to scan whole tables,
    so that on a handful of rows it still shows which index can give the list's order)."""
    import sqlalchemy as sa

    compiled = query.compile(store.engine)
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            params = tuple(compiled.params[key] for key in compiled.positiontup or ())
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params)
        else:
            conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
            rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
        return "\n".join(str(row) for row in rows)


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "ix_traces_newest"),
        ({"name": "billing-agent"}, "ix_traces_name_newest"),
        ({"outcome": "failure"}, "ix_traces_outcome_newest"),
        ({"rated": False}, "ix_traces_unrated_newest"),
        ({"status": "error"}, "ix_llm_calls_failed"),
        ({"tags": ["vip"]}, "ix_traces_newest"),
        ({"held_out": False}, "ix_traces_newest"),
    ],
)
def test_a_page_of_the_list_reads_an_index_in_its_order(store, filters, index):
    """m005's indexes give the list's order (newest first), so a page of a filter stops after its
    rows instead of sorting every match (name= and outcome= took 136-201 ms a page on SQLite at
    100,000 runs, status=error 345 ms on PostgreSQL, whose own default order for a descending scan
    puts NULLs first); the status filter finds failed calls in their partial index."""
    from agent_tracer.store.queries import trace_query

    plan = _plan(store, trace_query(**filters).limit(51))
    assert index in plan, plan
    if store.engine.dialect.name == "sqlite":
        assert "TEMP B-TREE FOR ORDER BY" not in plan, plan  # "FOR RIGHT PART OF ORDER BY" is not a sort of all
    else:
        assert "Sort" not in plan, plan
