"""Full-text search over what was said in the model calls, with each database's own engine.

Each `llm_calls` row carries `search_text`: the text of its request messages and of its answer,
and its tool calls' names and arguments (`call_search_text`), in words as `messages.py` reads
them, never the JSON around them (so "role" or "content" match nothing). It is computed in Python
where calls are written, so both databases index the same text; migration `m003_search` adds it,
fills it for the calls already stored and builds the index:

- SQLite: the FTS5 table `llm_calls_fts`, external content over `llm_calls.search_text` (no copy
  of the text), filled by a catch-up (`index_calls`, run by `TraceStore.index_search()`), not by
  triggers: FTS5 indexing a call's text costs about twice what the rest of its write does, and
  the capture writer must stay fast. On write nothing happens to the index; the one-row table
  `llm_calls_fts_state` holds the last `llm_calls` rowid indexed, and the catch-up indexes the
  calls above it, a batch per transaction with the state's update. Every text search runs it
  first, so a search sees every call written before it; on a store this process cannot write (a
  read-only file, a lock held past the busy timeout) the search goes on without the newest calls.
  This holds because a call row rarely changes once written (`TraceStore.write` inserts calls
  with ON CONFLICT DO NOTHING; only an `llm_call_update` record, a call whose messages came after
  its span, and the merge of two copies of one call, `same_calls.py`, change one, both through
  `update_calls`) and SQLite hands out rowids in commit order (one writer at a time, each new
  rowid above the largest). Whoever changes a call must keep the index in step, in the same
  transaction as the change:
  - updating a call's `search_text` (`change_call_text`): a row above `last_rowid` needs nothing
    (the catch-up indexes its new text); an indexed one gets
    `INSERT INTO llm_calls_fts(llm_calls_fts, rowid, search_text) VALUES ('delete', rowid, old
    text)`, then the update, then its new text inserted the same way without 'delete';
  - deleting calls (retention): first `index_calls`, then the same 'delete' with each row's
    stored `search_text` (never for a row not yet indexed: FTS5 would corrupt its index), then
    the rows; then set the state's `last_rowid` to `max(rowid)` of the calls left (SQLite reuses
    the rowids above the largest left, which must not count as indexed).
  The table maps calls by rowid: should a tool ever renumber them (SQLite's VACUUM keeps them),
  `INSERT INTO llm_calls_fts(llm_calls_fts) VALUES('rebuild')` and setting `last_rowid` to
  `max(rowid)` rebuild it.
- PostgreSQL: a GIN index on `to_tsvector('simple', coalesce(search_text, ''))`, the expression
  that `search_condition` compiles to, so that the planner uses it. Its parser keeps some tokens
  whole that FTS5 splits ("report.pdf", "example.com", "3.14"), so a search there also matches
  the text as that parser splits it (`plainto_tsquery`).

A search is words, not a query language: `search_words` keeps the letters and digits of what the
user typed, every word must occur in the same call (case-insensitive), and the last word may be
the start of a longer one. Quotes, `OR`, `NEAR(`, `*` or `-` are words or nothing, never syntax.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement

from agent_tracer.messages import message_text

SEARCH_TEXT_LIMIT = 200_000
"""Characters of a call's text that are indexed: the last ones (the newest turns and the answer;
the earlier turns of a run were the end of its earlier calls). Keeps PostgreSQL's tsvector, which
must stay under 1 MB, well clear of its limit."""

FTS_TABLE = "llm_calls_fts"
FTS_STATE = "llm_calls_fts_state"
"""One row: `last_rowid`, the largest `llm_calls` rowid that the FTS5 table has indexed."""
INDEX_BATCH = 5000
"""Calls indexed per transaction of the catch-up: what a writer may wait for (BENCHMARKS.md)."""
PG_INDEX = "ix_llm_calls_search"
PG_VECTOR = "to_tsvector('simple', coalesce({column}, ''))"
"""PostgreSQL's document expression: the index's and the query's, written the same."""

_WORD = re.compile(r"[^\W_]+")


def call_search_text(request: Any, response: Any) -> str | None:
    """The searchable text of a call from its canonical request and response dicts: each message's
    text, each tool call's name and arguments, one piece a line; None when there is none."""
    pieces: list[str] = []
    messages = request.get("messages") if isinstance(request, dict) else None
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                _message_pieces(message, pieces)
    answer = response.get("message") if isinstance(response, dict) else None
    if isinstance(answer, dict):
        _message_pieces(answer, pieces)
    if not pieces:
        return None
    text = "\n".join(pieces)
    if len(text) > SEARCH_TEXT_LIMIT:
        text = text[-SEARCH_TEXT_LIMIT:]
    if "\x00" in text:  # PostgreSQL's text cannot hold it
        text = text.replace("\x00", " ")
    return text


