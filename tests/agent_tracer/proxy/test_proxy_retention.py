"""`agent-tracer proxy --retention 30d`: the proxy prunes the runs older than that soon after it
starts (and every hour), keeps what it is told to keep, records new calls meanwhile, and counts
what it deleted in /metrics."""

from __future__ import annotations

import time
from datetime import timedelta

import openai
from click.testing import CliRunner

from agent_tracer.cli import main
from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore
from agent_tracer.store.models import utcnow


def old_run(n: int, days_ago: float, **fields):
    start = utcnow() - timedelta(days=days_ago)
    trace = f"{n:032x}"
    call = {
        "id": f"{n:016x}",
        "trace_id": trace,
        "api": "openai.chat",
        "request_model": "gpt-test",
        "request": {"model": "gpt-test", "messages": [{"role": "user", "content": f"old question {n}"}]},
        "started_at": start,
    }
    return [("trace", {"id": trace, "name": "agent", "started_at": start, **fields}), ("llm_call", call)]


def test_the_proxy_prunes_old_runs_and_keeps_recording(upstream, tmp_path, scrape):
    db = tmp_path / "traces.db"
    with TraceStore(f"sqlite:///{db}") as store:
        store.write([r for n in range(1, 41) for r in old_run(n, 45, **({"tags": ["keep"]} if n == 40 else {}))])
        store.write([r for n in range(41, 46) for r in old_run(n, 2)])
    process = ProxyProcess(upstream.url, db, "--retention", "30d", "--retention-keep-tag", "keep")
    try:
        client = openai.OpenAI(base_url=process.openai_base_url, api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "new question"}])
        deadline = time.monotonic() + 30
        while True:
            with TraceStore(f"sqlite:///{db}") as store:
                left = {t.id for t in store.traces()}
            if len(left) <= 7 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        samples = scrape(process.url)
        assert samples("agent_tracer_proxy_pruned_runs_total") == 39
    finally:
        output = process.stop()
    assert process.stopped_cleanly, output
    assert "retention deleted 39 runs that started before" in output
    with TraceStore(f"sqlite:///{db}") as store:
        left = {t.id for t in store.traces()}
        calls = store.calls()
    assert {f"{n:032x}" for n in (40, 41, 42, 43, 44, 45)} <= left and len(left) == 7  # and the new call's run
    assert any("new question" in (c.raw_request or "") for c in calls) and len(calls) == 7


def test_retention_takes_an_age():
    result = CliRunner().invoke(main, ["proxy", "--retention", "2026-01-01"])
    assert (
        result.exit_code == 1 and "--retention takes an age such as 30d, 12w or 6h, not '2026-01-01'" in result.output
    )


def test_a_users_runs_recorded_through_the_proxy_can_be_erased(upstream, tmp_path):
    db = tmp_path / "traces.db"
    process = ProxyProcess(upstream.url, db)
    try:
        client = openai.OpenAI(base_url=process.openai_base_url, api_key="sk-test", max_retries=0)
        for user, session in (("u-7", "s-1"), ("u-7", "s-2"), ("u-8", "s-3")):
            headers = {"X-Agent-User": user, "X-Agent-Session": session}
            client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "hi"}], extra_headers=headers
            )
    finally:
        output = process.stop()
    assert process.stopped_cleanly, output
    assert not any("x-agent-user" in request["headers"] for request in upstream.requests)  # not forwarded
    with TraceStore(f"sqlite:///{db}") as store:
        metas = sorted((t.meta["user.id"], t.meta["session.id"]) for t in store.traces())
    assert metas == [("u-7", "s-1"), ("u-7", "s-2"), ("u-8", "s-3")]
    result = CliRunner().invoke(main, ["traces", "erase", "--user", "u-7", "--db", f"sqlite:///{db}"])
    assert result.exit_code == 0 and "deleted 2 runs of user u-7, with 2 model calls" in result.output
    with TraceStore(f"sqlite:///{db}") as store:
        assert [t.meta["user.id"] for t in store.traces()] == ["u-8"]
