"""API keys never reach the store, the spill file or the log."""

from __future__ import annotations

import logging

import anthropic
import openai

import agent_tracer
from agent_tracer.store import TraceStore

OPENAI_KEY = "sk-proj-SECRETopenaiKEY0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-api03-SECRETanthropicKEY0123456789"
PASTED_KEY = "sk-live-PASTEDintoTHEprompt0123456789"


def test_keys_are_nowhere_in_the_database_files_or_logs(upstream, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="agent_tracer")
    db = tmp_path / "secrets.db"
    agent_tracer.init(db=f"sqlite:///{db}", spill_path=str(tmp_path / "spill.jsonl"))
    try:
        oc = openai.OpenAI(
            base_url=upstream.openai_base_url, api_key=OPENAI_KEY, max_retries=0, default_query={"api-key": OPENAI_KEY}
        )
        oc.chat.completions.create(model="m", messages=[{"role": "user", "content": f"my key is {PASTED_KEY}"}])
        for _chunk in oc.chat.completions.create(
            model="m", stream=True, messages=[{"role": "user", "content": PASTED_KEY}]
        ):
            pass
        ac = anthropic.Anthropic(base_url=upstream.anthropic_base_url, api_key=ANTHROPIC_KEY, max_retries=0)
        ac.messages.create(model="c", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        try:
            oc.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}], extra_headers={"x-fake-scenario": "error:401"}
            )
        except openai.AuthenticationError:
            pass
        assert agent_tracer.flush()
        assert agent_tracer.stats()["written"] == 4
    finally:
        agent_tracer.uninstrument()
    # the upstream did receive the keys: they were forwarded, only not stored
    assert any(OPENAI_KEY in r["headers"].get("authorization", "") for r in upstream.requests)
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    with TraceStore(f"sqlite:///{db}") as store:  # the raw bodies as read (SQLite keeps them compressed)
        stored += "".join(f"{c.raw_request}{c.raw_response}" for c in store.calls()).encode()
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, PASTED_KEY):
        assert secret.encode() not in stored
        assert not [r for r in caplog.records if r.name.startswith("agent_tracer") and secret in r.getMessage()]
    assert b"[REDACTED]" in stored
