"""`TraceStore`: write records in bulk, record feedback, and query traces and calls.

Writes go through SQLAlchemy Core (one `INSERT … ON CONFLICT DO NOTHING` executemany per table,
no ORM object per row) in one transaction per `write()`; reads return the SQLModel table objects,
detached from their session. One `TraceStore` is safe to share between threads: every method takes
its own connection from the engine's pool.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import defer
from sqlmodel import Session, col

from agent_tracer import fastjson
from agent_tracer.errors import ConfigError, StoreError, TraceNotFound, first_line
from agent_tracer.feedback import feedback_row
from agent_tracer.run_ids import trace_id_for
from agent_tracer.store import same_calls
from agent_tracer.store.database import create_engine, parse_url, redact, sqlite_path, writer
from agent_tracer.store.migrations import applied_migrations, migrate
from agent_tracer.store.models import AgentRun, Feedback, LLMCall, ToolExecution, Trace, utcnow
from agent_tracer.store.queries import parse_time, trace_query
from agent_tracer.store.rows import CALL_UPDATE, SPECS, SQLiteInsert, apply_rows, empty_trace, insert_ignore
from agent_tracer.store.search import (
    index_calls,
    is_dense,
    matching_calls,
    search_words,
    unindexed_calls,
    update_calls,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from agent_tracer.store.timeline import Timeline
    from agent_tracer.store.usage import ModelTokens

"""A trace's `status` filter: "error" when it failed or any of its calls did not end "ok"."""
_CHUNK = 500  # ids per IN (…) list and rows per multi-row statement
_KNOWN_TRACES = sa.select(Trace.__table__.c.id).where(Trace.__table__.c.id.in_(sa.bindparam("ids", expanding=True)))  # type: ignore[attr-defined]  # SQLModel types omit __table__
"""Which of these trace ids are stored: made once, as building the statement at every write cost
more than running it (BENCHMARKS.md, "OTLP ingest")."""
_DENSE_CHUNK = 1000  # runs read at a time by a dense search's page (`_dense_search_page`)


LIGHT_CALL_SKIPS = ("request", "response", "raw_request", "raw_response", "search_text")
"""The model call columns a light call (`TraceStore.get_trace(full_calls=...)`) leaves unread."""


