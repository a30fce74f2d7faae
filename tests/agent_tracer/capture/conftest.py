"""Capture fixtures: a fresh store per test, capture on, and everything restored afterwards."""

from __future__ import annotations

import pytest

import agent_tracer
from agent_tracer.store import TraceStore


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'traces.db'}"


@pytest.fixture
def traced(db_url, tmp_path):
    """Capture into a SQLite file under tmp_path; yields a TraceStore reading the same file."""
    agent_tracer.init(db=db_url, spill_path=str(tmp_path / "spill.jsonl"), flush_interval_s=0.02)
    store = TraceStore(db_url)
    yield store
    agent_tracer.uninstrument()
    store.close()
