"""A missing, read-only or locked database never fails or changes the agent's call, and loses nothing:
failed batches are retried, then spilled to a file that `agent-tracer traces import` loads."""

from __future__ import annotations

import sqlite3
import time

import openai
import pytest
from click.testing import CliRunner

import agent_tracer
from agent_tracer.cli import main
from agent_tracer.store import TraceStore


def ask(upstream, text):
    c = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
    return c.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])


def import_spill(spill, db_url):
    result = CliRunner().invoke(main, ["traces", "import", str(spill), "--format", "spill", "--db", db_url])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("where", ["postgres-down", "sqlite-unopenable"])
def test_unreachable_database_spills_everything(upstream, tmp_path, where):
    spill = tmp_path / "spill.jsonl"
    (tmp_path / "a-file").write_text("not a folder")
    db = {
        "postgres-down": "postgresql+psycopg://nobody:pw@127.0.0.1:9/none",  # nothing listens on port 9
        "sqlite-unopenable": f"sqlite:///{tmp_path}/a-file/t.db",
    }[where]
    agent_tracer.init(db=db, spill_path=str(spill), retry_backoff_s=0.01, flush_interval_s=0.02)
    try:
        answers = [ask(upstream, f"q{i}").choices[0].message.content for i in range(5)]
        assert answers == [f"Echo: q{i}" for i in range(5)]
        assert agent_tracer.flush()
        stats = agent_tracer.stats()
        assert stats["captured"] == 5 and stats["spilled"] == 5 and stats["written"] == 0
        assert stats["dropped"] == 0 and stats["retried"] >= 1
    finally:
        agent_tracer.uninstrument()
    good = f"sqlite:///{tmp_path}/recovered.db"
    import_spill(spill, good)
    store = TraceStore(good)
    assert sorted(c.request["messages"][0]["content"] for c in store.calls()) == [f"q{i}" for i in range(5)]
    store.close()


def test_read_only_database_spills_and_the_call_is_unchanged(upstream, tmp_path):
    path = tmp_path / "ro.db"
    TraceStore(f"sqlite:///{path}").close()  # an existing, migrated store
    spill = tmp_path / "spill.jsonl"
    agent_tracer.init(
        db=f"sqlite:///file:{path}?mode=ro&uri=true", spill_path=str(spill), retry_backoff_s=0.01, flush_interval_s=0.02
    )
    try:
        assert ask(upstream, "read only").choices[0].message.content == "Echo: read only"
        assert agent_tracer.flush()
        assert agent_tracer.stats()["spilled"] == 1
    finally:
        agent_tracer.uninstrument()
    assert spill.read_text().count("\n") >= 1


def test_database_locked_mid_run_loses_nothing(upstream, tmp_path):
    path = tmp_path / "locked.db"
    url = f"sqlite:///{path}?timeout=0.05"
    spill = tmp_path / "spill.jsonl"
    agent_tracer.init(db=url, spill_path=str(spill), retry_backoff_s=0.01, flush_interval_s=0.02, write_retries=2)
    try:
        ask(upstream, "before")
        assert agent_tracer.flush()
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        started = time.perf_counter()
        during = [ask(upstream, f"during {i}").choices[0].message.content for i in range(3)]
        plain_time = time.perf_counter() - started
        assert during == [f"Echo: during {i}" for i in range(3)]
        assert plain_time < 2.0  # the agent never waits for the database
        assert agent_tracer.flush()
        locker.execute("ROLLBACK")
        locker.close()
        ask(upstream, "after")
        assert agent_tracer.flush()
        stats = agent_tracer.stats()
        assert stats["captured"] == 5 and stats["written"] + stats["spilled"] == 5 and stats["spilled"] >= 1
        assert stats["dropped"] == 0
    finally:
        agent_tracer.uninstrument()
    import_spill(spill, f"sqlite:///{path}")
    import_spill(spill, f"sqlite:///{path}")  # importing twice adds nothing
    store = TraceStore(f"sqlite:///{path}")
    texts = sorted(c.request["messages"][0]["content"] for c in store.calls())
    assert texts == sorted(["before", "during 0", "during 1", "during 2", "after"])
    store.close()


