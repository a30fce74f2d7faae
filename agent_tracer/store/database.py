"""Engines for the trace store: SQLite (the default, a file in the working directory) or PostgreSQL.

SQLite connections run in WAL mode with `synchronous=NORMAL` and a 5 s busy timeout (or the URL's
`?timeout=SECONDS`), so one writer and any number of readers (threads or processes) share the file.
pysqlite's own transaction handling is switched off and SQLAlchemy emits `BEGIN` itself, so DDL is
transactional too; a connection whose execution options carry `agent_tracer_begin="IMMEDIATE"` takes the write lock at
`BEGIN` (see `writer()`), which serialises read-modify-write transactions between processes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_tracer import fastjson
from agent_tracer.errors import ConfigError

if TYPE_CHECKING:  # SQLAlchemy is imported when an engine is made, not with agent_tracer
    import sqlalchemy as sa
    from sqlalchemy.engine import URL, Engine

ENV_VAR = "AGENT_TRACER_DB"
DEFAULT_URL = "sqlite:///agent_tracer.db"
BUSY_TIMEOUT_MS = 5000
_BEGIN_OPTION = "agent_tracer_begin"
_SQLITE_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (named in the sqlite3 module from Python 3.11)


def default_url() -> str:
    """`$AGENT_TRACER_DB`, else an SQLite file `agent_tracer.db` in the working directory."""
    return os.environ.get(ENV_VAR) or DEFAULT_URL


def parse_url(url: str | None = None) -> URL:
    """Parse and normalise a store URL: `postgresql://` (and `postgres://`) become
    `postgresql+psycopg://`. Raises `ConfigError` for anything but SQLite or PostgreSQL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = (url or default_url()).strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise ConfigError(
            f"not a database URL: {text!r} (expected sqlite:///path.db or postgresql://user@host/db)"
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported database {redact(parsed)!r}: agent-tracer stores traces in SQLite or PostgreSQL"
        )
    return parsed


def redact(url: URL | str) -> str:
    """The URL as text with its password masked, for messages and logs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return str(url)
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The file behind an SQLite URL; None for PostgreSQL and in-memory databases."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database.startswith("file:") and url.query.get("uri") == "true":  # sqlite:///file:x.db?mode=ro&uri=true
        if url.query.get("mode") == "memory":
            return None
        database = database[len("file:") :]
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def create_engine(url: str | URL | None = None) -> Engine:
    """An engine for a store URL (default: `default_url()`); see the module docstring."""
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from sqlalchemy.pool import StaticPool

    parsed = parse_url(url) if url is None or isinstance(url, str) else url
    kwargs: dict[str, Any] = {"json_serializer": dumps_json, "json_deserializer": fastjson.loads}
    if parsed.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
    elif sqlite_path(parsed) is None:  # in memory: one database shared by every thread
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"] = {"check_same_thread": False}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"cannot open {redact(parsed)!r}: {exc}") from None
    except (ArgumentError, TypeError, ValueError) as exc:
        raise ConfigError(f"bad database URL {redact(parsed)!r}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine, in_memory=sqlite_path(parsed) is None, busy_timeout_ms=_busy_timeout_ms(parsed))
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) for read-modify-write transactions: on SQLite they begin with
    `BEGIN IMMEDIATE`, so a second writer waits for the lock instead of failing at commit."""
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def _busy_timeout_ms(url: URL) -> int:
    """5 s, or the URL's own `?timeout=SECONDS` (pysqlite's parameter) when it gives one."""
    value = url.query.get("timeout")  # already checked by pysqlite's dialect when the engine was made
    return BUSY_TIMEOUT_MS if not isinstance(value, str) else max(int(float(value) * 1000), 0)


def _configure_sqlite(engine: Engine, *, in_memory: bool, busy_timeout_ms: int) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event emits BEGIN instead
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            if not in_memory:
                _enable_wal(cursor, busy_timeout_ms)
            cursor.execute("PRAGMA synchronous = NORMAL")
            # Checkpoint every 16 MB of WAL, not SQLite's 4 MB: the capture writer's batches are
            # a few MB each, and fewer checkpoints took its throughput from ~5,500 to ~5,700 calls/s.
            cursor.execute("PRAGMA wal_autocheckpoint = 4000")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


def _enable_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Switch the file to WAL (a persistent setting) unless it is already. SQLite answers "database
    is locked" at once, without its busy handler, when several connections switch a new file at the
    same moment: such a switch is retried for up to the busy timeout."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.005
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) in _SQLITE_BUSY_CODES or "locked" in str(exc)
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)


dumps_json = fastjson.dumps
"""JSON for JSON columns (and spill lines): compact, UTF-8 kept as is, datetimes as ISO-8601.
The function itself, not a wrapper: the store's fast SQLite insert calls it for every JSON value."""
