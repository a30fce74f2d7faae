"""Ordered, named schema migrations, tracked in the table `agent_tracer_migrations(name, applied_at)`.

As in simonw/llm's `llm/migrations.py`: each migration is a function registered with `@migration`,
applied once, in order, and recorded by name. A migration describes the schema as it was when it was
written (never the current models), so a later migration can change a table that an earlier one
created. To change a table: add `m00N_…` at the end; never edit an applied one.

`migrate(engine)` is idempotent and safe when several processes start at once: the migrations run
in one transaction that holds SQLite's write lock (`BEGIN IMMEDIATE`) or a PostgreSQL advisory
lock, and both engines roll DDL back with the transaction. A database with migrations this code
does not know was written by a newer agent-tracer: `SchemaError`, rather than guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from sqlite3 import sqlite_version
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text
from sqlalchemy.engine import Connection, Engine

from agent_tracer import fastjson
from agent_tracer.errors import SchemaError, first_line
from agent_tracer.store.database import redact, writer
from agent_tracer.store.models import utcnow
from agent_tracer.store.search import FTS_STATE, FTS_TABLE, PG_INDEX, PG_VECTOR, call_search_text, index_calls

MIGRATIONS_TABLE = "agent_tracer_migrations"
_PG_LOCK_KEY = 0x61677472  # "agtr": pg_advisory_xact_lock key held while migrating


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[Connection], None]


MIGRATIONS: list[Migration] = []


def migration(fn: Callable[[Connection], None]) -> Callable[[Connection], None]:
    MIGRATIONS.append(Migration(fn.__name__, fn))
    return fn


@migration
def m001_initial(conn: Connection) -> None:
    """The five tables: traces, agent_runs, llm_calls, tool_executions, feedback."""
    md = MetaData()

    def span_columns() -> list[Column]:
        return [
            Column("id", String, primary_key=True),
            Column("trace_id", String, nullable=False, index=True),
            Column("parent_span_id", String),
        ]

    Table(
        "traces",
        md,
        Column("id", String, primary_key=True),
        Column("name", String, index=True),
        Column("task", String),
        Column("started_at", DateTime, index=True),
        Column("ended_at", DateTime),
        Column("status", String),
        Column("error", String),
        Column("outcome", String, index=True),
        Column("rating", Float),
        Column("comment", String),
        Column("tags", JSON),
        Column("meta", JSON),
        Column("source", String),
        Column("updated_at", DateTime, nullable=False),
    )
    Table(
        "agent_runs",
        md,
        *span_columns(),
        Column("name", String),
        Column("input", JSON),
        Column("output", JSON),
        Column("error", String),
        Column("started_at", DateTime),
        Column("ended_at", DateTime),
        Column("latency_ms", Float),
    )
    Table(
        "llm_calls",
        md,
        *span_columns(),
        Column("provider", String),
        Column("api", String),
        Column("operation", String),
        Column("request_model", String, index=True),
        Column("response_model", String),
        Column("response_id", String),
        Column("request", JSON),
        Column("response", JSON),
        Column("raw_request", Text),
        Column("raw_response", Text),
        Column("input_tokens", Integer),
        Column("output_tokens", Integer),
        Column("latency_ms", Float),
        Column("ttft_ms", Float),
        Column("streamed", Boolean, nullable=False),
        Column("status", String, nullable=False),
        Column("http_status", Integer),
        Column("error", String),
        Column("finish_reasons", JSON),
        Column("has_tool_calls", Boolean, nullable=False, index=True),
        Column("tool_names", JSON),
        Column("route", String),
        Column("endpoint", String),
        Column("started_at", DateTime, index=True),
        Column("ended_at", DateTime),
    )
    Table(
        "tool_executions",
        md,
        *span_columns(),
        Column("name", String),
        Column("arguments", JSON),
        Column("result", JSON),
        Column("error", String),
        Column("latency_ms", Float),
        Column("started_at", DateTime),
        Column("ended_at", DateTime),
    )
    Table(
        "feedback",
        md,
        Column("id", String, primary_key=True),
        Column("trace_id", String, nullable=False, index=True),
        Column("outcome", String),
        Column("rating", Float),
        Column("comment", String),
        Column("label", String),
        Column("source", String),
        Column("created_at", DateTime, nullable=False),
    )
    md.create_all(conn, checkfirst=False)


@migration
def m002_fallback_reason(conn: Connection) -> None:
    """llm_calls.fallback_reason: why the proxy's router asked the fallback."""
    conn.execute(sa.text("ALTER TABLE llm_calls ADD COLUMN fallback_reason VARCHAR"))


