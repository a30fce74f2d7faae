"""The writer process: calls are written by a child; if it dies, nothing it held is lost."""

from __future__ import annotations

import os
import signal
import time

import openai
import pytest

import agent_tracer
from agent_tracer import runtime
from agent_tracer.store import TraceStore


def ask(upstream, text):
    c = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
    return c.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])


def stored_texts(url):
    with TraceStore(url) as store:
        return sorted(c.request["messages"][0]["content"] for c in store.calls())


def test_a_killed_writer_process_loses_nothing(upstream, tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    agent_tracer.init(db=url, spill_path=str(tmp_path / "s.jsonl"), flush_interval_s=0.02)
    try:
        child = runtime.current().exporter._child
        ask(upstream, "first")
        assert agent_tracer.flush()
        os.kill(child.pid, signal.SIGSTOP)  # frozen: batches reach its pipe but are never acknowledged
        answers = [ask(upstream, f"held {i}").choices[0].message.content for i in range(4)]
        assert answers == [f"Echo: held {i}" for i in range(4)]
        time.sleep(0.2)
        assert not agent_tracer.flush(0.2)  # still held by the frozen child
        os.kill(child.pid, signal.SIGKILL)
        assert agent_tracer.flush(10)
        ask(upstream, "after")
        assert agent_tracer.flush(10)
        stats = agent_tracer.stats()
        assert stats["captured"] == 6 and stats["written"] == 6 and stats["dropped"] == 0
    finally:
        agent_tracer.uninstrument()
    assert stored_texts(url) == sorted(["first", "held 0", "held 1", "held 2", "held 3", "after"])
    assert "the writer process stopped" in caplog.text


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_both_writers_store_the_same(upstream, tmp_path, writer):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    agent_tracer.init(db=url, spill_path=str(tmp_path / "s.jsonl"), writer=writer)
    try:
        for i in range(3):
            ask(upstream, f"q{i}")
        assert agent_tracer.flush()
        assert agent_tracer.stats()["written"] == 3
    finally:
        agent_tracer.uninstrument()
    assert stored_texts(url) == ["q0", "q1", "q2"]


def test_unknown_writer_is_refused():
    with pytest.raises(agent_tracer.ConfigError, match="writer"):
        agent_tracer.init(writer="fork")


def test_a_slow_store_holds_back_the_writer_process_and_the_queue_drops_and_counts(upstream, tmp_path):
    """The store takes no writes for a while (another connection holds it locked): the writer
    process is sent at most `queue_size` calls it has not written, the rest wait in the bounded
    queue and, past it, are dropped and counted, so neither process grows with the backlog. Once
    the lock goes, every call that was not dropped is written."""
    import sqlite3

    path = tmp_path / "slow.db"
    TraceStore(f"sqlite:///{path}").close()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    agent_tracer.init(
        db=f"sqlite:///{path}?timeout=0.2", spill_path=str(tmp_path / "spill.jsonl"), queue_size=20, batch_size=5,
        flush_interval_s=0.01, write_retries=10_000, retry_backoff_s=0.05, writer="process",
    )  # fmt: skip
    try:
        rt = runtime.current()
        held = []
        for i in range(150):
            ask(upstream, f"slow {i}")
            held.append(rt.health()["queued"])
        assert max(held) <= 2 * 20 + 5  # the queue, and what the child holds unwritten
        assert agent_tracer.stats()["dropped"] > 0
        locker.execute("ROLLBACK")
        assert agent_tracer.flush(timeout=30)
        stats = agent_tracer.stats()
    finally:
        locker.close()
        agent_tracer.uninstrument()
    assert len(stored_texts(f"sqlite:///{path}")) == stats["written"] == 150 - stats["dropped"]
