"""Full-text search over the calls' messages (`store/search.py`, migration m003_search), on both databases."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from agent_tracer.errors import SchemaError
from agent_tracer.store import TraceStore
from agent_tracer.store import migrations as migrations_module
from agent_tracer.store.database import create_engine, writer
from agent_tracer.store.migrations import MIGRATIONS, _migrations_table, applied_migrations, migrate
from agent_tracer.store.models import utcnow
from agent_tracer.store.search import FTS_TABLE, SEARCH_TEXT_LIMIT, call_search_text


def conversation(rec: Any, n: int, **fields: Any) -> list[tuple[str, dict[str, Any]]]:
    """Trace n: a call whose user asks about a city, a tool finds a result, and the model answers
    with a tool call; every word is unique to trace n (`w{n}…`)."""
    trace_id = rec.trace_id(n)
    kind, call = rec.call(n, trace_id, start=n)
    call["request"]["messages"] = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": f"Find userword{n} please"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": f"lookup{n}", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": f"toolresult{n} found"},
    ]
    call["response"]["message"] = {
        "role": "assistant",
        "content": f"The answer is answerword{n}.",
        "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "send", "arguments": f'{{"to": "argword{n}"}}'}}
        ],
    }
    return [rec.trace(n, start=n, **fields), (kind, call)]


def ids(traces: list[Any]) -> list[str]:
    return [trace.id for trace in traces]


def test_the_words_of_messages_answers_and_tool_calls_are_found(store, rec):
    store.write(conversation(rec, 1) + conversation(rec, 2))
    one = rec.trace_id(1)
    for words in ("userword1", "toolresult1", "answerword1", "argword1", "lookup1", "USERWORD1 answerword1"):
        assert ids(store.traces(text=words)) == [one], words
        assert store.count_traces(text=words) == 1
    assert ids(store.traces(text="answerwo")) == [rec.trace_id(2), one]  # the last word is a prefix
    assert ids(store.traces(text="userword1 answerword2")) == []  # every word, in the same call
    for key in ("role", "content", "tool_calls", "function", "type", "arguments"):
        assert store.traces(text=key) == [], key  # the JSON around the words is not searched
    assert store.traces(text="   ") == store.traces()  # no search at all


@pytest.mark.parametrize(
    "text, found",
    [
        ('"', False),
        ('foo" OR', False),
        ("OR", False),
        ("AND NOT", False),
        ("NEAR(", False),
        ("NEAR(userword1 answerword1", False),  # "near" is a word the call does not hold
        ("*", False),
        ("-", False),
        ("!&|()", False),
        ("'", False),
        ("\\", False),
        ("-userword1", True),  # not a NOT: the word
        ('"userword1" OR "nothing', False),  # not an OR: every word
        ("userw*", True),  # the last word is a prefix anyway
        ("answerword1:*", True),
    ],
)
def test_query_syntax_in_a_search_is_only_words(store, rec, text, found):
    store.write(conversation(rec, 1))
    assert ids(store.traces(text=text)) == ([rec.trace_id(1)] if found else []), text
    assert store.count_traces(text=text) == int(found)


def test_search_goes_with_other_filters_and_pages(store, rec):
    records = []
    for n in range(1, 8):
        records += conversation(rec, n)
    store.write(records)
    for n in (2, 3, 5, 6):
        store.record_feedback(rec.trace_id(n), outcome="success")
    assert ids(store.traces(text="found", outcome="success")) == [rec.trace_id(n) for n in (6, 5, 3, 2)]
    assert store.count_traces(text="found", outcome="success") == 4
    first = store.traces(text="found", outcome="success", limit=3)
    after = (first[-1].started_at, first[-1].id)
    assert ids(store.traces(text="found", outcome="success", after=after, limit=3)) == [rec.trace_id(2)]
    assert ids(store.traces(text="toolresult4 found", has_tool_calls=True)) == [rec.trace_id(4)]
    runs = list(store.iter_runs(text="argword5"))
    assert [run.trace["id"] for run in runs] == [rec.trace_id(5)] and "search_text" not in runs[0].calls[0]


def test_search_text_is_kept_by_writes(store, rec):
    store.write(conversation(rec, 1))
    store.write(conversation(rec, 1))  # written twice: skipped, and the index stays whole
    (call,) = store.calls()
    assert call.search_text is not None
    assert call.search_text.splitlines() == [
        "You are helpful.",
        "Find userword1 please",
        "lookup1",
        "{}",
        "toolresult1 found",
        "The answer is answerword1.",
        "send",
        '{"to": "argword1"}',
    ]
    assert "search_text" not in store.get_trace(rec.trace_id(1)).to_dict()["calls"][0]
    if store.engine.dialect.name == "sqlite":
        with writer(store.engine).begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('integrity-check', 1)"))


def test_call_search_text_edges():
    assert call_search_text(None, None) is None
    assert call_search_text({"messages": []}, {"message": {"role": "assistant", "content": None}}) is None
    refusal = {"role": "assistant", "content": None, "refusal": "I cannot."}
    assert call_search_text({"messages": ["odd", {"role": "user", "content": "a\x00b"}]}, {"message": refusal}) == (
        "a b\nI cannot."
    )
    long = call_search_text({"messages": [{"role": "user", "content": "x" * SEARCH_TEXT_LIMIT}]}, {"message": refusal})
    assert long is not None and len(long) == SEARCH_TEXT_LIMIT and long.endswith("I cannot.")


def _old_store(url: str) -> sa.Engine:
    """A store at migration m002: before search existed."""
    engine = create_engine(url)
    with writer(engine).begin() as conn:
        _migrations_table.create(conn)
        for item in MIGRATIONS[:2]:
            item.apply(conn)
            conn.execute(_migrations_table.insert().values(name=item.name, applied_at=utcnow()))
    return engine


def test_the_migration_fills_the_index_for_calls_written_before_it(store_url, rec, monkeypatch):
    engine = _old_store(store_url)
    monkeypatch.setattr(migrations_module, "_BACKFILL_BATCH", 2)  # several batches
    table = sa.table(
        "llm_calls",
        *(sa.column(name) for name in ("id", "trace_id", "streamed", "status", "has_tool_calls")),
        sa.column("request", sa.JSON),
        sa.column("response", sa.JSON),
    )
    traces = sa.table("traces", sa.column("id"), sa.column("started_at"), sa.column("updated_at"))
    with writer(engine).begin() as conn:
        for n in range(1, 6):
            row = conversation(rec, n)[1][1]
            conn.execute(traces.insert().values(id=row["trace_id"], started_at=rec.at(n), updated_at=utcnow()))
            conn.execute(
                table.insert().values(
                    id=row["id"],
                    trace_id=row["trace_id"],
                    streamed=False,
                    status="ok",
                    has_tool_calls=True,
                    request=row["request"],
                    response=row["response"],
                )
            )
        conn.execute(
            table.insert().values(id="nobody", trace_id="t", streamed=False, status="ok", has_tool_calls=False)
        )
    assert migrate(engine) == ["m003_search"]
    engine.dispose()
    with TraceStore(store_url) as store:
        assert ids(store.traces(text="toolresult3")) == [rec.trace_id(3)]
        assert ids(store.traces(text="argword")) == [rec.trace_id(n) for n in (5, 4, 3, 2, 1)]
        store.write(conversation(rec, 9))  # and calls written after it are found too
        assert ids(store.traces(text="answerword9")) == [rec.trace_id(9)]


def test_a_sqlite_without_fts5_is_refused_before_any_change(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _old_store(url).dispose()
    monkeypatch.setattr(migrations_module, "_FTS5_PROBE", "CREATE VIRTUAL TABLE temp.probe USING fts5_missing(text)")
    with pytest.raises(SchemaError, match=r"has no FTS5, which the trace store's search needs"):
        TraceStore(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert applied_migrations(conn) == ["m001_initial", "m002_fallback_reason"]
        assert "search_text" not in {column["name"] for column in sa.inspect(conn).get_columns("llm_calls")}
    engine.dispose()