_FTS5_PROBE = "CREATE VIRTUAL TABLE temp.agent_tracer_fts5_probe USING fts5(text)"


@migration
def m003_search(conn: Connection) -> None:
    """llm_calls.search_text and its full-text index (see `search.py`), filled for the calls stored."""
    sqlite_db = conn.dialect.name == "sqlite"
    if sqlite_db:  # before any change: a SQLite built without FTS5 gets a clear error, not half a schema
        try:
            conn.execute(sa.text(_FTS5_PROBE))
        except sa.exc.OperationalError as exc:
            raise SchemaError(
                f"this SQLite ({sqlite_version}) has no FTS5, which the trace store's search needs: "
                f"use a Python whose sqlite3 has it (most do), or PostgreSQL ({first_line(exc.orig)})"
            ) from None
        conn.execute(sa.text("DROP TABLE temp.agent_tracer_fts5_probe"))
    conn.execute(sa.text("ALTER TABLE llm_calls ADD COLUMN search_text TEXT"))
    _backfill_search_text(conn)
    if sqlite_db:
        # No triggers: the calls are indexed by a catch-up (`search.index_calls`), see search.py.
        conn.execute(
            sa.text(
                f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(search_text, content='llm_calls', content_rowid='rowid')"
            )
        )
        conn.execute(sa.text(f"CREATE TABLE {FTS_STATE} (last_rowid INTEGER NOT NULL)"))
        conn.execute(sa.text(f"INSERT INTO {FTS_STATE} (last_rowid) VALUES (0)"))
        while index_calls(conn):
            pass
    else:
        vector = PG_VECTOR.format(column="search_text")
        conn.execute(sa.text(f"CREATE INDEX {PG_INDEX} ON llm_calls USING gin ({vector})"))


_BACKFILL_BATCH = 1000


def _backfill_search_text(conn: Connection) -> None:
    """Fill llm_calls.search_text from each call's request and response, a batch of calls at a time."""
    select = sa.text(
        "SELECT id, request, response FROM llm_calls WHERE id > :last AND search_text IS NULL ORDER BY id LIMIT :n"
    )
    update = sa.text("UPDATE llm_calls SET search_text = :text WHERE id = :id")
    last = ""
    while True:
        rows = conn.execute(select, {"last": last, "n": _BACKFILL_BATCH}).all()
        if not rows:
            return
        changes = []
        for call_id, request, response in rows:
            text = call_search_text(_json(request), _json(response))
            if text is not None:
                changes.append({"id": call_id, "text": text})
        if changes:
            conn.execute(update, changes)
        last = rows[-1][0]


def _json(value: Any) -> Any:
    """A JSON column's value as read through `sa.text`: SQLite hands over the text, psycopg the value."""
    if isinstance(value, (str, bytes)):
        try:
            return fastjson.loads(value)
        except ValueError:
            return None
    return value


@migration
def m004_feedback_correction(conn: Connection) -> None:
    """feedback.correction: the answer a failed run should have given (an assistant message, JSON),
    which `dataset dpo` pairs against the answer the run gave (`agent_tracer/corrections.py`)."""
    conn.execute(sa.text("ALTER TABLE feedback ADD COLUMN correction JSON"))


