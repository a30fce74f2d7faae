"""Full-text search over the calls' messages (`store/search.py`, migration m003_search), on both databases."""

from __future__ import annotations

import logging
import os
import random
import stat
from typing import Any

import pytest
import sqlalchemy as sa

from agent_tracer.errors import SchemaError
from agent_tracer.store import TraceStore
from agent_tracer.store import migrations as migrations_module
from agent_tracer.store import search as search_module
from agent_tracer.store import store as store_module
from agent_tracer.store.database import create_engine, writer
from agent_tracer.store.migrations import MIGRATIONS, _migrations_table, applied_migrations, migrate
from agent_tracer.store.models import utcnow
from agent_tracer.store.search import FTS_STATE, FTS_TABLE, SEARCH_TEXT_LIMIT, call_search_text


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
        store.index_search()
        integrity_check(store)


def integrity_check(store: TraceStore) -> None:
    """FTS5's check of its index against llm_calls (an error if they differ): the catch-up must be done."""
    with writer(store.engine).begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('integrity-check', 1)"))


def fts_state(store: TraceStore) -> tuple[int, int, int]:
    """SQLite: the state's last_rowid, llm_calls' largest rowid, and the rows in the FTS5 index."""
    with store.engine.connect() as conn:
        last = conn.execute(sa.text(f"SELECT last_rowid FROM {FTS_STATE}")).scalar_one()
        top = conn.execute(sa.text("SELECT coalesce(max(rowid), 0) FROM llm_calls")).scalar_one()
        indexed = conn.execute(sa.text(f"SELECT count(*) FROM {FTS_TABLE}_docsize")).scalar_one()
    return last, top, indexed


def test_a_search_right_after_a_write_finds_the_new_calls(store, rec):
    sqlite_db = store.engine.dialect.name == "sqlite"
    if sqlite_db:
        assert fts_state(store) == (0, 0, 0)
        assert store.index_search() == 0
    store.write(conversation(rec, 1) + conversation(rec, 2))
    if sqlite_db:
        assert fts_state(store) == (0, 2, 0)  # writing indexes nothing
    assert ids(store.traces(text="answerword2")) == [rec.trace_id(2)]  # the search caught up first
    if sqlite_db:
        assert fts_state(store) == (2, 2, 2)
    store.write(conversation(rec, 3))
    assert store.count_traces(text="toolresult3") == 1
    store.write(conversation(rec, 4))
    assert [run.trace["id"] for run in store.iter_runs(text="argword4")] == [rec.trace_id(4)]
    store.write(conversation(rec, 5))
    assert store.count_traces(text="userword5", tags=["x"]) == 0  # through iter_run_chunks
    assert store.traces(text="   ") and store.traces(text="!!") == []
    if sqlite_db:
        assert fts_state(store) == (5, 5, 5)
        assert store.index_search() == 0
        integrity_check(store)
    else:
        assert store.index_search() == 0  # PostgreSQL's GIN index needs no catch-up


def test_the_catch_up_goes_in_batches_with_calls_without_text(store, rec, monkeypatch):
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's FTS5 catch-up")
    monkeypatch.setattr(search_module, "INDEX_BATCH", 3)
    monkeypatch.setattr(search_module.index_calls, "__defaults__", (3,))
    records = []
    for n in range(1, 9):
        records += conversation(rec, n)
    records.append(rec.call(99, rec.trace_id(99)))  # its answer has words; its request none
    records.append(("llm_call", {**rec.call(98, rec.trace_id(98))[1], "request": {}, "response": {}}))  # no text
    store.write(records)
    assert store.index_search() == 10
    last, top, indexed = fts_state(store)
    assert last == top == indexed == 10
    assert ids(store.traces(text="toolresult7")) == [rec.trace_id(7)]
    integrity_check(store)


def test_an_idle_catch_up_goes_a_batch_at_a_time_and_gives_way_to_searches(store, rec, monkeypatch):
    """`index_search(batches=1, idle=True)`, as the UI's idle task calls it: one batch, and none
    while a search of the store runs (that search caught up first)."""
    if store.engine.dialect.name != "sqlite":
        assert store.index_search(batches=1, idle=True) == 0
        return
    monkeypatch.setattr(search_module.index_calls, "__defaults__", (3,))
    store.write([record for n in range(1, 8) for record in conversation(rec, n)])
    assert store.index_search(batches=1, idle=True) == 3 and fts_state(store) == (3, 7, 3)
    with store._searching({"text": "answerword"}):  # a search: caught up, then its query runs
        assert fts_state(store) == (7, 7, 7)
        store.write(conversation(rec, 8))
        assert store.index_search(batches=1, idle=True) == 0  # gives way while the search runs
    assert store.index_search(batches=1, idle=True) == 1 and fts_state(store) == (8, 8, 8)
    assert store.index_search(batches=1, idle=True) == 0
    integrity_check(store)


