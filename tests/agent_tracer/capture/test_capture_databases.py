"""A traced agent run lands whole in SQLite and in PostgreSQL, through the same URL setting."""

from __future__ import annotations

import anthropic
import openai

import agent_tracer
from agent_tracer.store import TraceStore


def test_agent_run_is_stored_in_each_database(upstream, store_url, tmp_path):
    agent_tracer.init(db=store_url, spill_path=str(tmp_path / "spill.jsonl"), flush_interval_s=0.02)
    try:

        @agent_tracer.trace_agent(name="db-agent", tags=["db"])
        def run(question):
            oc = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
            for _ in oc.chat.completions.create(
                model="gpt-db", stream=True, messages=[{"role": "user", "content": question}]
            ):
                pass
            ac = anthropic.Anthropic(base_url=upstream.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
            ac.messages.create(model="claude-db", max_tokens=20, messages=[{"role": "user", "content": question}])
            agent_tracer.record_outcome(outcome="success", rating=5)
            return agent_tracer.current_trace_id()

        trace_id = run("store me")
        assert agent_tracer.flush()
        assert agent_tracer.stats()["spilled"] == 0
    finally:
        agent_tracer.uninstrument()
    with TraceStore(store_url) as store:
        detail = store.get_trace(trace_id)
        assert (detail.trace.name, detail.trace.outcome, detail.trace.rating) == ("db-agent", "success", 5)
        assert sorted(c.request_model for c in detail.calls) == ["claude-db", "gpt-db"]
        assert [t.id for t in store.traces(model="claude-db", outcome="success", tags=["db"])] == [trace_id]