LIST_INDEXES = {
    "ix_traces_newest": ((), ""),
    "ix_traces_name_newest": (("name",), ""),
    "ix_traces_outcome_newest": (("outcome",), ""),
    "ix_traces_unrated_newest": ((), " WHERE rating IS NULL"),
}
"""m005's indexes on traces: the columns given, then the runs list's order (`started_at`, `id`);
and which rows (a partial index)."""
TAG_STATISTICS = "st_traces_tags"
FAILED_CALLS = "status <> 'ok'"
"""m005's partial index `ix_llm_calls_failed` holds the calls matching this (a few in a hundred)."""


@migration
def m005_list_indexes(conn: Connection) -> None:
    """Indexes in the runs list's order (newest first: `started_at`, then `id`): of every run,
    after `name` and after `outcome`, and of the unrated runs only (a partial index: the review
    queue, and its counts), so that a page of the list, of a name, an outcome or the queue reads
    its rows in order and stops after the page, instead of sorting every match (BENCHMARKS.md,
    "Web UI page times"). They replace the single-column indexes on `started_at`, `name` and
    `outcome`. (Not `rating IS NULL` before the order's columns: PostgreSQL takes only `=` as
    fixing a column, so it sorted the runs such an index gave it.) PostgreSQL's are in the list's own order, `started_at
    DESC NULLS LAST, id DESC` (its default puts NULLs first going down, so an ascending index would
    not serve it); SQLite walks an ascending index either way and sorts NULLs lowest anyway, and
    its CREATE INDEX takes no NULLS LAST.

    And `ix_llm_calls_failed`: the trace ids of the calls that did not end "ok", a partial index
    (few calls fail), so that the `status` filter finds a run's failed calls, or all of them,
    without reading the calls themselves (PostgreSQL read every call for it: 345 ms a page at
    100,000 runs).

    PostgreSQL also gets statistics on `tags::jsonb`, the expression of the tags filter
    (`queries.HasTag`): a `json` column has none of its own, and without them the planner takes
    every tag for rare (an estimate of 12 runs of 100,000 for `held-out`, which 10 % have) and
    sorts all the runs that have it rather than walk the list's index to the first page."""
    postgresql = conn.dialect.name == "postgresql"
    for name in ("ix_traces_started_at", "ix_traces_name", "ix_traces_outcome"):
        conn.execute(sa.text(f"DROP INDEX {name}"))
    order = "started_at DESC NULLS LAST, id DESC" if postgresql else "started_at, id"
    for name, (columns, where) in LIST_INDEXES.items():
        conn.execute(sa.text(f"CREATE INDEX {name} ON traces ({', '.join([*columns, order])}){where}"))
    conn.execute(sa.text(f"CREATE INDEX ix_llm_calls_failed ON llm_calls (trace_id) WHERE {FAILED_CALLS}"))
    if postgresql:
        conn.execute(sa.text(f"CREATE STATISTICS {TAG_STATISTICS} ON ((tags::jsonb)) FROM traces"))


@migration
def m006_unmapped_spans(conn: Connection) -> None:
    """unmapped_spans: spans received over OTLP in no layout the mapper knows, kept whole
    (attributes, events, resource as JSON). Named m006 because m005 belongs to another change."""
    md = MetaData()
    Table(
        "unmapped_spans",
        md,
        Column("id", String, primary_key=True),
        Column("trace_id", String, nullable=False, index=True),
        Column("parent_span_id", String),
        Column("name", String),
        Column("kind", String),
        Column("scope", String),
        Column("attributes", JSON),
        Column("events", JSON),
        Column("resource", JSON),
        Column("status", String),
        Column("error", String),
        Column("started_at", DateTime),
        Column("ended_at", DateTime),
        Column("latency_ms", Float),
    )
    md.create_all(conn)


RESPONSE_ID_INDEXES = {
    "ix_llm_calls_wire_response_id": "raw_request IS NOT NULL AND api IS NOT NULL",
    "ix_llm_calls_span_response_id": "raw_request IS NULL OR api IS NULL",
}
"""m007's partial indexes: of the wire's copies of calls (made from the HTTP bodies), and of the
spans' (`models.WIRE_COPY`, `models.SPAN_COPY` as they were then)."""


