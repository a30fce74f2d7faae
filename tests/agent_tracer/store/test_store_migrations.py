"""Migrations, engine settings and opening a store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from agent_tracer.errors import ConfigError, SchemaError, StoreError
from agent_tracer.store import TraceStore
from agent_tracer.store.database import create_engine, parse_url, sqlite_path, writer
from agent_tracer.store.migrations import (
    MIGRATIONS,
    MIGRATIONS_TABLE,
    SCHEMA_VERSION,
    _migrations_table,
    applied_migrations,
    migrate,
)
from agent_tracer.store.models import TABLE_MODELS, utcnow
from agent_tracer.store.search import PG_INDEX

ALL = [
    "m001_initial",
    "m002_fallback_reason",
    "m003_search",
    "m004_feedback_correction",
    "m005_list_indexes",
    "m006_unmapped_spans",
    "m007_response_ids",
    "m008_content_keys",
]


def test_a_fresh_database_gets_every_migration_once(store_url):
    engine = create_engine(store_url)
    try:
        assert migrate(engine) == [item.name for item in MIGRATIONS] == ALL
        assert migrate(engine) == []  # re-run: nothing to do
        with engine.connect() as conn:
            assert applied_migrations(conn) == ALL
            rows = conn.execute(sa.text(f"SELECT name, applied_at FROM {MIGRATIONS_TABLE}")).all()
        assert sorted(name for name, _ in rows) == ALL and all(applied_at is not None for _, applied_at in rows)
    finally:
        engine.dispose()
    store = TraceStore(store_url)
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    store.close()


def test_a_store_of_the_first_schema_is_upgraded_and_keeps_its_rows(tmp_path):
    """A store written before the router existed gains llm_calls.fallback_reason; its calls stay."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with writer(engine).begin() as conn:
        _migrations_table.create(conn)
        MIGRATIONS[0].apply(conn)
        conn.execute(_migrations_table.insert().values(name="m001_initial", applied_at=utcnow()))
        conn.execute(
            sa.text(
                "INSERT INTO llm_calls (id, trace_id, streamed, status, has_tool_calls) VALUES ('c1', 't1', 0, 'ok', 0)"
            )
        )
    assert migrate(engine) == ALL[1:]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, fallback_reason, search_text FROM llm_calls")).all() == [
            ("c1", None, None)
        ]
    engine.dispose()


