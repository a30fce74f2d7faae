"""Fixtures shared by every test: a loopback server that answers like the model APIs, and an
empty database of each kind (SQLite file; PostgreSQL when `AGENT_TRACER_TEST_PG_URL` names a
server whose role may create databases: each test gets a database of its own, dropped afterwards).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agent_tracer.testing import FakeUpstream


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
    from agent_tracer.store.engine import create_engine

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