@migration
def m007_response_ids(conn: Connection) -> None:
    """Indexes on `llm_calls (response_id, started_at)`, one of the wire's copies and one of the
    spans' (partial): every write looks its calls' response ids up among the other kind's copies
    near their start, to store a call seen by the transport and by a framework's span once
    (`store/same_calls.py`). Copies of the same kind are never read, so a server that reuses its
    ids costs the lookup nothing."""
    for name, where in RESPONSE_ID_INDEXES.items():
        conn.execute(sa.text(f"CREATE INDEX {name} ON llm_calls (response_id, started_at) WHERE {where}"))


CONTENT_KEY_INDEXES = {
    "ix_llm_calls_wire_content_key": "raw_request IS NOT NULL AND api IS NOT NULL",
    "ix_llm_calls_span_content_key": "raw_request IS NULL OR api IS NULL",
}
"""m008's partial indexes, of each kind of copy as m007's."""


@migration
def m008_content_keys(conn: Connection) -> None:
    """llm_calls.content_key (a digest of the call's text) and its indexes of each kind of copy:
    a span's copy without a response id (OpenInference's, Google ADK's) is matched to the wire's
    copy by it (`store/same_calls.py`). Calls stored before have none; they are matched by
    response id only."""
    conn.execute(sa.text("ALTER TABLE llm_calls ADD COLUMN content_key VARCHAR"))
    for name, where in CONTENT_KEY_INDEXES.items():
        conn.execute(sa.text(f"CREATE INDEX {name} ON llm_calls (content_key, started_at) WHERE {where}"))


SCHEMA_VERSION = len(MIGRATIONS)
"""How many migrations this agent-tracer knows: the schema version it writes."""

_m = MetaData()
_migrations_table = Table(
    MIGRATIONS_TABLE,
    _m,
    Column("name", String(200), primary_key=True),
    Column("applied_at", DateTime, nullable=False),
)
_OUR_TABLES = ("traces", "agent_runs", "llm_calls", "tool_executions", "feedback", "unmapped_spans")


def applied_migrations(conn: Connection) -> list[str]:
    """Names recorded in the migrations table, oldest first; [] for a fresh database."""
    if not sa.inspect(conn).has_table(MIGRATIONS_TABLE):
        return []
    rows = conn.execute(
        sa.select(_migrations_table.c.name).order_by(_migrations_table.c.applied_at, _migrations_table.c.name)
    )
    return [name for (name,) in rows]


def migrate(engine: Engine) -> list[str]:
    """Apply the migrations the database lacks; return their names ([] when up to date)."""
    with engine.connect() as conn:
        pending = _pending(conn, engine)
    if not pending:
        return []
    with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        pending = _pending(conn, engine)  # again, under the lock: another process may have won
        _migrations_table.create(conn, checkfirst=True)
        for item in pending:
            item.apply(conn)
            conn.execute(_migrations_table.insert().values(name=item.name, applied_at=utcnow()))
    return [item.name for item in pending]


def _pending(conn: Connection, engine: Engine) -> list[Migration]:
    applied = applied_migrations(conn)
    known = {item.name for item in MIGRATIONS}
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise SchemaError(
            f"database was written by a newer agent-tracer: {redact(engine.url)} has migrations "
            f"{', '.join(unknown)} that this version does not know; upgrade agent-tracer"
        )
    if not applied:
        names = set(sa.inspect(conn).get_table_names())
        foreign = [name for name in _OUR_TABLES if name in names]
        if foreign:
            raise SchemaError(
                f"{redact(engine.url)} is not an agent-tracer store: it has table(s) "
                f"{', '.join(foreign)} but no {MIGRATIONS_TABLE} table"
            )
    return [item for item in MIGRATIONS if item.name not in applied]
