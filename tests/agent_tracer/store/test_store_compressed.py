"""Raw bodies on SQLite are kept compressed (`store/compressed.py`): what a user checks is that a
call reads back exactly as it was sent, whatever its size or characters, that the file holds
less, that rows written as text before still read, and that PostgreSQL keeps its text."""

from __future__ import annotations

import json
import sqlite3

import pytest

from agent_tracer.store import TraceStore
from agent_tracer.store.compressed import MIN_CHARS


def bodies(n: int) -> tuple[str, str]:
    request = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": f"question {i}: ünïcødé ✓ 日本"} for i in range(n)]},
        ensure_ascii=False,
    )
    return request, json.dumps({"id": "chatcmpl-1", "choices": [{"message": {"content": "short"}}]})


def test_raw_bodies_read_back_as_sent(store, rec):
    for n, size in ((1, "short"), (200, "long")):
        request, response = bodies(n)
        kind, call = rec.call(n, rec.trace_id(n), raw_request=request, raw_response=response)
        store.write([rec.trace(n), (kind, call)])
        [stored] = store.get_trace(rec.trace_id(n)).calls
        assert (stored.raw_request, stored.raw_response) == (request, response), size
        assert len(request) >= MIN_CHARS or size == "short"


def test_sqlite_keeps_long_bodies_compressed_and_reads_old_text_rows(tmp_path, rec):
    path = tmp_path / "c.db"
    request, response = bodies(200)
    with TraceStore(f"sqlite:///{path}") as store:
        kind, call = rec.call(1, rec.trace_id(1), raw_request=request, raw_response=response)
        store.write([rec.trace(1), (kind, call)])
    with sqlite3.connect(path) as conn:
        raw, short = conn.execute("SELECT raw_request, raw_response FROM llm_calls").fetchone()
        assert isinstance(raw, bytes) and len(raw) < len(request) / 5  # a zstd frame, a fifth of the text
        assert isinstance(short, str)  # under MIN_CHARS: kept as text
        conn.execute("UPDATE llm_calls SET raw_request = ?", (request,))  # as a version before wrote it
    with TraceStore(f"sqlite:///{path}") as store:
        [stored] = store.get_trace(rec.trace_id(1)).calls
        assert stored.raw_request == request


def test_postgresql_keeps_the_text(store, rec):
    """PostgreSQL compresses long values itself (TOAST): its column holds the text as sent."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite: test_sqlite_keeps_long_bodies_compressed_and_reads_old_text_rows")
    request, response = bodies(200)
    kind, call = rec.call(1, rec.trace_id(1), raw_request=request, raw_response=response)
    store.write([rec.trace(1), (kind, call)])
    with store.engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT raw_request FROM llm_calls").scalar_one()
    assert raw == request
