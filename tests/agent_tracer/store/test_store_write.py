"""TraceStore.write: inserts, idempotence, trace merging, feedback, atomicity, volume, threads."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from agent_tracer.errors import ConfigError, StoreError
from agent_tracer.store import Feedback, LLMCall, TraceStore


def count(store: TraceStore, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_write_inserts_every_kind_and_rewriting_is_idempotent(store, rec):
    tid = rec.trace_id(1)
    records = [
        rec.trace(1, authoritative=True, tags=["a"]),
        (
            "agent_run",
            {
                "id": rec.span_id(100),
                "trace_id": tid,
                "name": "agent",
                "input": {"q": 1},
                "output": "done",
                "started_at": rec.at(0),
                "latency_ms": 1000.0,
            },
        ),
        rec.call(1, tid, parent_span_id=rec.span_id(100)),
        rec.call(2, tid, tool_calls=True, start=1),
        (
            "tool_execution",
            {
                "id": rec.span_id(200),
                "trace_id": tid,
                "name": "get_weather",
                "arguments": {"city": "Paris"},
                "result": {"sky": "sunny"},
                "latency_ms": 3.5,
            },
        ),
        ("feedback", {"id": "f" * 32, "trace_id": tid, "outcome": "success", "rating": 4}),
    ]
    assert store.write(records) == 6
    assert store.write(records) == 0
    assert store.write(records + [rec.call(1, tid)]) == 0  # a duplicate within the batch, too
    for table, expected in [
        ("traces", 1),
        ("agent_runs", 1),
        ("llm_calls", 2),
        ("tool_executions", 1),
        ("feedback", 1),
    ]:
        assert count(store, table) == expected

    detail = store.get_trace(tid)
    assert detail.trace.tags == ["a"] and detail.trace.outcome == "success" and detail.trace.rating == 4.0
    assert detail.agent_runs[0].input == {"q": 1} and detail.agent_runs[0].output == "done"
    assert detail.tools[0].arguments == {"city": "Paris"} and detail.tools[0].result == {"sky": "sunny"}
    first, second = detail.calls
    assert first.request["messages"][0]["content"] == "question 1"
    assert first.response["message"]["content"] == "answer 1"
    assert first.parent_span_id == rec.span_id(100)
    assert (first.has_tool_calls, second.has_tool_calls) == (False, True)
    assert second.tool_names == ["get_weather"] and second.finish_reasons == ["tool_calls"]
    assert first.streamed is False and first.status == "ok"


def test_write_derives_call_columns_from_the_response_when_missing(store, rec):
    kind, row = rec.call(1, rec.trace_id(1), tool_calls=True)
    for key in ("input_tokens", "output_tokens", "response_model", "has_tool_calls", "tool_names"):
        row.pop(key, None)
    store.write([(kind, row)])
    (call,) = store.calls()
    assert call.has_tool_calls is True and call.tool_names == ["get_weather"]
    assert (call.input_tokens, call.output_tokens, call.response_model) == (10, 5, "gpt-4o-mini-2024")


def test_datetimes_as_iso_strings_and_aware_values_are_stored_as_naive_utc(store, rec):
    tid = rec.trace_id(1)
    store.write(
        [
            ("trace", {"id": tid, "started_at": "2024-05-01T12:00:00+02:00", "ended_at": "2024-05-01T10:00:05Z"}),
            rec.call(1, tid, started_at=datetime(2024, 5, 1, 10, 0, 1, tzinfo=timezone.utc)),
            rec.call(2, tid, started_at="2024-05-01T10:00:02.250000"),
        ]
    )
    detail = store.get_trace(tid)
    assert detail.trace.started_at == datetime(2024, 5, 1, 10, 0, 0)
    assert detail.trace.ended_at == datetime(2024, 5, 1, 10, 0, 5)
    assert [call.started_at for call in detail.calls] == [
        datetime(2024, 5, 1, 10, 0, 1),
        datetime(2024, 5, 1, 10, 0, 2, 250000),
    ]
    assert detail.trace.started_at.tzinfo is None and detail.trace.updated_at.tzinfo is None


def test_unknown_keys_are_ignored_and_bad_records_rejected_before_writing(store, rec):
    kind, row = rec.call(1, rec.trace_id(1))
    assert store.write([(kind, {**row, "not_a_column": 1, "gen_ai.x": "y"})]) == 1
    with pytest.raises(StoreError, match="unknown record kind 'span'"):
        store.write([rec.call(2, rec.trace_id(1)), ("span", {"id": "x"})])
    with pytest.raises(StoreError, match="needs 'trace_id'"):
        store.write([rec.call(3, rec.trace_id(1)), ("llm_call", {"id": rec.span_id(4)})])
    with pytest.raises(StoreError, match="not an ISO-8601 datetime"):
        store.write([rec.call(5, rec.trace_id(1), started_at="yesterday")])
    assert count(store, "llm_calls") == 1
    assert store.write([]) == 0


def test_a_database_failure_inside_the_transaction_writes_nothing(store, rec):
    tid = rec.trace_id(1)
    with store.engine.begin() as conn:  # the llm_calls insert succeeds, the tool_executions one fails
        conn.execute(sa.text("DROP TABLE tool_executions"))
    tool = ("tool_execution", {"id": rec.span_id(9), "trace_id": tid, "name": "t"})
    with pytest.raises(sa.exc.DBAPIError):  # SQLAlchemy's own error, for the caller to retry or spill
        store.write([rec.trace(1), rec.call(1, tid), tool])
    assert count(store, "llm_calls") == 0 and count(store, "traces") == 0


def test_trace_rows_merge_by_id(store, rec):
    tid = rec.trace_id(7)
    # A child span's view first: fills what is empty.
    store.write(
        [
            (
                "trace",
                {
                    "id": tid,
                    "name": "guess",
                    "started_at": rec.at(5),
                    "ended_at": rec.at(6),
                    "source": "call",
                    "tags": ["x"],
                    "meta": {"a": 1, "b": 1},
                },
            )
        ]
    )
    # The root agent span: authoritative, overwrites with its non-null values.
    store.write(
        [
            (
                "trace",
                {
                    "id": tid,
                    "name": "planner",
                    "task": "plan a trip",
                    "status": "error",
                    "error": "boom",
                    "started_at": rec.at(2),
                    "ended_at": rec.at(4),
                    "source": "decorator",
                    "tags": ["y", "x"],
                    "meta": {"b": 2},
                    "authoritative": True,
                },
            )
        ]
    )
    # Another non-authoritative row: fills nothing that is set, but widens the time span.
    store.write(
        [
            (
                "trace",
                {
                    "id": tid,
                    "name": "late",
                    "status": "ok",
                    "task": None,
                    "started_at": rec.at(3),
                    "ended_at": rec.at(9),
                    "meta": {"b": 3, "c": 3},
                    "outcome": "success",
                    "rating": 5,
                    "comment": "ignored",
                },
            )
        ]
    )
    trace = store.get_trace(tid).trace
    assert (trace.name, trace.task, trace.status, trace.error, trace.source) == (
        "planner",
        "plan a trip",
        "error",
        "boom",
        "decorator",
    )
    assert (trace.started_at, trace.ended_at) == (rec.at(2), rec.at(9))
    assert trace.tags == ["x", "y"]
    assert trace.meta == {"a": 1, "b": 2, "c": 3}
    assert (trace.outcome, trace.rating, trace.comment) == (None, None, None)  # trace rows never rate


def test_several_rows_of_one_trace_in_one_batch_merge_in_order(store, rec):
    tid = rec.trace_id(3)
    written = store.write(
        [
            ("trace", {"id": tid, "name": "child-view", "started_at": rec.at(1)}),
            (
                "trace",
                {"id": tid, "name": "root", "started_at": rec.at(0), "ended_at": rec.at(8), "authoritative": True},
            ),
            ("trace", {"id": tid, "name": "other", "task": "t"}),
        ]
    )
    assert written == 1
    trace = store.get_trace(tid).trace
    assert (trace.name, trace.task, trace.started_at, trace.ended_at) == ("root", "t", rec.at(0), rec.at(8))
    assert store.write([("trace", {"id": tid, "name": "root", "authoritative": True})]) == 0  # nothing changed


def test_feedback_before_the_trace_exists(store, rec):
    tid = rec.trace_id(5)
    feedback = store.record_feedback(tid, outcome="failure", rating=1, comment="wrong city", label="bad")
    assert isinstance(feedback, Feedback) and len(feedback.id) == 32 and feedback.source == "api"
    stub = store.get_trace(tid).trace
    assert (stub.source, stub.outcome, stub.rating, stub.comment, stub.name) == (
        "feedback",
        "failure",
        1.0,
        "wrong city",
        None,
    )
    store.write([rec.trace(5, name="agent", authoritative=False)])  # the trace arrives later
    trace = store.get_trace(tid).trace
    assert (trace.name, trace.source, trace.outcome, trace.rating) == ("agent", "decorator", "failure", 1.0)
    detail = store.get_trace(tid)
    assert [(item.label, item.comment) for item in detail.feedback] == [("bad", "wrong city")]


def test_feedback_after_the_trace_exists_and_a_rating_only_keeps_the_outcome(store, rec):
    tid = rec.trace_id(6)
    store.write([rec.trace(6, authoritative=True)])
    store.record_feedback(tid, outcome="success", comment="fine")
    store.record_feedback(tid, rating=4.5)
    store.record_feedback(tid, label="golden")
    trace = store.get_trace(tid).trace
    assert (trace.outcome, trace.rating, trace.comment, trace.source) == ("success", 4.5, "fine", "decorator")
    assert len(store.get_trace(tid).feedback) == 3
    store.write([rec.trace(6, authoritative=True, name="renamed")])  # a later trace row keeps the rating
    trace = store.get_trace(tid).trace
    assert (trace.name, trace.outcome, trace.rating) == ("renamed", "success", 4.5)


def test_reimported_feedback_is_not_applied_twice(store, rec):
    tid = rec.trace_id(8)
    old = ("feedback", {"id": "a" * 32, "trace_id": tid, "rating": 2.0, "created_at": rec.at(0)})
    store.write([old])
    store.record_feedback(tid, rating=5)
    assert store.write([old]) == 0
    assert store.get_trace(tid).trace.rating == 5.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "at least one of"),
        ({"rating": 6}, "from 0 to 5"),
        ({"rating": -0.5}, "from 0 to 5"),
        ({"rating": "5"}, "from 0 to 5"),
        ({"rating": True}, "from 0 to 5"),
    ],
)
def test_record_feedback_validates(store, rec, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        store.record_feedback(rec.trace_id(1), **kwargs)
    assert count(store, "feedback") == 0


def test_five_thousand_calls_in_batches(store, rec):
    records = []
    for n in range(5000):
        if n % 50 == 0:
            records.append(rec.trace(n // 50, start=n))
        records.append(rec.call(n, rec.trace_id(n // 50), tool_calls=n % 3 == 0, start=n, raw_request="x" * 1500))
    written = sum(store.write(records[i : i + 500]) for i in range(0, len(records), 500))
    assert written == 5100
    assert count(store, "llm_calls") == 5000 and count(store, "traces") == 100
    assert len(store.calls(has_tool_calls=True)) == 1667
    assert store.trace_summaries([rec.trace_id(0)])[rec.trace_id(0)] == {
        "calls": 50,
        "input_tokens": 500,
        "output_tokens": 250,
        "errors": 0,
    }
    assert sum(store.write(records[i : i + 1000]) for i in range(0, len(records), 1000)) == 0


def test_one_writer_thread_and_readers_share_a_store(store, rec):
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for batch in range(20):
                tid = rec.trace_id(batch)
                store.write([rec.trace(batch)] + [rec.call(batch * 100 + i, tid) for i in range(25)])
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                store.traces(limit=5)
                store.stats()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert count(store, "llm_calls") == 500 and store.stats()["traces"] == 20


def test_two_stores_on_one_database_write_the_same_trace_concurrently(store_url, rec):
    """Feedback from one process and the root span from another must both land."""
    first, second = TraceStore(store_url), TraceStore(store_url)
    try:
        tid = rec.trace_id(42)
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(fn) -> None:
            try:
                barrier.wait()
                fn()
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=(lambda: first.write([rec.trace(42, authoritative=True)]),)),
            threading.Thread(target=run, args=(lambda: second.record_feedback(tid, outcome="success"),)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors
        trace = first.get_trace(tid).trace
        assert (trace.name, trace.source, trace.outcome) == ("agent", "decorator", "success")
    finally:
        first.close()
        second.close()


def test_llm_call_model_defaults(store, rec):
    store.write([("llm_call", {"id": rec.span_id(1), "trace_id": rec.trace_id(1)})])
    (call,) = store.calls()
    assert isinstance(call, LLMCall)
    assert (call.status, call.streamed, call.has_tool_calls, call.finish_reasons, call.tool_names) == (
        "ok",
        False,
        False,
        [],
        [],
    )
    assert call.started_at is None and call.request is None
    assert store.calls(since=datetime(2000, 1, 1) + timedelta(days=1)) == []


def test_sqlite_rows_are_stored_byte_for_byte_as_sqlalchemy_core_stores_them(tmp_path, rec, stored_rows):
    """`write` inserts SQLite rows as plain tuples (`rows.SQLiteInsert`), below SQLAlchemy's
    parameter processing: what lands in the file must be what the Core insert puts there (JSON
    text, datetime text, nulls, booleans), or readers of older rows would see two formats."""

    from agent_tracer.store.rows import SPECS, insert_ignore

    tid = rec.trace_id(7)
    records = [
        rec.trace(7, authoritative=True, tags=["a", "é"], meta={"k": [1, 2.5, None, True]}),
        ("agent_run", {"id": rec.span_id(1), "trace_id": tid, "input": None, "output": "ok", "started_at": rec.at(0)}),
        rec.call(1, tid, tool_calls=True, started_at=datetime(2024, 5, 1, 10, 0, 0, 0), latency_ms=12),
        rec.call(2, tid, started_at="2024-05-01T12:00:00.5+02:00", streamed=True, ttft_ms=None),
        ("tool_execution", {"id": rec.span_id(2), "trace_id": tid, "arguments": "text", "result": 3}),
        ("unmapped_span", {"id": rec.span_id(3), "trace_id": tid, "attributes": {"a": {"b": []}}}),
    ]
    fast = TraceStore(f"sqlite:///{tmp_path / 'fast.db'}")
    core = TraceStore(f"sqlite:///{tmp_path / 'core.db'}")
    try:
        fast.write(records)
        with core.engine.begin() as conn:
            for kind, row in records:
                conn.execute(insert_ignore("sqlite", SPECS[kind].table), [SPECS[kind].normalize(row)])
    finally:
        fast.close()
        core.close()
    fast_rows, core_rows = stored_rows(tmp_path / "fast.db"), stored_rows(tmp_path / "core.db")
    for table, rows in fast_rows.items():
        assert rows and rows == core_rows[table], table
