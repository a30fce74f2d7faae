"""Fixtures for the store tests: a real database per test, SQLite and PostgreSQL.

SQLite is a file under `tmp_path`. PostgreSQL runs when `AGENT_TRACER_TEST_PG_URL` names a server
(e.g. postgresql+psycopg://agent_tracer:agent_tracer@127.0.0.1:5432/agent_tracer_test) whose role
may create databases: each test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from agent_tracer.store import TraceStore

PG_ENV = "AGENT_TRACER_TEST_PG_URL"
T0 = datetime(2024, 5, 1, 10, 0, 0)


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


@pytest.fixture
def store(store_url: str) -> Iterator[TraceStore]:
    trace_store = TraceStore(store_url)
    yield trace_store
    trace_store.close()


class Records:
    """Builders for store records, in the shapes the exporter writes (a fixture: `rec`)."""

    T0 = T0

    @staticmethod
    def at(seconds: float, start: datetime = T0) -> datetime:
        return start + timedelta(seconds=seconds)

    @staticmethod
    def trace_id(n: int) -> str:
        return f"{n:032x}"

    @staticmethod
    def span_id(n: int) -> str:
        return f"{n:016x}"

    def trace(self, n: int, *, start: float = 0.0, **fields: Any) -> tuple[str, dict[str, Any]]:
        row = {"id": self.trace_id(n), "name": "agent", "started_at": self.at(start),
               "ended_at": self.at(start + 1), "status": "ok", "source": "decorator", **fields}  # fmt: skip
        return "trace", row

    def call(
        self, n: int, trace: str, *, model: str = "gpt-4o-mini", tool_calls: bool = False, start: float = 0.0,
        **fields: Any,
    ) -> tuple[str, dict[str, Any]]:  # fmt: skip
        message: dict[str, Any] = {"role": "assistant", "content": f"answer {n}"}
        if tool_calls:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": f"call_{n}", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
                ],
            }  # fmt: skip
        row = {
            "id": self.span_id(n),
            "trace_id": trace,
            "provider": "openai",
            "api": "openai.chat",
            "operation": "chat",
            "request_model": model,
            "response_model": f"{model}-2024",
            "request": {"model": model, "messages": [{"role": "user", "content": f"question {n}"}],
                        "tools": [], "params": {}, "stream": False},
            "response": {"id": f"resp_{n}", "model": f"{model}-2024", "message": message,
                         "finish_reasons": ["tool_calls" if tool_calls else "stop"],
                         "input_tokens": 10, "output_tokens": 5},
            "input_tokens": 10,
            "output_tokens": 5,
            "latency_ms": 100.0 + n,
            "started_at": self.at(start),
            "ended_at": self.at(start + 0.1),
            **fields,
        }  # fmt: skip
        return "llm_call", row


@pytest.fixture
def rec() -> Records:
    return Records()
