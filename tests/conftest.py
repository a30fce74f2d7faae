"""Fixtures shared by every test: a loopback server that answers like the model APIs, an empty
database of each kind (SQLite file; PostgreSQL when `AGENT_TRACER_TEST_PG_URL` names a server whose
role may create databases: each test gets a database of its own, dropped afterwards), and a tiny
model to train and serve (a tokenizer trained in the test, offline, in milliseconds, and a 2-layer
Llama saved as a model folder), for the trainer's tests and the pipeline example's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agent_tracer.testing import FakeUpstream
from trainer.tiny import build_tokenizer, save_tiny_model


@pytest.fixture(scope="session")
def upstream():
    with FakeUpstream() as server:
        yield server


PG_ENV = "AGENT_TRACER_TEST_PG_URL"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Any]:
    """An autocommit engine on the test server (for CREATE / DROP DATABASE), or a skip."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL cases need {PG_ENV} (a server where the role may CREATE DATABASE)")
    from agent_tracer.store.database import create_engine

    engine = create_engine(base).execution_options(isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'traces.db'}"
        return
    admin = request.getfixturevalue("pg_admin")
    name = f"agent_tracer_t_{uuid.uuid4().hex[:12]}"
    _admin(admin, f'CREATE DATABASE "{name}"')
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(engine: Any, sql: str) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(sql)


SPAN_TABLES = ("traces", "agent_runs", "llm_calls", "tool_executions", "unmapped_spans")


@pytest.fixture
def stored_rows() -> Any:
    """What a SQLite store file holds, as the driver reads it (the stored text, not the model's
    values): every row of each span table, in id order, as a dict without `updated_at` (a clock)."""
    import sqlite3

    def rows(path: Any) -> dict[str, list[dict[str, Any]]]:
        out = {}
        with sqlite3.connect(path) as db:
            for table in SPAN_TABLES:
                cursor = db.execute(f"SELECT * FROM {table} ORDER BY id")
                names = [column[0] for column in cursor.description]
                out[table] = [{k: v for k, v in zip(names, row) if k != "updated_at"} for row in cursor]
        return out

    return rows


# A tiny model: trained and served in seconds, offline (`trainer.tiny`, which the quickstart uses too).


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tokenizer()


@pytest.fixture
def make_tokenizer():
    """`build_tokenizer` itself, for a test that wants another chat template."""
    return build_tokenizer


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A folder holding a 2-layer Llama (hidden size 32) and the offline tokenizer: a model any
    `--model` can name, trained in seconds."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), tiny_tokenizer)
