"""PydanticAI's own GenAI spans, stored in process (`agent_tracer.frameworks.pydantic_ai`), on the
real `pydantic-ai-slim`: an agent with two tools on `OpenAIChatModel`, through the official `openai`
SDK to the loopback fake model, recorded by `agent_tracer.init(frameworks="auto")`. What a user
checks: the agent run is a trace named after the agent, both tool calls are tool executions with
arguments and results, each model call is stored once (by the transport, in the agent's trace,
PydanticAI's chat spans counted and left to it), `dataset sft` makes the row our own decorators
make, and a failing processor never breaks the agent."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pydantic_ai")

from framework_loop import ANSWER, QUESTION, clock, same_ids, start, weather  # noqa: E402
from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402

import agent_tracer  # noqa: E402
from agent_tracer.frameworks import otel_spans  # noqa: E402
from agent_tracer.frameworks import pydantic_ai as adapter  # noqa: E402

NAME = "weather-agent"
SYSTEM = "You are a terse assistant with tools."


def make_agent(upstream, traced: bool = False) -> Agent:
    """The agent; `traced`: its tools' bodies are our own `@trace_tool`s (the decorator baseline)."""
    provider = OpenAIProvider(base_url=upstream.openai_base_url, api_key="sk-test")
    agent = Agent(OpenAIChatModel("gpt-test", provider=provider), system_prompt=SYSTEM, name=NAME)
    do_weather = agent_tracer.trace_tool(name="get_weather")(weather) if traced else weather
    do_clock = agent_tracer.trace_tool(name="get_time")(clock) if traced else clock

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        agent_tracer.record_outcome(outcome="success", rating=5)  # attaches to the run it is in
        return do_weather(city)

    @agent.tool_plain
    def get_time(city: str) -> str:
        """The local time in a city."""
        return do_clock(city)

    return agent


def counts_since(before: dict[str, int]) -> dict[str, int]:
    """The processor's counts since `before` (it is one per process, across tests)."""
    return {name: n - before.get(name, 0) for name, n in adapter.current().stats.snapshot().items()}


def test_an_agent_run_is_a_trace_with_its_tools_and_model_calls_once(recording):
    before = adapter.current().stats.snapshot()
    assert make_agent(recording.upstream).run_sync(QUESTION).output == ANSWER
    [trace] = recording.rows("select * from traces")
    assert trace["name"] == NAME and trace["source"] == "pydantic-ai" and trace["status"] == "ok"
    assert trace["task"] == QUESTION
    [run] = recording.rows("select * from agent_runs")
    assert run["name"] == NAME and run["trace_id"] == trace["id"] and run["parent_span_id"] is None
    assert json.loads(run["output"]) == ANSWER
    tools = recording.rows("select * from tool_executions order by started_at")
    assert [(t["name"], json.loads(t["arguments"]), json.loads(t["result"])) for t in tools] == [
        ("get_weather", {"city": "Paris"}, "sunny in Paris"),
        ("get_time", {"city": "Paris"}, "noon in Paris"),
    ]
    assert all(t["trace_id"] == trace["id"] and t["parent_span_id"] == run["id"] for t in tools)
    calls = recording.rows("select * from llm_calls order by started_at")
    assert len(calls) == 3 == len(recording.upstream.requests)  # each model call stored once
    assert all(c["trace_id"] == trace["id"] and c["response"] for c in calls)
    assert [(c["input_tokens"], c["output_tokens"]) for c in calls] == [(40, 7), (50, 7), (60, 9)]
    [feedback] = recording.rows("select trace_id, outcome from feedback")
    assert tuple(feedback) == (trace["id"], "success")  # record_outcome() in a tool: that run's trace
    counts = counts_since(before)
    assert counts["model_spans_left_to_transport"] == 3 and counts["errors"] == 0
    assert counts["runs"] == counts["agent_runs"] == 1 and counts["tool_executions"] == 2
    assert agent_tracer.frameworks.stats()["pydantic_ai"] == adapter.current().stats.snapshot()


def test_inside_trace_agent_the_run_joins_that_trace(recording):
    agent = make_agent(recording.upstream)

    @agent_tracer.trace_agent(name="support-desk")
    def desk(q: str) -> str:
        return agent.run_sync(q).output

    assert desk(QUESTION) == ANSWER
    [trace] = recording.rows("select * from traces")
    assert trace["name"] == "support-desk"
    runs = recording.rows("select name, parent_span_id from agent_runs order by started_at")
    assert [r["name"] for r in runs] == ["support-desk", NAME] and runs[1]["parent_span_id"]
    assert len(recording.rows("select id from llm_calls where trace_id = ?", trace["id"])) == 3


