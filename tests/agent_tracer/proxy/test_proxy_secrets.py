"""The client's API key goes upstream and nowhere else; stopping the proxy writes what it recorded."""

from __future__ import annotations

import signal

import anthropic
import httpx
import openai

from agent_tracer.proxy.process import ProxyProcess
from agent_tracer.store import TraceStore

OPENAI_KEY = "sk-proxy-secret-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-proxy-secret-fedcba9876543210"


def test_keys_forwarded_never_stored_and_sigterm_flushes(upstream, tmp_path):
    process = ProxyProcess(upstream.url, tmp_path / "traces.db")
    try:
        openai.OpenAI(base_url=process.openai_base_url, api_key=OPENAI_KEY, max_retries=0).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "key check"}]
        )
        assert upstream.requests[-1]["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
        anthropic.Anthropic(base_url=process.url, api_key=ANTHROPIC_KEY, max_retries=0).messages.create(
            model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "key check"}]
        )
        headers = upstream.requests[-1]["headers"]  # this SDK sends the key as a bearer token
        assert ANTHROPIC_KEY in (headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer "))
        httpx.post(
            process.url + "/v1/messages",
            headers={"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"},
            json={"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "raw"}]},
        )
        assert upstream.requests[-1]["headers"]["x-api-key"] == ANTHROPIC_KEY
    finally:
        output = process.stop(signal.SIGTERM)  # right away: the shutdown must write both calls
    assert process.stopped_cleanly, output

    with TraceStore(process.db_url) as store:
        calls = store.calls()
        assert sorted(c.api for c in calls) == ["anthropic.messages", "anthropic.messages", "openai.chat"]
        assert {store.get_trace(c.trace_id).trace.source for c in calls} == {"proxy"}
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert OPENAI_KEY.encode() not in data and ANTHROPIC_KEY.encode() not in data, path
    assert OPENAI_KEY not in output and ANTHROPIC_KEY not in output


def test_ctrl_c_to_the_process_group_stops_cleanly_and_writes_everything(upstream, tmp_path):
    """A terminal's Ctrl-C reaches the writer process too: it must leave the ending to the proxy."""
    process = ProxyProcess(upstream.url, tmp_path / "traces.db")
    try:
        openai.OpenAI(base_url=process.openai_base_url, api_key="sk-test", max_retries=0).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "ctrl-c"}]
        )
    finally:
        output = process.stop(signal.SIGINT, group=True)
    assert process.process.returncode == 0, output
    assert "writer process stopped" not in output and "Traceback" not in output, output
    with TraceStore(process.db_url) as store:
        assert [c.api for c in store.calls()] == ["openai.chat"]
