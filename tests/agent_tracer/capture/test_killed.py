"""A process killed with calls in hand: what it held is counted as lost by the next process that
starts with the same spill file, and what its writer process still wrote is not."""

from __future__ import annotations

import glob
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import agent_tracer
from agent_tracer.store import TraceStore

AGENT = r"""
import json, sys, time
import openai
import agent_tracer
from agent_tracer import runtime

url, spill, base, calls, writer = sys.argv[1:]
agent_tracer.init(  # the calls go to the writer as one batch, once all are made
    db=url, spill_path=spill, writer=writer, batch_size=int(calls), flush_interval_s=5,
    write_retries=3, retry_backoff_s=2.0,
)
client = openai.OpenAI(base_url=base, api_key="sk-test", max_retries=0)
for i in range(int(calls)):
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"held {i}"}])
exporter = runtime.current().exporter
while exporter._queue:  # every call handed to the writer, which cannot write: the store is locked
    time.sleep(0.01)
child = getattr(exporter, "_child", None)
print(json.dumps({"writer": child.pid if child else None}), flush=True)
time.sleep(600)
"""


def start_agent(upstream, url, spill, calls, writer):
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, url, spill, upstream.openai_base_url, str(calls), writer],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = agent.stdout.readline()
    assert line, f"the agent exited with {agent.wait()}"
    return agent, json.loads(line)["writer"]


def ledgers(spill):
    """The ledger files beside a spill file (hidden: `.NAME.ledger-PID-TOKEN`)."""
    folder, name = os.path.split(spill)
    return glob.glob(os.path.join(folder, f".{name}.ledger-*"))


def gone(pid, timeout):
    """Whether `pid` (not a child of this process) has exited within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def locked_store(tmp_path):
    """A SQLite store another connection holds locked, so that nothing can be written to it."""
    path = tmp_path / "traces.db"
    TraceStore(f"sqlite:///{path}").close()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    yield f"sqlite:///{path}?timeout=0.2", locker
    locker.close()


def next_start_counts(url, spill, caplog):
    """What `init()` in the next process with this spill file counts as lost, and what is stored."""
    with caplog.at_level(logging.WARNING, logger="agent_tracer"):
        agent_tracer.init(db=url, spill_path=spill)
        try:
            assert agent_tracer.flush(10)
            lost = agent_tracer.stats()["lost"]
        finally:
            agent_tracer.uninstrument()
    with TraceStore(url) as store:
        stored = sorted(c.request["messages"][0]["content"] for c in store.calls())
    return lost, stored


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_calls_in_hand_when_the_agent_and_its_writer_are_killed_are_counted_as_lost(
    upstream, tmp_path, locked_store, caplog, writer
):
    url, locker = locked_store
    spill = str(tmp_path / "spill.jsonl")
    agent, writer_pid = start_agent(upstream, url, spill, 7, writer)
    for pid in (agent.pid, writer_pid):
        if pid:
            os.kill(pid, signal.SIGKILL)
    agent.wait()
    assert writer_pid is None or gone(writer_pid, 10)
    assert ledgers(spill), "the killed agent's ledger is left for the next start"
    locker.execute("ROLLBACK")

    lost, stored = next_start_counts(url, spill, caplog)

    assert lost == 7 and stored == []
    assert "7 spans captured by an earlier process were lost" in caplog.text
    assert not ledgers(spill)
    again, _ = next_start_counts(url, spill, caplog)
    assert again == 0  # counted once


def test_a_writer_process_that_outlives_its_agent_writes_what_it_holds_and_nothing_is_counted_lost(
    upstream, tmp_path, locked_store, caplog
):
    url, locker = locked_store
    spill = str(tmp_path / "spill.jsonl")
    agent, writer_pid = start_agent(upstream, url, spill, 5, "process")
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait()
    locker.execute("ROLLBACK")  # the store takes writes again: the orphaned writer writes (or spills) them
    assert gone(writer_pid, 30)

    lost, stored = next_start_counts(url, spill, caplog)

    assert lost == 0 and stored == [f"held {i}" for i in range(5)]
    assert "lost" not in caplog.text
    assert not ledgers(spill)


def test_a_clean_stop_leaves_no_ledger(upstream, tmp_path):
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    spill = str(tmp_path / "spill.jsonl")
    agent_tracer.init(db=url, spill_path=spill)
    try:
        assert len(ledgers(spill)) == 1
    finally:
        agent_tracer.uninstrument()
    assert not ledgers(spill)


def test_a_process_forked_after_init_does_not_count_in_its_parents_ledger(tmp_path):
    from agent_tracer.ledger import Ledger, collect_lost

    spill = str(tmp_path / "spill.jsonl")
    ledger = Ledger(spill)
    ledger.accept(3)
    child = os.fork()
    if child == 0:  # what a forked worker would do with the parent's runtime
        ledger.accept(100)
        ledger.settle(1)
        os._exit(0)
    assert os.waitpid(child, 0)[1] == 0
    assert collect_lost(spill) == 0  # the parent is alive: its ledger is not taken
    ledger._release()  # as if this process died: the file stays, its lock goes with the descriptor
    assert collect_lost(spill) == 3
