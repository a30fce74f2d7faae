"""Retention and erasure: delete runs with everything that hangs off them, without stopping the writers.

    agent-tracer traces prune --older-than 30d [--keep-rated] [--keep-tag T] [--dry-run] [--vacuum]
    agent-tracer traces erase --user u-123 [--session s-9] [--dry-run]

Erasure (a data-protection request) deletes every run of one end user or session, whatever its
age: runs whose metadata holds that `user.id` or `session.id` (from the proxy's `X-Agent-User` /
`X-Agent-Session` headers, OpenTelemetry's `user.id` / `enduser.id` / `session.id` attributes, or
`@trace_agent(metadata={"user.id": …})`).

A run (a `traces` row) older than the cut-off goes with its model calls, agent runs, tool
executions, feedback and unmapped spans, in batches of `BATCH` runs, each its own short write
transaction, so a proxy or a capture writing into the same store waits at most one batch
(milliseconds) rather than the whole prune. "Older" reads the run's start, or when it has none
its last update. Kept whatever their age: with `keep_rated`, runs someone judged (a rating, an
outcome, or any feedback row: a label, a comment, a correction); with `keep_tags`, runs that hold
one of those tags (a dataset manifest's or an evaluation's runs, tagged to be kept).

SQLite's full-text index (`search.py`) is an external-content FTS5 table: a call's words are
taken out of it ('delete' with the indexed text) before the call's row goes, in the same
transaction, so a search never finds a pruned call and the index stays whole. PostgreSQL's
index follows its rows by itself.

Space: deleted rows leave free pages (SQLite) or dead tuples (PostgreSQL) that new runs reuse;
the file or database shrinks only with `vacuum` (SQLite's VACUUM rewrites the file and holds the
write lock while it does; PostgreSQL's VACUUM marks the space reusable at once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agent_tracer.store.database import writer
from agent_tracer.store.models import Trace
from agent_tracer.store.queries import has_tag
from agent_tracer.store.search import FTS_STATE, FTS_TABLE

BATCH = 500
"""Runs deleted per transaction."""
CHILDREN = ("llm_calls", "agent_runs", "tool_executions", "feedback", "unmapped_spans")
"""The tables whose rows belong to a run by its `trace_id`, deleted before the run's own row."""


@dataclass
class Pruned:
    """What a prune or an erasure removed (or, dry, would remove), and the store's size around it."""

    cutoff: datetime | None
    dry_run: bool
    runs: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHILDREN, 0))
    size_before: int | None = None
    size_after: int | None = None
    """Bytes the store takes (SQLite's database pages; the PostgreSQL database)."""
    free_after: int | None = None
    """SQLite: bytes in free pages after the prune, which new runs fill before the file grows."""
    vacuumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "dry_run": self.dry_run,
            "runs": self.runs,
            **self.rows,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "free_after": self.free_after,
            "vacuumed": self.vacuumed,
        }


def prunable(cutoff: datetime, *, keep_rated: bool = False, keep_tags: Sequence[str] = ()) -> list[Any]:
    """The conditions a run must meet to be pruned."""
    traces = Trace.__table__.c  # type: ignore[attr-defined]  # SQLModel types omit __table__
    started = sa.func.coalesce(traces.started_at, traces.updated_at)
    conditions: list[Any] = [started < cutoff]
    if keep_rated:
        feedback = sa.table("feedback", sa.column("trace_id"))
        conditions += [
            traces.rating.is_(None),
            traces.outcome.is_(None),
            ~sa.exists().where(feedback.c.trace_id == traces.id),
        ]
    for tag in dict.fromkeys(tag for tag in keep_tags if tag):
        conditions.append(sa.or_(traces.tags.is_(None), ~has_tag(tag)))
    return conditions


def of_people(users: Sequence[str] = (), sessions: Sequence[str] = ()) -> list[Any]:
    """The condition for the runs of these end users or sessions (their metadata's `user.id`,
    `session.id`); `ValueError` when none is named."""
    meta = Trace.__table__.c.meta  # type: ignore[attr-defined]
    either = [meta["user.id"].as_string() == user for user in users if user]
    either += [meta["session.id"].as_string() == session for session in sessions if session]
    if not either:
        raise ValueError("name a user or a session")
    return [sa.or_(*either)]


def prune(
    engine: sa.Engine,
    cutoff: datetime,
    *,
    keep_rated: bool = False,
    keep_tags: Sequence[str] = (),
    **options: Any,
) -> Pruned:
    """Delete the runs that started before `cutoff` (naive UTC) and their rows (`delete_runs`'s
    `options`: dry_run, vacuum, batch, progress)."""
    return delete_runs(engine, prunable(cutoff, keep_rated=keep_rated, keep_tags=keep_tags), cutoff=cutoff, **options)