def test_full_queue_drops_and_counts_instead_of_blocking(upstream, tmp_path):
    agent_tracer.init(
        db=f"sqlite:///{tmp_path}/q.db", spill_path=str(tmp_path / "s.jsonl"), queue_size=1, flush_interval_s=5
    )
    try:
        for i in range(4):
            ask(upstream, f"q{i}")
        stats = agent_tracer.stats()
        assert stats["captured"] + stats["dropped"] == 4 and stats["dropped"] >= 1
    finally:
        agent_tracer.uninstrument()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 512 KiB filesystem (tmpfs), so the database really fills up; skipped where mount is not allowed."""
    import subprocess

    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_full_disk_spills_and_loses_nothing(upstream, tmp_path, tiny_disk):
    spill = tmp_path / "spill.jsonl"
    agent_tracer.init(
        db=f"sqlite:///{tiny_disk}/full.db",
        spill_path=str(spill),
        retry_backoff_s=0.01,
        flush_interval_s=0.02,
        batch_size=8,
    )
    padding = "lorem ipsum " * 2000  # ~24 KB a request: the disk is full after a few dozen calls
    try:
        answers = [ask(upstream, f"q{i} {padding}").choices[0].message.content[:7] for i in range(60)]
        assert answers == [f"Echo: q{i}"[:7] for i in range(60)]
        assert agent_tracer.flush(30)
        stats = agent_tracer.stats()
        assert stats["captured"] == 60 and stats["dropped"] == 0
        assert stats["spilled"] > 0 and stats["written"] + stats["spilled"] == 60
    finally:
        agent_tracer.uninstrument()
    recovered = f"sqlite:///{tmp_path}/recovered.db"
    import_spill(spill, recovered)
    texts = []
    for url in (f"sqlite:///{tiny_disk}/full.db", recovered):
        with TraceStore(url) as store:
            texts += [c.request["messages"][0]["content"].split()[0] for c in store.calls()]
    assert sorted(texts) == sorted(f"q{i}" for i in range(60))


def spilled_while_locked(upstream, tmp_path, writer):
    """Capture into a store another connection holds locked, three calls made and spilled:
    (the database's path, the spill file, the locking connection, still holding the lock)."""
    path = tmp_path / "locked.db"
    TraceStore(f"sqlite:///{path}").close()
    spill = tmp_path / "spill.jsonl"
    agent_tracer.init(
        db=f"sqlite:///{path}?timeout=0.05", spill_path=str(spill), retry_backoff_s=0.01, flush_interval_s=0.02,
        write_retries=2, writer=writer,
    )  # fmt: skip
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    for i in range(3):
        ask(upstream, f"while locked {i}")
    assert agent_tracer.flush() and agent_tracer.stats()["spilled"] == 3
    return path, spill, locker


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_the_spill_is_loaded_back_when_the_store_takes_writes_again(upstream, tmp_path, writer):
    """What was spilled while the database was locked goes into it, by itself, at the first write
    that succeeds after; meanwhile the runtime's health says so (what /healthz and /metrics show)."""
    from agent_tracer import runtime

    try:
        path, spill, locker = spilled_while_locked(upstream, tmp_path, writer)
        health = runtime.current().health()
        assert (health["store"], health["queued"]) == ("unreachable", 0) and health["spill_bytes"] > 0
        locker.execute("ROLLBACK")
        locker.close()
        ask(upstream, "unlocked")
        assert agent_tracer.flush()
        stats, health = agent_tracer.stats(), runtime.current().health()
        assert stats["reloaded"] >= 3 and stats["written"] == 1 and stats["dropped"] == 0
        assert (health["store"], health["spill_bytes"], health["queued"]) == ("ok", 0, 0)
        assert health["writes"] == 1 and health["write_seconds"] >= 0  # the batch; the spill went in apart
    finally:
        agent_tracer.uninstrument()
    assert spill.read_bytes() == b""
    with TraceStore(f"sqlite:///{path}") as store:
        texts = sorted(c.request["messages"][0]["content"] for c in store.calls())
    assert texts == ["unlocked", "while locked 0", "while locked 1", "while locked 2"]


def test_a_spill_left_by_an_earlier_run_is_loaded_at_the_first_write(upstream, tmp_path):
    spill = tmp_path / "spill.jsonl"
    agent_tracer.init(db=f"sqlite:///{tmp_path}/a-file-not-a-folder/x.db", spill_path=str(spill),
                      retry_backoff_s=0.01, flush_interval_s=0.02)  # fmt: skip
    (tmp_path / "a-file-not-a-folder").write_text("")
    try:
        ask(upstream, "spilled earlier")
        assert agent_tracer.flush() and agent_tracer.stats()["spilled"] == 1
    finally:
        agent_tracer.uninstrument()
    agent_tracer.init(db=f"sqlite:///{tmp_path}/t.db", spill_path=str(spill), flush_interval_s=0.02)
    try:
        ask(upstream, "now")
        assert agent_tracer.flush()
        assert agent_tracer.stats()["reloaded"] >= 1
    finally:
        agent_tracer.uninstrument()
    with TraceStore(f"sqlite:///{tmp_path}/t.db") as store:
        assert sorted(c.request["messages"][0]["content"] for c in store.calls()) == ["now", "spilled earlier"]


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_the_spill_is_loaded_back_even_when_no_call_comes_after_the_outage(upstream, tmp_path, writer):
    """The store's return is noticed by the idle writer itself (every few seconds while a spill
    waits), not only by the next call's write."""
    from agent_tracer import runtime

    try:
        path, spill, locker = spilled_while_locked(upstream, tmp_path, writer)
        locker.execute("ROLLBACK")
        locker.close()
        deadline = time.monotonic() + 15
        while agent_tracer.stats()["reloaded"] < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert agent_tracer.stats()["reloaded"] == 6  # 3 calls, each a trace and a call record
        assert runtime.current().health()["store"] == "ok"
    finally:
        agent_tracer.uninstrument()
    assert spill.read_bytes() == b""
    with TraceStore(f"sqlite:///{path}") as store:
        assert len(store.calls()) == 3