def content_key(search_text: str | None) -> str | None:
    """A call's text (`call_search_text`) as a short digest, white space left out (one copy's tool
    arguments may be spaced as the model sent them, the other's as a library wrote them again)."""
    if not search_text:
        return None
    return hashlib.blake2b("".join(search_text.split()).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _message_pieces(message: dict[str, Any], pieces: list[str]) -> None:
    text = message_text(message)
    if text:
        pieces.append(text)
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            for value in (function.get("name"), function.get("arguments")):
                if isinstance(value, str) and value:
                    pieces.append(value)


def index_calls(conn: sa.Connection, batch: int = INDEX_BATCH) -> int:
    """SQLite: index in `llm_calls_fts` the next `batch` calls above the state's `last_rowid` and
    advance it, on `conn` (in a write transaction: the caller's); return how many it indexed (0:
    the index is up to date). Calls without text are indexed too (as no words): FTS5's
    integrity-check, like its 'rebuild', counts every row of the content table."""
    last = conn.execute(sa.text(f"SELECT last_rowid FROM {FTS_STATE}")).scalar_one()
    upper, rows = conn.execute(
        sa.text(
            "SELECT max(rowid), count(*) FROM "
            "(SELECT rowid FROM llm_calls WHERE rowid > :last ORDER BY rowid LIMIT :batch)"
        ),
        {"last": last, "batch": batch},
    ).one()
    if not rows:
        return 0
    conn.execute(
        sa.text(
            f"INSERT INTO {FTS_TABLE}(rowid, search_text) SELECT rowid, search_text FROM llm_calls "
            "WHERE rowid > :last AND rowid <= :upper ORDER BY rowid"
        ),
        {"last": last, "upper": upper},
    )
    conn.execute(sa.text(f"UPDATE {FTS_STATE} SET last_rowid = :upper"), {"upper": upper})
    return int(rows)


def change_call_text(conn: sa.Connection, rowid: int, old: str | None, new: str | None) -> None:
    """SQLite: keep `llm_calls_fts` in step with a call whose `search_text` goes from `old` to
    `new` in this transaction (the update rule of the module's docstring). A call above the
    state's `last_rowid` is not indexed yet: the catch-up will index its new text, nothing to do."""
    last = conn.execute(sa.text(f"SELECT last_rowid FROM {FTS_STATE}")).scalar_one()
    if rowid > last:
        return
    change = f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, search_text) VALUES ('delete', :rowid, :text)"
    conn.execute(sa.text(change), {"rowid": rowid, "text": old})
    conn.execute(
        sa.text(f"INSERT INTO {FTS_TABLE}(rowid, search_text) VALUES (:rowid, :text)"), {"rowid": rowid, "text": new}
    )


def update_calls(conn: sa.Connection, table: sa.Table, params: list[dict[str, Any]]) -> None:
    """Update calls whose `search_text` may change (each dict: the new columns, and `b_id`, the
    id the row has), keeping SQLite's FTS5 index in step (`change_call_text`), in the caller's
    transaction. PostgreSQL's index follows by itself."""
    statement = sa.update(table).where(table.c.id == sa.bindparam("b_id"))
    if conn.dialect.name != "sqlite":
        conn.execute(statement, params)
        return
    for item in params:
        old = conn.execute(
            sa.text("SELECT rowid, search_text FROM llm_calls WHERE id = :id"), {"id": item["b_id"]}
        ).one_or_none()
        if old is not None and "search_text" in item and old.search_text != item["search_text"]:
            change_call_text(conn, old.rowid, old.search_text, item["search_text"])
        conn.execute(statement, item)


def unindexed_calls(conn: sa.Connection) -> bool:
    """SQLite: whether calls above the state's `last_rowid` wait for `index_calls` (a read only)."""
    query = f"SELECT (SELECT max(rowid) FROM llm_calls) > (SELECT last_rowid FROM {FTS_STATE})"
    return bool(conn.execute(sa.text(query)).scalar())


def search_words(text: str) -> list[str]:
    """The words of a search as typed: runs of letters and digits, lower-cased."""
    return [word.lower() for word in _WORD.findall(text or "")]


def fts5_query(words: list[str]) -> str:
    """An FTS5 MATCH expression: every word (quoted, so `OR` or `NEAR` are words), the last as a prefix."""
    return " ".join(f'"{word}"' for word in words) + "*"


def tsquery(words: list[str]) -> str:
    """A PostgreSQL `to_tsquery` text: every word, the last as a prefix (`:*`)."""
    return " & ".join(words) + ":*"


DENSE_CALLS = 20_000
"""A search that more calls than this match is `dense` (`TraceStore.traces`): a page of its runs is
found walking the runs newest first and asking each whether a call of its matches, which stops
within a few hundred runs; a rarer one reads its matching calls from the index and sorts their
runs, whose number this bounds. Either alone is slow at a million runs for the other kind of word
(BENCHMARKS.md, "Web UI page times")."""