def test_a_failing_processor_never_breaks_the_agent(recording, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("mapper bug")

    before = adapter.current().stats.snapshot()
    monkeypatch.setattr(otel_spans, "span_records", broken)
    assert make_agent(recording.upstream).run_sync(QUESTION).output == ANSWER
    assert counts_since(before)["errors"] == 3  # the agent run and both tools
    assert agent_tracer.stats()["capture_errors"] >= 3
    assert len(recording.rows("select * from llm_calls")) == 3  # the transport's calls are kept


def test_dataset_sft_makes_the_row_our_decorators_make(tmp_path, recording):
    make_agent(recording.upstream).run_sync(QUESTION)
    framework_rows = recording.sft(tmp_path / "framework.jsonl")
    agent_tracer.uninstrument()

    decorated = start(tmp_path, recording.upstream, "decorated")
    try:
        agent = make_agent(decorated.upstream, traced=True)

        @agent_tracer.trace_agent(name=NAME)
        def run(q: str) -> str:
            return agent.run_sync(q).output

        assert run(QUESTION) == ANSWER
        [trace] = decorated.rows("select source from traces")
        assert trace["source"] == "decorator" and len(decorated.rows("select id from agent_runs")) == 1  # adapter off
        decorator_rows = decorated.sft(tmp_path / "decorated.jsonl")
    finally:
        agent_tracer.uninstrument()
    assert len(framework_rows) == 1 and same_ids(framework_rows) == same_ids(decorator_rows)
    roles = [m["role"] for m in framework_rows[0]["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]


def test_uninstrument_gives_pydantic_ai_its_default_back(recording):
    assert Agent._instrument_default is not False
    agent_tracer.uninstrument()
    assert Agent._instrument_default is False


def test_without_the_transport_capture_the_chat_spans_are_the_model_calls(recording):
    """A runtime whose transport capture is off (`init(..., instrument=False)` as the proxy runs it;
    here removed): the model calls come from PydanticAI's chat spans, mapped as over OTLP."""
    from agent_tracer import runtime

    runtime.current().patch.remove()
    before = adapter.current().stats.snapshot()
    assert make_agent(recording.upstream).run_sync(QUESTION).output == ANSWER
    [trace] = recording.rows("select * from traces")
    [run] = recording.rows("select id from agent_runs")
    calls = recording.rows("select * from llm_calls order by started_at")
    assert len(calls) == 3 == len(recording.upstream.requests)
    assert all(c["trace_id"] == trace["id"] and c["parent_span_id"] == run["id"] for c in calls)
    assert [json.loads(c["tool_names"]) for c in calls] == [["get_weather"], ["get_time"], []]
    assert [(c["input_tokens"], c["output_tokens"]) for c in calls] == [(40, 7), (50, 7), (60, 9)]
    counts = counts_since(before)
    assert counts["model_calls_stored"] == 3 and counts["model_spans_left_to_transport"] == 0


def test_a_tool_that_raises_fails_the_tool_and_the_run(recording):
    """PydanticAI ends the run when a tool raises (anything but `ModelRetry`): both spans carry the
    error status, and the stored run, tool execution and trace say so."""
    provider = OpenAIProvider(base_url=recording.upstream.openai_base_url, api_key="sk-test")
    agent = Agent(OpenAIChatModel("gpt-test", provider=provider), system_prompt=SYSTEM, name=NAME)

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        raise ValueError("the barometer is broken")

    with pytest.raises(ValueError, match="barometer"):
        agent.run_sync(QUESTION)
    [trace] = recording.rows("select status, error from traces")
    [run] = recording.rows("select error from agent_runs")
    [tool] = recording.rows("select name, error, result from tool_executions")
    assert trace["status"] == "error" and "the barometer is broken" in trace["error"]
    assert "the barometer is broken" in run["error"]
    assert tool["name"] == "get_weather" and tool["error"] == "ValueError: the barometer is broken"
    assert tool["result"] is None or json.loads(tool["result"]) is None


def test_a_dead_store_spills_the_spans_and_the_import_restores_the_trace(tmp_path, upstream_loop):
    from click.testing import CliRunner

    from agent_tracer.cli import main
    from agent_tracer.store import TraceStore

    (tmp_path / "a-file").write_text("not a folder")
    spill = tmp_path / "spill.jsonl"
    agent_tracer.init(
        db=f"sqlite:///{tmp_path}/a-file/t.db",  # cannot be opened
        spill_path=str(spill),
        writer="thread",
        retry_backoff_s=0.01,
        flush_interval_s=0.02,
        frameworks=["pydantic-ai"],
    )
    try:
        assert make_agent(upstream_loop).run_sync(QUESTION).output == ANSWER
        assert agent_tracer.flush()
        assert agent_tracer.stats()["dropped"] == 0 and agent_tracer.stats()["spilled"] >= 6
    finally:
        agent_tracer.uninstrument()
    good = f"sqlite:///{tmp_path / 'recovered.db'}"
    result = CliRunner().invoke(main, ["traces", "import", str(spill), "--format", "spill", "--db", good])
    assert result.exit_code == 0, result.output
    with TraceStore(good) as store:
        [summary] = store.traces()
        detail = store.get_trace(summary.id)
    assert summary.name == NAME and [run.name for run in detail.agent_runs] == [NAME]
    assert [tool.name for tool in detail.tools] == ["get_weather", "get_time"] and len(detail.calls) == 3
