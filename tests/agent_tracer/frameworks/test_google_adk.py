"""Google ADK's own GenAI spans, stored in process (`agent_tracer.frameworks.google_adk`), on the
real `google-adk`: an `LlmAgent` with two tools on `Gemini`, through the real google-genai client
to the loopback fake model's `generateContent` (scripted to call both tools, then answer),
recorded by `agent_tracer.init(frameworks="auto")`. The transport capture does not decode Gemini,
so each model call comes from ADK's `generate_content` span (it is stored, not left to the
transport). What a user checks: the agent run is a trace named after the agent, both tool calls
are tool executions with arguments and results, the model calls have their messages and token
counts, `dataset sft` makes a row of the whole conversation, no API key is stored, and
`uninstrument()` gives ADK its tracer back."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

pytest.importorskip("google.adk")

from framework_loop import ANSWER, QUESTION, clock, weather  # noqa: E402
from google.adk.agents import LlmAgent  # noqa: E402
from google.adk.models import Gemini  # noqa: E402
from google.adk.runners import InMemoryRunner  # noqa: E402
from google.genai import types  # noqa: E402

import agent_tracer  # noqa: E402
from agent_tracer.frameworks import google_adk as adapter  # noqa: E402

NAME = "weather_agent"
SYSTEM = "You are a terse assistant with tools."
API_KEY = "AIzaSyTest-not-a-real-key-0123456789"


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", API_KEY)


def get_weather(city: str) -> str:
    """The weather in a city."""
    agent_tracer.record_outcome(outcome="success", rating=5)  # attaches to the run it is in
    return weather(city)


def get_time(city: str) -> str:
    """The local time in a city."""
    return clock(city)


def run_agent(upstream, question: str = QUESTION) -> str:
    """One run of the two-tool agent on Gemini at the fake model; its final text."""
    agent = LlmAgent(
        name=NAME,
        model=Gemini(model="gemini-2.0-flash", base_url=upstream.url),
        instruction=SYSTEM,
        tools=[get_weather, get_time],
    )

    async def run() -> str:
        runner = InMemoryRunner(agent=agent, app_name="weather-app")
        session = await runner.session_service.create_session(app_name="weather-app", user_id="user")
        message = types.Content(role="user", parts=[types.Part(text=question)])
        final = ""
        async for event in runner.run_async(user_id="user", session_id=session.id, new_message=message):
            if event.is_final_response() and event.content and event.content.parts:
                final = "".join(part.text or "" for part in event.content.parts)
        return final

    return asyncio.run(run())


def counts_since(before: dict[str, int]) -> dict[str, int]:
    """The processor's counts since `before` (it is one per process, across tests)."""
    return {name: n - before.get(name, 0) for name, n in adapter.current().stats.snapshot().items()}


def test_an_agent_run_is_a_trace_with_its_tools_and_model_calls(recording, tmp_path):
    before = adapter.current().stats.snapshot()
    assert run_agent(recording.upstream) == ANSWER
    [trace] = recording.rows("select * from traces")
    assert trace["name"] == NAME and trace["source"] == "google-adk" and trace["status"] == "ok"
    [run] = recording.rows("select * from agent_runs")
    assert run["name"] == NAME and run["trace_id"] == trace["id"] and run["parent_span_id"] is None
    tools = recording.rows("select * from tool_executions order by started_at")
    assert [(t["name"], json.loads(t["arguments"]), json.loads(t["result"])) for t in tools] == [
        ("get_weather", {"city": "Paris"}, {"result": "sunny in Paris"}),
        ("get_time", {"city": "Paris"}, {"result": "noon in Paris"}),
    ]
    assert all(t["trace_id"] == trace["id"] and t["parent_span_id"] == run["id"] for t in tools)
    calls = recording.rows("select * from llm_calls order by started_at")
    assert len(calls) == 3 == len(recording.upstream.requests)  # each model call stored once
    assert all(c["trace_id"] == trace["id"] and c["parent_span_id"] == run["id"] for c in calls)
    assert [(c["request_model"], c["provider"]) for c in calls] == [("gemini-2.0-flash", "gcp.gemini")] * 3
    assert [(c["input_tokens"], c["output_tokens"]) for c in calls] == [(40, 7), (50, 7), (60, 9)]
    assert [json.loads(c["tool_names"]) for c in calls] == [["get_weather"], ["get_time"], []]
    first, last = json.loads(calls[0]["request"]), json.loads(calls[-1]["request"])
    assert [m["role"] for m in first["messages"]] == ["system", "user"] and QUESTION in json.dumps(first)
    assert [m["role"] for m in last["messages"]] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert {tool["function"]["name"] for tool in first["tools"]} == {"get_weather", "get_time"}
    assert json.loads(calls[-1]["response"])["message"]["content"] == ANSWER
    counts = counts_since(before)
    assert counts["model_calls_stored"] == 3 and counts["model_spans_left_to_transport"] == 0
    assert counts["runs"] == counts["agent_runs"] == 1 and counts["tool_executions"] == 2
    assert counts["errors"] == 0 and counts["spans_skipped"] == 1  # the invoke_workflow span
    assert agent_tracer.frameworks.stats()["google_adk"] == adapter.current().stats.snapshot()
    assert API_KEY.encode() not in recording.path.read_bytes()
    [feedback] = recording.rows("select trace_id, outcome from feedback")
    assert tuple(feedback) == (trace["id"], "success")  # record_outcome() in a tool: that run's trace

    [row] = recording.sft(tmp_path / "adk.jsonl")
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert row["messages"][-1]["content"] == ANSWER
    assert [t["function"]["name"] for t in row["tools"]] == ["get_weather", "get_time"]


def test_uninstrument_gives_adk_its_tracer_and_the_environment_back(recording):
    from google.adk.telemetry import tracing

    assert os.environ[adapter.CONTENT_VARIABLE] == "SPAN_ONLY"
    pointed, before = adapter._pointed, tracing.tracer._real_tracer
    agent_tracer.uninstrument()
    assert adapter.CONTENT_VARIABLE not in os.environ and not adapter.current().enabled
    if pointed is not None:  # no SDK provider of the app's: ADK's tracer was pointed at ours, and is no more
        assert tracing.tracer._real_tracer is None
    else:  # an earlier test set a global SDK provider: our processor was added to it, ADK's tracer left as is
        assert tracing.tracer._real_tracer is before