@pytest.mark.parametrize("dense_calls", [0, 1, 3, 10_000])
def test_a_page_of_a_search_is_the_same_dense_or_sparse(store, rec, monkeypatch, dense_calls):
    """A page of a search for a word many calls hold walks the runs newest first (on SQLite in
    chunks, each chunk's calls looked up by their rowids' range); a rarer word's runs come from
    its calls: the same runs, in the same order, with the other filters and keyset steps."""
    monkeypatch.setattr(search_module, "DENSE_CALLS", dense_calls)
    monkeypatch.setattr(store_module, "_DENSE_CHUNK", 2)
    records = []
    for n in range(1, 12):
        records += conversation(rec, n, name="a" if n % 2 else "b")
    records += conversation(rec, 0, name="a")  # the oldest run, written last: its call's rowid is the highest
    store.write(records)
    everything = [trace.id for trace in store.traces(text="answerword")]
    assert len(everything) == 12 and everything[-1] == rec.trace_id(0)
    for text, filters in [("answerword", {}), ("answerword", {"name": "a"}), ("userword3", {}), ("zebra", {})]:
        whole = [trace.id for trace in store.traces(text=text, **filters)]
        assert ids(store.traces(text=text, limit=3, **filters)) == whole[:3], (text, filters)
        if len(whole) > 3:
            page = store.traces(text=text, limit=3, **filters)
            after = (page[-1].started_at, page[-1].id)
            assert ids(store.traces(text=text, limit=100, after=after, **filters)) == whole[3:]
            back = store.traces(text=text, limit=2, before=after, **filters)
            assert ids(back) == whole[:2][::-1]


def test_a_call_written_again_with_other_text_keeps_its_first(store, rec):
    """Calls are never rewritten (ON CONFLICT DO NOTHING), which the catch-up by rowid relies on:
    a call written again, even with other words, keeps its row, its rowid and its indexed text."""
    store.write(conversation(rec, 1))
    assert ids(store.traces(text="answerword1")) == [rec.trace_id(1)]  # indexed
    again = conversation(rec, 1)
    again[1][1]["response"]["message"] = {"role": "assistant", "content": "rewritten newword"}
    again[1][1]["status"] = "incomplete"
    store.write(again)
    assert store.traces(text="newword") == []
    assert ids(store.traces(text="answerword1")) == [rec.trace_id(1)]
    (call,) = store.calls()
    assert call.status == "ok" and "newword" not in (call.search_text or "")
    if store.engine.dialect.name == "sqlite":
        integrity_check(store)


def test_the_index_stays_whole_through_mixed_writes_and_searches(store, rec):
    rng = random.Random(7)
    written: set[int] = set()
    for step in range(40):
        batch = [rng.randrange(1, 60) for _ in range(rng.randrange(1, 6))]
        records = []
        for n in batch:
            records += conversation(rec, n)
        store.write(records)  # some written before: skipped
        written.update(batch)
        if step % 3 == 0:
            n = rng.choice(sorted(written))
            assert ids(store.traces(text=f"userword{n} please")) == [rec.trace_id(n)]
    assert store.count_traces(text="found") == len(written)
    if store.engine.dialect.name == "sqlite":
        last, top, indexed = fts_state(store)
        assert last == top == indexed == len(written)
        integrity_check(store)


@pytest.mark.parametrize("how", ["uri", "chmod"])
def test_a_search_on_a_store_it_cannot_write_finds_what_is_indexed(tmp_path, rec, caplog, how):
    path = tmp_path / "traces.db"
    with TraceStore(f"sqlite:///{path}") as store:
        store.write(conversation(rec, 1))
        assert store.count_traces(text="answerword1") == 1
        store.write(conversation(rec, 2))  # not indexed yet
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes a read-only file")
        for item in tmp_path.iterdir():
            item.chmod(stat.S_IRUSR)
        url = f"sqlite:///{path}"
    else:
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    caplog.set_level(logging.DEBUG, logger="agent_tracer.store.store")
    try:
        with TraceStore(url, create=False) as store:
            for _ in range(3):
                assert ids(store.traces(text="answerword")) == [rec.trace_id(1)]  # without the newest
                assert store.count_traces(text="answerword") == 1
            assert store.index_search() == 0
    finally:
        for item in tmp_path.iterdir():
            item.chmod(stat.S_IRUSR | stat.S_IWUSR)
    notes = [r for r in caplog.records if "full-text index" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.DEBUG
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with TraceStore(f"sqlite:///{path}") as store:  # writable again: caught up
        assert store.count_traces(text="answerword") == 2


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
    assert migrate(engine)[0] == "m003_search"  # and the later ones
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


def test_a_replaced_call_is_searched_by_its_new_words(store, rec):
    """An `llm_call_update` (a call whose messages came after its span, over OTLP logs) replaces the
    stored call: its new words are found and its old ones no longer, whether or not the call was
    indexed before; the FTS5 index stays consistent."""
    store.write(conversation(rec, 1) + conversation(rec, 2))
    assert ids(store.traces(text="userword1")) == [rec.trace_id(1)]  # indexes both calls
    for n in (1, 2):
        [_, (_, call)] = conversation(rec, n)
        call["request"]["messages"] = [{"role": "user", "content": f"replacedword{n}"}]
        store.write([("llm_call_update", call)])
    assert store.traces(text="userword1") == []
    assert ids(store.traces(text="replacedword1")) == [rec.trace_id(1)]
    assert ids(store.traces(text="answerword2")) == [rec.trace_id(2)]  # the answer kept
    [trace, (_, fresh)] = conversation(rec, 3)
    store.write([trace, ("llm_call_update", fresh)])  # no call of that id yet: inserted
    assert ids(store.traces(text="userword3")) == [rec.trace_id(3)]
    if store.engine.dialect.name == "sqlite":
        integrity_check(store)