def delete_runs(
    engine: sa.Engine,
    conditions: list[Any],
    *,
    cutoff: datetime | None = None,
    dry_run: bool = False,
    vacuum: bool = False,
    secure: bool = False,
    batch: int = BATCH,
    progress: Callable[[Pruned], None] | None = None,
) -> Pruned:
    """Delete the runs meeting `conditions` and their rows, `batch` runs a transaction;
    `progress` is called after each. `dry_run` counts what would go, deleting nothing. `secure`
    (erasure) leaves no copy of what went in the store's files: SQLite overwrites the deleted
    content (`secure_delete`), merges the full-text index and empties its write-ahead log;
    PostgreSQL vacuums the run tables."""
    result = Pruned(cutoff, dry_run, size_before=store_size(engine))
    traces = Trace.__table__  # type: ignore[attr-defined]
    if dry_run:
        chosen = sa.select(traces.c.id).where(*conditions).scalar_subquery()
        with engine.connect() as conn:
            result.runs = conn.execute(sa.select(sa.func.count()).where(*conditions)).scalar_one()
            for name in CHILDREN:
                table = sa.table(name, sa.column("trace_id"))
                found = sa.select(sa.func.count()).select_from(table).where(table.c.trace_id.in_(chosen))
                result.rows[name] = conn.execute(found).scalar_one()
        result.size_after = result.size_before
        return result
    sqlite = engine.dialect.name == "sqlite"
    with writer(engine).connect() as conn:
        try:
            while True:
                with conn.begin():
                    if secure and sqlite:  # what is deleted is overwritten with zeros, not left in free pages
                        conn.exec_driver_sql("PRAGMA secure_delete = ON")
                    ids = conn.execute(sa.select(traces.c.id).where(*conditions).limit(batch)).scalars().all()
                    if not ids:
                        break
                    if sqlite:
                        _unindex_calls(conn, ids)
                    for name in CHILDREN:
                        table = sa.table(name, sa.column("trace_id"))
                        deleted = conn.execute(sa.delete(table).where(table.c.trace_id.in_(ids)))
                        result.rows[name] += deleted.rowcount
                    result.runs += conn.execute(sa.delete(traces).where(traces.c.id.in_(ids))).rowcount
                if progress is not None:
                    progress(result)
            if secure and sqlite and result.runs:
                with conn.begin():  # FTS5 keeps a deleted row's words in older segments until they merge
                    conn.execute(sa.text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('optimize')"))
        finally:
            if secure and sqlite:
                conn.exec_driver_sql("PRAGMA secure_delete = OFF")
                conn.commit()
    if secure and not vacuum:
        _forget(engine)
    if vacuum:
        _vacuum(engine)
        result.vacuumed = True
    result.size_after = store_size(engine)
    result.free_after = _free_bytes(engine)
    return result


def _forget(engine: sa.Engine) -> None:
    """After a secure deletion: SQLite's write-ahead log, which still holds the deleted pages'
    old copies, checkpointed and emptied; PostgreSQL's run tables vacuumed, so the dead rows'
    space is reclaimed (and overwritten as it is reused)."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    else:
        _vacuum(engine)


def _unindex_calls(conn: sa.Connection, trace_ids: Sequence[str]) -> None:
    """SQLite: take the indexed calls of these runs out of the FTS5 index (the 'delete' command
    with the text they were indexed with); calls above `last_rowid` were never indexed."""
    conn.execute(
        sa.text(
            f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, search_text) SELECT 'delete', rowid, search_text "
            f"FROM llm_calls WHERE trace_id IN :ids AND rowid <= (SELECT last_rowid FROM {FTS_STATE})"
        ).bindparams(sa.bindparam("ids", expanding=True)),
        {"ids": list(trace_ids)},
    )


def store_size(engine: sa.Engine) -> int | None:
    """Bytes the store takes: SQLite's database pages (its write-ahead log, which checkpoints
    empty, left out); PostgreSQL's database."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            return int(pages) * int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        if engine.dialect.name == "postgresql":
            return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one())
    return None


def _free_bytes(engine: sa.Engine) -> int | None:
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as conn:
        free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
        return int(free) * int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())


def _vacuum(engine: sa.Engine) -> None:
    """SQLite: rewrite the file without its free pages (and truncate the WAL); PostgreSQL: VACUUM
    the run tables, so their dead rows' space is reusable now. Outside any transaction."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # its DB-API connection is in autocommit mode (database.py)
        try:
            cursor = raw.cursor()
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in ("traces", *CHILDREN):
            conn.exec_driver_sql(f"VACUUM {name}")