class RunsMatching(ColumnElement[bool]):
    """True for a `traces` row with a call that holds every word of a search (`search_condition`)."""

    inherit_cache = False
    type = sa.Boolean()

    def __init__(self, text: str, words: list[str], dense: bool) -> None:
        self.text = text
        self.words = words
        self.dense = dense


@compiles(RunsMatching, "sqlite")
def _sqlite_match(element: RunsMatching, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite's dense search is `TraceStore._dense_search_page` (FTS5 redoes a prefix's merge for
    # each query, so a subquery per run or per call costs milliseconds each): only this shape here
    query = compiler.process(sa.bindparam("search_fts", fts5_query(element.words), unique=True), **kw)
    # the matching calls from the index first (CROSS JOIN keeps that order), then their runs by id
    return (
        f"traces.id IN (SELECT c.trace_id FROM {FTS_TABLE} CROSS JOIN llm_calls AS c "
        f"ON c.rowid = {FTS_TABLE}.rowid WHERE {FTS_TABLE} MATCH {query})"
    )


@compiles(RunsMatching, "postgresql")
def _postgresql_match(element: RunsMatching, compiler: SQLCompiler, **kw: Any) -> str:
    vector = PG_VECTOR.format(column="c.search_text")
    match = f"{vector} @@ {_pg_tsquery(element, compiler, **kw)}"
    if element.dense:
        return f"EXISTS (SELECT 1 FROM llm_calls AS c WHERE c.trace_id = traces.id AND {match})"
    # ARRAY(…) is computed once, from the GIN index: the planner cannot turn it into a walk of
    # every run that probes each one's calls, which it chose for a word it could not estimate
    return f"traces.id = ANY(ARRAY(SELECT c.trace_id FROM llm_calls AS c WHERE {match}))"


def _pg_tsquery(element: RunsMatching, compiler: SQLCompiler, **kw: Any) -> str:
    # Either every word as the user split them, the last a prefix, or the text as PostgreSQL's own
    # parser splits it, which keeps "report.pdf", "3.14" or "example.com" one lexeme as in the calls.
    words = compiler.process(sa.bindparam("search_words", tsquery(element.words), unique=True), **kw)
    text = compiler.process(sa.bindparam("search_text", element.text, unique=True), **kw)
    return f"(to_tsquery('simple', {words}) || plainto_tsquery('simple', {text}))"


@compiles(RunsMatching)
def _other_match(element: RunsMatching, compiler: SQLCompiler, **kw: Any) -> str:
    raise sa.exc.CompileError(f"full-text search is not available on {compiler.dialect.name}")


def search_condition(text: str, *, dense: bool = False) -> Any:
    """The condition on `traces` that a call of the run matches `text`; `dense`: in the shape for
    a word that many calls hold (`DENSE_CALLS`). A search with no word in it (only punctuation)
    matches nothing."""
    words = search_words(text)
    if not words:
        return sa.false()
    return RunsMatching(text, words, dense)


def matching_calls(conn: sa.Connection, text: str, lowest: int, highest: int) -> set[int]:
    """SQLite: the rowids from `lowest` to `highest` of the calls that match `text`."""
    query = f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q AND rowid BETWEEN :lo AND :hi"
    params = {"q": fts5_query(search_words(text)), "lo": lowest, "hi": highest}
    return set(conn.execute(sa.text(query), params).scalars())


def is_dense(conn: sa.Connection, text: str, calls: int | None = None) -> bool:
    """Whether more than `calls` (default `DENSE_CALLS`) calls match `text`. SQLite: counted in the
    index, stopping at `calls` + 1. PostgreSQL: its planner's estimate (from the GIN expression's
    statistics; counting read every matching call's row, seconds at a million runs), which must
    also pass `DENSE_SHARE` of the calls: a word the statistics do not know is estimated at about
    1 % of them, and must not walk the runs (a word found nowhere would read every run's calls)."""
    calls = DENSE_CALLS if calls is None else calls
    words = search_words(text)
    if not words:
        return False
    if conn.dialect.name == "sqlite":
        query = f"SELECT count(*) FROM (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :q LIMIT :n)"
        return int(conn.execute(sa.text(query), {"q": fts5_query(words), "n": calls + 1}).scalar_one()) > calls
    match = "(to_tsquery('simple', :words) || plainto_tsquery('simple', :text))"
    vector = PG_VECTOR.format(column="search_text")
    found = _estimate(
        conn, f"SELECT 1 FROM llm_calls WHERE {vector} @@ {match}", {"words": tsquery(words), "text": text}
    )
    return found > calls and found > DENSE_SHARE * _estimate(conn, "SELECT 1 FROM llm_calls", {})


DENSE_SHARE = 0.015
"""PostgreSQL: the share of all calls that a search's estimate must pass to be dense (`is_dense`)."""


def _estimate(conn: sa.Connection, query: str, params: dict[str, Any]) -> float:
    plan = conn.execute(sa.text(f"EXPLAIN (FORMAT JSON) {query}"), params).scalar_one()
    if isinstance(plan, (str, bytes)):
        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"])