@dataclass
class TraceDetail:
    """One trace with everything recorded under it, each list ordered by start time."""

    trace: Trace
    agent_runs: list[AgentRun] = field(default_factory=list)
    calls: list[LLMCall] = field(default_factory=list)
    tools: list[ToolExecution] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO-8601 strings."""
        return {
            "trace": self.trace.model_dump(mode="json"),
            "agent_runs": [run.model_dump(mode="json") for run in self.agent_runs],
            "calls": [call.model_dump(mode="json", exclude={"search_text"}) for call in self.calls],
            "tools": [tool.model_dump(mode="json") for tool in self.tools],
            "feedback": [item.model_dump(mode="json") for item in self.feedback],
        }


@dataclass
class _OpenWrite:
    conn: Connection
    transaction: sa.RootTransaction
    thread: int
    merged: int = 0
    """Calls merged in it so far: counted in `calls_merged` once committed."""


class TraceStore:
    """The trace database at `url` (default: `$AGENT_TRACER_DB` or `sqlite:///agent_tracer.db`).

    Opening it applies missing migrations. With `create=False` a missing SQLite file is a
    `StoreError` instead of a new empty store (for commands that only read).
    """

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        parsed = parse_url(url)
        path = sqlite_path(parsed)
        if path is not None and not path.exists():
            if not create:
                raise StoreError(f"no trace store at {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
        self.url: str = parsed.render_as_string(hide_password=False)
        self.engine = create_engine(parsed)
        self._writer = writer(self.engine)
        try:
            migrate(self.engine)
        except DBAPIError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open trace store {redact(parsed)}: {first_line(exc.orig)}") from exc
        except BaseException:
            self.engine.dispose()
            raise
        dialect = self.engine.dialect.name
        self._index_failed = False
        self._index_lock = threading.Lock()  # one catch-up at a time in this process
        self._count_lock = threading.Lock()
        self._open: _OpenWrite | None = None
        """The transaction a `write(..., keep_open=True)` left open, and whose it is."""
        self.calls_merged = 0
        """Model calls written as a second copy of a stored one, merged into it (`same_calls.py`)."""
        self._searches = 0  # text searches running now
        self._insert_ignore = {kind: insert_ignore(dialect, spec.table) for kind, spec in SPECS.items()}
        self._sqlite_insert = (
            {kind: SQLiteInsert(spec.table, self.engine.dialect) for kind, spec in SPECS.items()}
            if dialect == "sqlite"
            else {}
        )

    def __repr__(self) -> str:
        return f"TraceStore({redact(self.url)!r})"

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; a transaction left open by `write(..., keep_open=True)` is rolled
        back (its records were not committed, as its caller knows)."""
        self._roll_back_open()
        self.engine.dispose()

    def schema_version(self) -> int:
        """How many migrations the database has applied."""
        with self.engine.connect() as conn:
            return len(applied_migrations(conn))

    # -- writing ---------------------------------------------------------------------------------

    def write(self, records: Iterable[tuple[str, dict[str, Any]]], *, keep_open: bool = False) -> int:
        """Write `(kind, row)` records in one transaction, all or nothing; return the rows inserted
        or changed (0 when every record was there already).

        `keep_open`: leave the transaction open, uncommitted; this thread's next `write` goes on
        in it, and the first one without `keep_open` commits them all (or, failing, none). For a
        writer that takes one request in parts, to write each part as it comes and commit once: a
        commit writes every page the transaction touched, and parts of 64 spans touch mostly the
        same index pages (BENCHMARKS.md, "OTLP ingest"). On SQLite other writers wait for the
        commit (up to the busy timeout); keep it short.

        Kinds: "trace", "agent_run", "llm_call", "tool_execution", "unmapped_span", "feedback". Span rows and
        feedback are inserted, and skipped when their id exists (also within the batch), so
        writing a batch twice is harmless. "llm_call_update" (`rows.CALL_UPDATE`) is an
        `llm_call` that replaces the stored one of its id, after the inserts. Trace rows are merged by id: one with
        `"authoritative": True` (from the root agent span) overwrites columns with its non-null
        values, others only fill columns that are null; `started_at` keeps the earliest and
        `ended_at` the latest; tags are united, meta keys merged by the same rule. Trace rows never
        set outcome/rating/comment: new feedback does, from its non-null fields, and creates a
        minimal trace (source "feedback") when the trace is not known yet. Datetimes may be
        datetime objects or ISO-8601 strings; unknown keys are ignored. A database failure raises
        SQLAlchemy's error unchanged, with nothing written, for the caller to retry or spill.
        """
        batches: dict[str, list[dict[str, Any]]] = {kind: [] for kind in (*SPECS, CALL_UPDATE)}
        for kind, row in records:
            spec = SPECS.get("llm_call" if kind == CALL_UPDATE else kind)
            if spec is None:
                raise StoreError(f"unknown record kind {kind!r} (expected one of {', '.join((*SPECS, CALL_UPDATE))})")
            batches[kind].append(spec.normalize(row))
        held = self._open if self._open is not None and self._open.thread == threading.get_ident() else None
        if not any(batches.values()) and held is None:
            return 0
        if held is None:
            conn = self._writer.connect()
            try:
                held = _OpenWrite(conn, conn.begin(), threading.get_ident())
            except BaseException:
                conn.close()
                raise
        try:
            written, merges = self._write_batches(held.conn, batches) if any(batches.values()) else (0, 0)
            held.merged += merges
            if keep_open:
                self._open = held
                return written + merges
            held.transaction.commit()
        except BaseException:
            held.conn.close()  # rolls back
            if self._open is held:
                self._open = None
            raise
        held.conn.close()
        if self._open is held:
            self._open = None
        if held.merged:
            with self._count_lock:
                self.calls_merged += held.merged
        return written + merges

    def _roll_back_open(self) -> None:
        held, self._open = self._open, None
        if held is not None:
            held.conn.close()  # rolls back

    def _write_batches(self, conn: Connection, batches: dict[str, list[dict[str, Any]]]) -> tuple[int, int]:
        """`write`'s statements, on `conn` in its transaction: (rows inserted or changed, calls merged)."""
        written = 0
        calls = LLMCall.__table__  # type: ignore[attr-defined]  # SQLModel types omit __table__
        batches["llm_call"], merged = same_calls.merge_same_calls(conn, calls, batches["llm_call"])
        same_calls.apply(conn, calls, merged)
        for kind in ("agent_run", "llm_call", "tool_execution", "unmapped_span"):
            if batches[kind]:
                new_rows = self._insert(conn, kind, batches[kind])
                written += new_rows
                if kind == "llm_call" and new_rows < len(batches[kind]):
                    same_calls.written_again(conn, calls, batches[kind], merged)
        if batches[CALL_UPDATE]:
            written += self._replace_calls(conn, batches[CALL_UPDATE])
        new_feedback: list[dict[str, Any]] = []
        if batches["feedback"]:
            stmt = self._insert_ignore["feedback"].returning(Feedback.__table__.c.id)  # type: ignore[attr-defined]  # SQLModel types omit __table__
            inserted = set(conn.execute(stmt, batches["feedback"]).scalars())
            for row in batches["feedback"]:
                if row["id"] in inserted:  # the first of duplicates within the batch
                    inserted.discard(row["id"])
                    new_feedback.append(row)
            written += len(new_feedback)
        if batches["trace"] or new_feedback:
            written += self._merge_traces(conn, batches["trace"], new_feedback)
        children = [spec.table for kind, spec in SPECS.items() if kind != "trace"]
        same_calls.drop_left_traces(conn, Trace.__table__, children, merged.left)  # type: ignore[attr-defined]  # SQLModel types omit __table__
        return written, merged.count

    def _insert(self, conn: Connection, kind: str, rows: list[dict[str, Any]]) -> int:
        """Insert rows whose id is new; return how many were."""
        fast = self._sqlite_insert.get(kind)
        if fast is not None:
            result = conn.exec_driver_sql(fast.sql, fast.params(rows), execution_options={"preserve_rowcount": True})
            return max(result.rowcount, 0)
        # preserve_rowcount: the driver's total over the executemany (psycopg's is right, but
        # SQLAlchemy reports -1 for it otherwise).
        statement = self._insert_ignore[kind].execution_options(preserve_rowcount=True)
        return max(conn.execute(statement, rows).rowcount, 0)

    def _replace_calls(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        """`llm_call_update` records: each replaces the stored call of its id, or is inserted when
        there is none; the full-text index kept in step (`search.update_calls`)."""
        table = LLMCall.__table__  # type: ignore[attr-defined]  # SQLModel types omit __table__
        ids = [row["id"] for row in rows]
        stored = set(conn.execute(sa.select(table.c.id).where(table.c.id.in_(ids))).scalars())
        fresh = [row for row in rows if row["id"] not in stored]
        if fresh:
            self._insert(conn, "llm_call", fresh)
        changes = [
            {**{column: value for column, value in row.items() if column != "id"}, "b_id": row["id"]}
            for row in rows
            if row["id"] in stored
        ]
        if changes:
            update_calls(conn, table, changes)
        return len(rows)

    def _merge_traces(
        self, conn: Connection, trace_rows: list[dict[str, Any]], feedback_rows: list[dict[str, Any]]
    ) -> int:
        table = Trace.__table__  # type: ignore[attr-defined]  # SQLModel types omit __table__
        now = utcnow()
        from_traces = {row["id"] for row in trace_rows}
        only_feedback = {row["trace_id"] for row in feedback_rows} - from_traces
        ids = sorted(from_traces | only_feedback)
        known: set[str] = set()
        for chunk in _chunks(ids):
            known.update(conn.execute(_KNOWN_TRACES, {"ids": chunk}).scalars())
        # Traces new to the database (most of them: every call outside an agent run is one) are
        # merged in memory and inserted whole. An insert that loses a race with another writer
        # falls back to the locked merge below, with the traces that existed already.
        fresh = {
            trace_id: empty_trace(trace_id, "feedback" if trace_id in only_feedback else None, now)
            for trace_id in ids
            if trace_id not in known
        }
        created: set[str] = set()
        if fresh:
            apply_rows(fresh, trace_rows, feedback_rows)
            if "trace" in self._sqlite_insert:
                # SQLite's writer holds the write lock since BEGIN: no one else can have inserted
                # them. Should the count say otherwise, the locked merge below reads every one.
                if self._insert(conn, "trace", list(fresh.values())) == len(fresh):
                    created = set(fresh)
            else:
                statement = self._insert_ignore["trace"].returning(table.c.id)
                created = set(conn.execute(statement, list(fresh.values())).scalars())
        rest = [trace_id for trace_id in ids if trace_id not in created]
        if not rest:
            return len(created)
        current: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(rest):
            query = sa.select(table).where(table.c.id.in_(chunk)).order_by(table.c.id).with_for_update()
            current.update((row["id"], dict(row)) for row in conn.execute(query).mappings())
        before = {trace_id: dict(row) for trace_id, row in current.items()}
        apply_rows(current, trace_rows, feedback_rows)
        changed = [trace_id for trace_id in rest if current[trace_id] != before[trace_id]]
        if changed:
            params = [{**current[trace_id], "b_id": trace_id, "updated_at": now} for trace_id in changed]
            for item in params:
                del item["id"]
            conn.execute(sa.update(table).where(table.c.id == sa.bindparam("b_id")), params)
        return len(created | set(changed))

    def index_search(self, *, batches: int | None = None, idle: bool = False) -> int:
        """Bring the full-text index up to date with the calls written (SQLite: the catch-up of
        `search.py`; PostgreSQL's index needs none) and return how many calls it went past.
        Every text search runs it first. On a store this process cannot write (read-only, or
        locked past the busy timeout) it indexes nothing and says so once, at debug level: the
        search then finds the calls indexed so far.

        `batches`: at most this many batches (`search.INDEX_BATCH` calls, a transaction each).
        `idle`: a catch-up in idle time (`agent_tracer.ui.catchup`), which gives way to searches:
        it indexes nothing while a search of this store runs or catches up."""
        if self.engine.dialect.name != "sqlite":
            return 0
        if not self._index_lock.acquire(blocking=not idle):
            return 0
        done = 0
        try:
            if idle and self._searches:
                return 0
            with self.engine.connect() as conn:  # a read first: searches on an indexed store take no lock
                if not unindexed_calls(conn):
                    return 0
            while batches is None or batches > 0:
                with self._writer.begin() as conn:
                    went = index_calls(conn)
                if not went:
                    break
                done += went
                batches = None if batches is None else batches - 1
            return done
        except sa.exc.OperationalError as exc:
            if not self._index_failed:
                self._index_failed = True
                log.debug(
                    "full-text index of %s not brought up to date (%s): searches miss the newest calls",
                    redact(self.url),
                    first_line(exc.orig),
                )
            return done
        finally:
            self._index_lock.release()

    @contextlib.contextmanager
    def _searching(self, filters: dict[str, Any]) -> Iterator[None]:
        """Around a query: when its filters search text, `index_search()` first, and the search
        counted as running until the query is done (an idle catch-up waits for it)."""
        text = filters.get("text")
        if not (isinstance(text, str) and search_words(text)):
            yield
            return
        with self._count_lock:
            self._searches += 1
        try:
            self.index_search()
            yield
        finally:
            with self._count_lock:
                self._searches -= 1

    def record_feedback(
        self,
        trace_id: str,
        outcome: str | None = None,
        rating: float | None = None,
        comment: str | None = None,
        label: str | None = None,
        source: str | None = "api",
        correction: Any = None,
    ) -> Feedback:
        """Store feedback for a trace (known yet or not) and set the trace's outcome, rating and
        comment from its non-null fields. Raises `ConfigError` for values `feedback_row` refuses
        (an empty feedback, a rating that is not a number from 0 to 5, a correction that is not an
        answer, …)."""
        row = feedback_row(trace_id, outcome, rating, comment, label, source=source or "api", correction=correction)
        self.write([("feedback", row)])
        return Feedback(**row)

    # -- reading ---------------------------------------------------------------------------------

    def traces(
        self,
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
        limit: int | None = None,
        order: str = "newest",
        after: tuple[datetime | None, str] | None = None,
        before: tuple[datetime | None, str] | None = None,
    ) -> list[Trace]:
        """Traces matching every filter given. `name` may use `*` wildcards; `tags`: all of them;
        `since` (inclusive) / `until` (exclusive) bound `started_at` and take datetimes, ISO
        strings or relative ages ("2h", "7d"); `model`: any call of the trace asked for or was
        answered by it; `text`: a call of the trace holds every word of it (full-text search, the
        last word as a prefix: `store/search.py`). `status`: "error" (the trace failed, or one of
        its calls did not end "ok") or "ok" (neither); `held_out`: tagged `held-out` (evaluation
        data) or not. `order`: "newest", "oldest", or "best" (rating high to low, unrated last,
        then newest). `after`: the `(started_at, id)` of the last trace of the previous page, for
        keyset pagination (order "newest" only): the traces that come after it, with no OFFSET.
        `before`: the traces that come before that `(started_at, id)` in the newest-first order,
        nearest first (a step back). `rated`: only traces with (True) or without (False) a rating.
        `route`: a call was answered by this route of the proxy's router (primary, fallback,
        shadow; "direct": a call that passed no router)."""
        filters: dict[str, Any] = {
            "outcome": outcome,
            "min_rating": min_rating,
            "name": name,
            "tags": tags,
            "since": since,
            "until": until,
            "model": model,
            "has_tool_calls": has_tool_calls,
            "rated": rated,
            "status": status,
            "held_out": held_out,
            "route": route,
            "order": order,
            "after": after,
            "before": before,
        }
        with self._searching({"text": text}), Session(self.engine) as session:
            # A page of a search for a word that many calls hold walks the runs (`search.DENSE_CALLS`)
            paged = text is not None and limit is not None and order == "newest"
            dense = paged and is_dense(session.connection(), text or "")
            if dense and limit is not None and self.engine.dialect.name == "sqlite":
                return self._dense_search_page(session, text or "", limit, filters)
            query = trace_query(**filters, text=text, dense_text=dense)
            if limit is not None:
                query = query.limit(limit)
            return list(session.scalars(query))

    def _dense_search_page(self, session: Session, text: str, limit: int, filters: dict[str, Any]) -> list[Trace]:
        """SQLite: the first `limit` runs of the filters, in their order, with a call that matches
        `text`, for a word that many calls hold: the runs are read in order a chunk at a time, and
        each chunk's calls are looked up in one FTS5 query over their rowids' range."""
        found: list[Trace] = []
        runs = session.scalars(trace_query(**filters).execution_options(yield_per=_DENSE_CHUNK))
        with self.engine.connect() as conn:  # the runs' result is still open on the session's
            for chunk in runs.partitions():
                ids = [trace.id for trace in chunk]
                calls: Sequence[Any] = conn.execute(
                    sa.select(sa.literal_column("rowid"), col(LLMCall.trace_id)).where(col(LLMCall.trace_id).in_(ids))
                ).all()
                if calls:
                    rowids = [rowid for rowid, _ in calls]
                    matched = matching_calls(conn, text, min(rowids), max(rowids))
                    hits = {trace_id for rowid, trace_id in calls if rowid in matched}
                    found += [trace for trace in chunk if trace.id in hits][: limit - len(found)]
                if len(found) >= limit:
                    break
        runs.close()
        return found

    def iter_runs(
        self,
        *,
        tags: Sequence[str] | None = None,
        limit: int | None = None,
        chunk: int = 500,
        call_columns: Sequence[str] | None = None,
        **filters: Any,
    ) -> Iterator[RunRows]:
        """Traces matching the filters of `traces()`, in its order, each with its LLM calls
        (oldest first), read `chunk` traces at a time: memory stays flat however many match.
        Rows are plain dicts of the tables' columns (JSON columns decoded), not ORM objects;
        `call_columns` names the calls' columns to read (default all but `search_text`: raw bodies included)."""
        for _, runs in self.iter_run_chunks(tags=tags, limit=limit, chunk=chunk, call_columns=call_columns, **filters):
            yield from runs

    def iter_run_chunks(
        self,
        *,
        tags: Sequence[str] | None = None,
        limit: int | None = None,
        chunk: int = 500,
        call_columns: Sequence[str] | None = None,
        shard: tuple[int, int] | None = None,
        **filters: Any,
    ) -> Iterator[tuple[int, list[RunRows]]]:
        """`iter_runs` a chunk at a time, numbered from 0. With `shard=(i, n)` only the chunks
        whose number is i modulo n have their calls read and are yielded, so that n processes can
        share the reading and a consumer can put the chunks back in order (the `limit`, tags
        included, is the query's)."""
        query = trace_query(tags=tags, **filters)
        if limit is not None:
            query = query.limit(limit)
        with self._searching(filters), self.engine.connect() as conn:
            result = conn.execution_options(yield_per=chunk).execute(query)
            for number, partition in enumerate(result.mappings().partitions()):
                if shard is not None and number % shard[1] != shard[0]:
                    continue
                traces = [dict(row) for row in partition]
                calls: dict[str, list[dict[str, Any]]] = {trace["id"]: [] for trace in traces}
                if traces:
                    with self.engine.connect() as reader:  # the traces' result is still open on `conn`
                        for call in _read_calls(reader, list(calls), call_columns):
                            calls[call["trace_id"]].append(call)
                yield number, [RunRows(trace, calls[trace["id"]]) for trace in traces]

    def feedback(self, *, label_prefix: str | None = None, corrections: bool = False) -> list[Feedback]:
        """Feedback rows, oldest first; `label_prefix` keeps those whose label starts with it
        (pairwise judgements are labelled "better_than:<trace id>"); `corrections` those that
        carry a corrected answer."""
        query = sa.select(Feedback).order_by(col(Feedback.created_at), Feedback.id)
        if label_prefix is not None:
            query = query.where(col(Feedback.label).startswith(label_prefix, autoescape=True))
        if corrections:
            query = query.where(col(Feedback.correction).is_not(None))
        with Session(self.engine) as session:
            return list(session.scalars(query))

    def count_traces(self, *, tags: Sequence[str] | None = None, limit: int | None = None, **filters: Any) -> int:
        """How many traces match the filters of `traces()` (at most `limit`)."""
        query = trace_query(tags=tags, **filters).with_only_columns(col(Trace.id)).order_by(None)
        if limit is not None:
            query = query.limit(limit)
        with self._searching(filters), self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()

    def known_traces(self, trace_ids: Sequence[str]) -> set[str]:
        """Those of `trace_ids` that are traces in the store."""
        known: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(trace_ids)):
                known.update(conn.execute(sa.select(col(Trace.id)).where(col(Trace.id).in_(chunk))).scalars())
        return known

    def trace_summaries(self, trace_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per trace id: its LLM `calls`, `input_tokens`, `output_tokens` and `errors` (calls
        whose status is not "ok"); ids without calls are left out."""
        summaries: dict[str, dict[str, int]] = {}
        for chunk in _chunks(sorted(set(trace_ids))):
            query = (
                sa.select(
                    col(LLMCall.trace_id),
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(LLMCall.input_tokens), 0),
                    sa.func.coalesce(sa.func.sum(LLMCall.output_tokens), 0),
                    sa.func.count().filter(col(LLMCall.status) != "ok"),
                )
                .where(col(LLMCall.trace_id).in_(chunk))
                .group_by(LLMCall.trace_id)
            )
            with self.engine.connect() as conn:
                for trace_id, calls, tokens_in, tokens_out, errors in conn.execute(query):
                    summaries[trace_id] = {
                        "calls": calls,
                        "input_tokens": int(tokens_in or 0),
                        "output_tokens": int(tokens_out or 0),
                        "errors": errors,
                    }
        return summaries

    def trace_routes(self, trace_ids: Sequence[str]) -> dict[str, list[str]]:
        """Per trace id: the routes that answered its calls at the proxy (primary, fallback,
        shadow), each once, sorted; ids whose calls name no route are left out."""
        routes: dict[str, list[str]] = {}
        for chunk in _chunks(sorted(set(trace_ids))):
            query = (
                sa.select(col(LLMCall.trace_id), col(LLMCall.route))
                .where(col(LLMCall.trace_id).in_(chunk), col(LLMCall.route).is_not(None))
                .group_by(col(LLMCall.trace_id), col(LLMCall.route))
                .order_by(col(LLMCall.trace_id), col(LLMCall.route))
            )
            with self.engine.connect() as conn:
                for trace_id, route in conn.execute(query):
                    routes.setdefault(trace_id, []).append(str(route))
        return routes

    def get_trace(self, trace_id_or_prefix: str, *, full_calls: Collection[str] | None = None) -> TraceDetail:
        """The trace with this id, or the only one whose id starts with this prefix, or the one an
        agent named with this run id (`X-Agent-Trace-Id` at the proxy); else `TraceNotFound`
        (none, or several).

        `full_calls`: None reads every column of every model call; else only the calls with these
        ids are read whole, and the others light: without their bodies (`LIGHT_CALL_SKIPS`, which
        such a call cannot read once returned), so that a page of a long run need not read the
        whole run's bodies (each resends the history: quadratic in the run's length). See
        `fill_calls`."""
        ref = (trace_id_or_prefix or "").strip()
        if not ref:
            raise TraceNotFound("no trace id given")
        with Session(self.engine) as session:
            trace = session.get(Trace, ref)
            if trace is None:
                matches: list[Trace] = []
                for candidate in dict.fromkeys((ref, ref.lower())):
                    prefix = col(Trace.id).startswith(candidate, autoescape=True)
                    matches = list(session.scalars(sa.select(Trace).where(prefix).order_by(Trace.id).limit(4)))
                    if matches:
                        break
                if not matches:  # an agent's own run id, as the proxy's clients name runs
                    try:
                        trace = session.get(Trace, trace_id_for(ref))
                    except ValueError:
                        trace = None
                    if trace is None:
                        raise TraceNotFound(f"no trace with id {ref!r}")
                    matches = [trace]
                if len(matches) > 1:
                    shown = ", ".join(match.id[:16] for match in matches[:3])
                    more = ", …" if len(matches) > 3 else ""
                    raise TraceNotFound(f"trace id prefix {ref!r} is ambiguous: matches {shown}{more}")
                trace = matches[0]

            def children(model: Any, order: Any, *options: Any) -> list[Any]:
                query = sa.select(model).where(model.trace_id == trace.id).options(*options)
                return list(session.scalars(query.order_by(order.asc().nulls_last(), model.id)))

            light = () if full_calls is None else [defer(getattr(LLMCall, name)) for name in LIGHT_CALL_SKIPS]
            detail = TraceDetail(
                trace=trace,
                agent_runs=children(AgentRun, AgentRun.started_at),
                calls=children(LLMCall, LLMCall.started_at, *light),
                tools=children(ToolExecution, ToolExecution.started_at),
                feedback=children(Feedback, Feedback.created_at),
            )
        if full_calls:
            self.fill_calls(detail, full_calls)
        return detail

    def fill_calls(self, detail: TraceDetail, call_ids: Collection[str]) -> None:
        """Replace the light model calls of `detail` (`get_trace(full_calls=...)`) that have these
        ids with the whole calls, every column read."""
        wanted = [call.id for call in detail.calls if call.id in call_ids]
        full: dict[str, LLMCall] = {}
        with Session(self.engine) as session:
            for chunk in _chunks(wanted):
                query = sa.select(LLMCall).where(col(LLMCall.id).in_(chunk))
                full.update((call.id, call) for call in session.scalars(query))
        detail.calls = [full.get(call.id, call) for call in detail.calls]

    def calls(
        self,
        *,
        trace_id: str | None = None,
        model: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        has_tool_calls: bool | None = None,
        status: str | None = None,
        limit: int | None = None,
        order: str = "oldest",
    ) -> list[LLMCall]:
        """LLM calls matching every filter given (`model`: request or response model), ordered
        by `started_at`: "oldest" first (the default) or "newest" first."""
        if order not in ("oldest", "newest"):
            raise ConfigError(f"order must be 'oldest' or 'newest', not {order!r}")
        query = sa.select(LLMCall)
        if trace_id is not None:
            query = query.where(col(LLMCall.trace_id) == trace_id)
        if model is not None:
            query = query.where(sa.or_(col(LLMCall.request_model) == model, col(LLMCall.response_model) == model))
        if since is not None:
            query = query.where(col(LLMCall.started_at) >= parse_time(since))
        if until is not None:
            query = query.where(col(LLMCall.started_at) < parse_time(until))
        if has_tool_calls is not None:
            query = query.where(col(LLMCall.has_tool_calls) == has_tool_calls)
        if status is not None:
            query = query.where(col(LLMCall.status) == status)
        if order == "oldest":
            query = query.order_by(col(LLMCall.started_at).asc().nulls_last(), LLMCall.id)
        else:
            query = query.order_by(col(LLMCall.started_at).desc().nulls_last(), col(LLMCall.id).desc())
        if limit is not None:
            query = query.limit(limit)
        with Session(self.engine) as session:
            return list(session.scalars(query))

    def timeline(
        self,
        *,
        bucket: str = "day",
        since: datetime | str = "7d",
        until: datetime | str | None = None,
        **filters: Any,
    ) -> Timeline:
        """Model calls (with their errors, tokens and routes) and runs (by outcome) per `bucket`
        ("hour" or "day", UTC) from `since` (inclusive) to `until` (exclusive, default now), every
        bucket of the span present, counted by the database; and the router's fallback reasons.
        `filters`: those of `traces()` but `since`/`until`, `limit` and the keyset ones; given,
        only the calls of the runs they pick count. See `agent_tracer.store.timeline`."""
        from agent_tracer.store.timeline import timeline

        end = parse_time(until) if until is not None else None
        return timeline(self.engine, bucket=bucket, since=parse_time(since), until=end, **filters)

    def tokens_by_model(self, trace_ids: Sequence[str]) -> dict[str, list[ModelTokens]]:
        """Per trace id: its calls grouped by model (the answering one, else the one asked for),
        with their token sums, in one grouped query, for pricing a page of runs
        (`agent_tracer.prices`); ids without calls are left out. See `agent_tracer.store.usage`."""
        from agent_tracer.store.usage import tokens_by_model

        return tokens_by_model(self.engine, trace_ids)

    def stats(self, *, since: datetime | str | None = None) -> dict[str, Any]:
        """Counts and aggregates over traces and calls started at or after `since`:

        `traces`, `llm_calls`, `tool_executions`, `feedback` (counts); `by_outcome` (outcome →
        traces, "none" for traces without one); `by_model` (list of {model, calls, input_tokens,
        output_tokens, errors}, most calls first; the request model, else the response model);
        `errors` (calls whose status is not "ok"), `trace_errors`, `tool_errors`; `input_tokens`,
        `output_tokens`; `latency_ms` {p50, p95} and `ttft_ms` {p50} (nearest rank; None without
        data)."""
        from agent_tracer.store.usage import store_stats

        return store_stats(self.engine, parse_time(since) if since is not None else None)


# -- queries --------------------------------------------------------------------------------------


@dataclass
class RunRows:
    """One trace's row and its LLM calls' rows (oldest first), as `TraceStore.iter_runs` reads them."""

    trace: dict[str, Any]
    calls: list[dict[str, Any]]


def _read_calls(conn: Connection, trace_ids: list[str], names: Sequence[str] | None) -> Iterator[dict[str, Any]]:
    """The calls of these traces (oldest first within each), as dicts of the named columns (by
    default all but `search_text`, the index's copy of their text). JSON columns are read as text
    and parsed here: SQLAlchemy's processing of each value costs more than the parsing itself,
    which matters when a dataset reads every call there is."""
    table = LLMCall.__table__  # type: ignore[attr-defined]  # SQLModel types omit __table__
    default = [name for name in table.c.keys() if name != "search_text"]
    columns = [table.c[name] for name in dict.fromkeys(["trace_id", *(names or default)])]
    json_columns = [i for i, column in enumerate(columns) if isinstance(column.type, sa.JSON)]
    query = (
        sa.select(*(sa.type_coerce(c, sa.Text) if i in json_columns else c for i, c in enumerate(columns)))
        .where(table.c.trace_id.in_(trace_ids))
        .order_by(table.c.trace_id, table.c.started_at.asc().nulls_last(), table.c.id)
    )
    keys = [column.name for column in columns]
    for row in conn.execute(query):
        values = list(row)
        for i in json_columns:
            if isinstance(values[i], (str, bytes)):  # PostgreSQL's driver hands JSON over decoded
                values[i] = fastjson.loads(values[i])
        yield dict(zip(keys, values))


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