def test_a_store_before_corrections_gains_the_column_and_keeps_its_feedback(store_url):
    """m004 on each database: the feedback given before has no correction (SQL NULL, not JSON
    null), and a correction written after is read back as the message it was."""
    engine = create_engine(store_url)
    with writer(engine).begin() as conn:
        _migrations_table.create(conn)
        for item in MIGRATIONS[:3]:
            item.apply(conn)
            conn.execute(_migrations_table.insert().values(name=item.name, applied_at=utcnow()))
        conn.execute(
            sa.text("INSERT INTO feedback (id, trace_id, outcome, created_at) VALUES ('f1', :trace, 'failure', :now)"),
            {"trace": "a" * 32, "now": utcnow()},
        )
    assert migrate(engine) == ALL[3:]  # m004, and those after it
    engine.dispose()
    with TraceStore(store_url) as store:
        store.record_feedback("a" * 32, comment="later")
        store.record_feedback("a" * 32, correction={"content": "Shipped.", "tool_calls": [{"name": "lookup"}]})
        assert [row.correction for row in store.feedback()] == [
            None,
            None,
            {
                "role": "assistant",
                "content": "Shipped.",
                "tool_calls": [{"type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
            },
        ]
        assert [row.comment for row in store.feedback()][:2] == [None, "later"]
        assert len(store.feedback(corrections=True)) == 1
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM feedback WHERE correction IS NULL")).scalar_one() == 2


def test_the_migrated_schema_matches_the_models(store):
    """The migrations spell the schema out (frozen); the models must agree with it."""
    inspector = sa.inspect(store.engine)
    for model in TABLE_MODELS.values():
        table = model.__table__
        columns = {column["name"]: column for column in inspector.get_columns(table.name)}
        assert set(columns) == {column.name for column in table.columns}, table.name
        for column in table.columns:
            assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        indexes = {index["name"] for index in inspector.get_indexes(table.name)} - {PG_INDEX}  # an expression
        assert indexes == {index.name for index in table.indexes}, table.name
        assert inspector.get_pk_constraint(table.name)["constrained_columns"] == ["id"]
    assert {table.name for table in SQLModel.metadata.sorted_tables} >= {m.__tablename__ for m in TABLE_MODELS.values()}


def test_a_database_from_a_newer_agent_tracer_is_refused(store_url):
    TraceStore(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES ('m999_future', :now)"),
            {"now": datetime(2030, 1, 1)},
        )
    engine.dispose()
    with pytest.raises(SchemaError, match="database was written by a newer agent-tracer: .*m999_future"):
        TraceStore(store_url)


def test_a_database_with_foreign_tables_is_refused(store_url):
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE traces (id INTEGER PRIMARY KEY, body TEXT)"))
    engine.dispose()
    with pytest.raises(SchemaError, match="not an agent-tracer store"):
        TraceStore(store_url)


_MIGRATE_AT = """
import sys, time
from agent_tracer.store.database import create_engine
from agent_tracer.store.migrations import migrate
engine = create_engine(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
print(",".join(migrate(engine)) or "-")
"""


def test_processes_migrating_at_once(store_url):
    start_at = time.time() + 2.0  # every process imports first, then all migrate at the same moment
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_AT, store_url, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], [err for _, err in results]
    assert sorted(out.strip() for out, _ in results) == ["-", "-", ",".join(ALL)]
    store = TraceStore(store_url)
    assert store.schema_version() == SCHEMA_VERSION
    store.close()


def test_opening_without_create_does_not_make_a_file(tmp_path):
    path = tmp_path / "missing" / "traces.db"
    with pytest.raises(StoreError, match="no trace store at"):
        TraceStore(f"sqlite:///{path}", create=False)
    assert not path.exists() and not path.parent.exists()
    TraceStore(f"sqlite:///{path}").close()  # create=True makes the folders and the file
    assert path.exists()
    TraceStore(f"sqlite:///{path}", create=False).close()


def test_sqlite_engine_settings(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    engine.dispose()


def test_a_timeout_in_the_url_sets_the_busy_timeout(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}?timeout=0.05")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 50
    engine.dispose()
    with pytest.raises(ConfigError, match="soon"):
        create_engine(f"sqlite:///{tmp_path / 'x.db'}?timeout=soon")


def test_a_sqlite_uri_names_its_file(tmp_path):
    path = tmp_path / "ro.db"
    TraceStore(f"sqlite:///{path}").write([("trace", {"id": "a" * 32})])
    assert sqlite_path(parse_url(f"sqlite:///file:{path}?mode=ro&uri=true")) == path
    assert sqlite_path(parse_url("sqlite:///file:mem?mode=memory&uri=true")) is None
    with TraceStore(f"sqlite:///file:{path}?mode=ro&uri=true", create=False) as store:
        assert [trace.id for trace in store.traces()] == ["a" * 32]
    with pytest.raises(StoreError, match="no trace store"):
        TraceStore(f"sqlite:///file:{tmp_path / 'none.db'}?mode=ro&uri=true", create=False)


def test_an_in_memory_store_is_shared_by_threads():
    import threading

    store = TraceStore("sqlite://")
    store.write([("trace", {"id": "a" * 32})])
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(len(store.traces())))
    thread.start()
    thread.join()
    assert seen == [1]
    store.close()


def test_default_url_and_environment(monkeypatch):
    from agent_tracer.store import default_url

    monkeypatch.delenv("AGENT_TRACER_DB", raising=False)
    assert default_url() == "sqlite:///agent_tracer.db"
    monkeypatch.setenv("AGENT_TRACER_DB", "postgresql://u@h/db")
    assert default_url() == "postgresql://u@h/db"
    assert parse_url(None).drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    "url, driver",
    [
        ("postgresql://user:secret@localhost:5432/traces", "postgresql+psycopg"),
        ("postgres://user@localhost/traces", "postgresql+psycopg"),
        ("postgresql+psycopg://user@localhost/traces", "postgresql+psycopg"),
        ("sqlite:///relative.db", "sqlite"),
        ("sqlite:////abs/path.db", "sqlite"),
    ],
)
def test_urls_are_normalised(url, driver):
    assert parse_url(url).drivername == driver


@pytest.mark.parametrize(
    "url", ["not a url", "mysql://user@host/db", "http://example.com", "postgresql+nodriver://h/db"]
)
def test_bad_urls_are_one_line_config_errors(url):
    with pytest.raises(ConfigError) as info:
        create_engine(url)
    assert "\n" not in str(info.value)


def test_bad_url_errors_hide_the_password():
    with pytest.raises(ConfigError) as info:
        create_engine("mysql://user:hunter2@host/db")
    assert "hunter2" not in str(info.value)


def test_an_unreachable_postgresql_server_is_a_one_line_store_error():
    with pytest.raises(StoreError) as info:
        TraceStore("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=2")
    assert "\n" not in str(info.value) and "secret" not in str(info.value)


def test_json_columns_keep_unicode_and_datetimes(store, rec):
    kind, row = rec.call(1, rec.trace_id(1))
    row["request"]["messages"][0]["content"] = "Grüße, 東京 ✓"
    row["request"]["params"] = {"when": datetime(2024, 5, 1, 10)}
    store.write([(kind, row)])
    (call,) = store.calls()
    assert call.request["messages"][0]["content"] == "Grüße, 東京 ✓"
    assert call.request["params"] == {"when": "2024-05-01T10:00:00"}
    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT request FROM llm_calls")).scalar_one()
    text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
    assert "東京" in text
