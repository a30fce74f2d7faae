"""The LangChain / LangGraph adapter, on the real packages: LangGraph's prebuilt ReAct agent with
`ChatOpenAI` bound to two tools, through the official `openai` SDK to the loopback fake model,
recorded by `agent_tracer.init(frameworks="auto")` (the handler set globally) or by the handler in
`config`. What a user checks: the graph's run is a trace with its name, tags and task, the two
tool runs are tool executions with arguments and results, the model calls (stored once, by the
transport) sit in the same trace with their tokens, and `dataset sft` makes the row our own
decorators make."""

from __future__ import annotations

import asyncio
import uuid

import pytest

pytest.importorskip("langgraph")
pytest.importorskip("langchain_openai")

from framework_loop import ANSWER, QUESTION, clock, parallel_tools, same_ids, start, weather  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from langgraph.prebuilt import ToolNode  # noqa: E402

import agent_tracer  # noqa: E402
from agent_tracer.frameworks import langchain as adapter  # noqa: E402


def tools(traced: bool = False, failing: bool = False):
    """The two tools; `traced`: their bodies are our own `@trace_tool`s (the decorator baseline)."""
    do_weather = agent_tracer.trace_tool(name="get_weather")(weather) if traced else weather
    do_clock = agent_tracer.trace_tool(name="get_time")(clock) if traced else clock

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        agent_tracer.record_outcome(outcome="success", rating=5)
        return do_weather(city)

    @tool
    def get_time(city: str) -> str:
        """The local time in a city."""
        if failing:
            raise ValueError("the clock is broken")
        return do_clock(city)

    return [get_weather, get_time]


def graph(upstream, traced: bool = False, failing: bool = False):
    import warnings

    from langgraph.prebuilt import create_react_agent

    model = ChatOpenAI(model="gpt-test", base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
    node = ToolNode(tools(traced, failing), handle_tool_errors=True)
    with warnings.catch_warnings():  # LangGraph 1.x points at langchain.agents.create_agent; this one is still served
        warnings.simplefilter("ignore")
        return create_react_agent(model, node, prompt="Answer about the weather.", name="weather-graph")


def question():
    return {"messages": [("user", QUESTION)]}


def test_a_graph_run_is_a_trace_with_its_tools_and_model_calls(recording):
    run_id = uuid.uuid4()
    out = graph(recording.upstream).invoke(question(), config={"run_id": run_id, "tags": ["beta"]})
    assert out["messages"][-1].content == ANSWER

    [trace] = recording.rows("select * from traces")
    assert trace["id"] == run_id.hex  # the root run's id is the trace id
    assert (trace["name"], trace["task"], trace["status"], trace["source"]) == (
        "weather-graph",
        QUESTION,
        "ok",
        "langchain",
    )
    assert trace["tags"] == '["beta"]'
    assert (trace["outcome"], trace["rating"]) == ("success", 5.0)  # record_outcome() inside a tool
    [run] = recording.rows("select * from agent_runs")
    assert run["parent_span_id"] is None and run["output"] == f'"{ANSWER}"'

    tools_run = recording.rows("select * from tool_executions order by started_at")
    assert [(t["name"], t["arguments"], t["result"], t["error"]) for t in tools_run] == [
        ("get_weather", '{"city":"Paris"}', '"sunny in Paris"', None),
        ("get_time", '{"city":"Paris"}', '"noon in Paris"', None),
    ]
    assert {t["parent_span_id"] for t in tools_run} == {run["id"]}

    calls = recording.rows("select * from llm_calls order by started_at")
    assert len(calls) == 3 == len(recording.upstream.requests)  # each model call stored once
    assert {(c["trace_id"], c["parent_span_id"]) for c in calls} == {(trace["id"], run["id"])}
    assert [(c["input_tokens"], c["output_tokens"]) for c in calls] == [(40, 7), (50, 7), (60, 9)]
    counts = adapter.current().stats.snapshot()
    assert counts["model_spans_left_to_transport"] == 3 and counts["errors"] == 0


def test_async_runs_in_one_task_are_separate_traces_and_leave_nothing_current(recording):
    agent = graph(recording.upstream)

    async def two_runs():
        first = await agent.ainvoke(question())
        between = agent_tracer.current_trace_id()
        second = await agent.ainvoke(question())
        return first, between, second

    first, between, second = asyncio.run(two_runs())
    assert first["messages"][-1].content == second["messages"][-1].content == ANSWER
    assert between is None
    traces = recording.rows("select id from traces")
    assert len(traces) == 2
    for trace in traces:
        assert len(recording.rows("select id from llm_calls where trace_id = ?", trace["id"])) == 3
        assert len(recording.rows("select id from tool_executions where trace_id = ?", trace["id"])) == 2


def test_parallel_tool_calls_are_two_tool_executions_in_the_trace(tmp_path):
    from agent_tracer.testing import FakeUpstream

    with FakeUpstream(reply=parallel_tools) as upstream:
        recording = start(tmp_path, upstream, "parallel", frameworks="auto")
        try:
            assert graph(upstream).invoke(question())["messages"][-1].content == ANSWER
            [trace] = recording.rows("select id from traces")
            tools_run = recording.rows("select id, name, trace_id, result from tool_executions")
            assert sorted(t["name"] for t in tools_run) == ["get_time", "get_weather"]
            assert len({t["id"] for t in tools_run}) == 2 and {t["trace_id"] for t in tools_run} == {trace["id"]}
            assert {c["trace_id"] for c in recording.rows("select trace_id from llm_calls")} == {trace["id"]}
        finally:
            agent_tracer.uninstrument()


def test_the_handler_in_config_records_without_init_frameworks(tmp_path, upstream_loop):
    recording = start(tmp_path, upstream_loop, "config")
    try:
        handler = adapter.callback_handler()
        assert adapter.callback_handler() is handler  # one object: in config and global, added once
        graph(upstream_loop).invoke(question(), config={"callbacks": [handler]})
        assert len(recording.rows("select * from tool_executions")) == 2
        assert {c["trace_id"] for c in recording.rows("select trace_id from llm_calls")} == {
            t["id"] for t in recording.rows("select id from traces")
        }
    finally:
        agent_tracer.uninstrument()


def test_a_tool_error_is_recorded_and_the_graph_goes_on(recording):
    out = graph(recording.upstream, failing=True).invoke(question())
    assert out["messages"][-1].content == ANSWER
    failed = recording.rows("select result, error from tool_executions where name = 'get_time'")
    assert [tuple(r) for r in failed] == [("null", "ValueError: the clock is broken")]


def test_inside_trace_agent_the_graph_joins_that_trace(recording):
    @agent_tracer.trace_agent(name="support-desk")
    def desk(q: str) -> str:
        return graph(recording.upstream).invoke({"messages": [("user", q)]})["messages"][-1].content

    assert desk(QUESTION) == ANSWER
    [trace] = recording.rows("select * from traces")
    assert trace["name"] == "support-desk"
    runs = recording.rows("select name, parent_span_id from agent_runs order by started_at")
    assert [r["name"] for r in runs] == ["support-desk", "weather-graph"] and runs[1]["parent_span_id"]


def test_a_failing_adapter_never_breaks_the_run(recording, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(adapter, "submit_tool", broken)
    out = graph(recording.upstream).invoke(question())
    assert out["messages"][-1].content == ANSWER
    assert agent_tracer.stats()["capture_errors"] >= 2 and adapter.current().stats.snapshot()["errors"] >= 2
    assert len(recording.rows("select * from llm_calls")) == 3
    assert len(recording.rows("select * from traces")) == 1


def test_dataset_sft_makes_the_row_our_decorators_make(tmp_path, recording):
    graph(recording.upstream).invoke(question())
    framework_rows = recording.sft(tmp_path / "framework.jsonl")
    agent_tracer.uninstrument()

    decorated = start(tmp_path, recording.upstream, "decorated")
    try:
        agent = graph(decorated.upstream, traced=True)

        @agent_tracer.trace_agent(name="weather-graph")
        def run(q: str) -> str:
            return agent.invoke({"messages": [("user", q)]})["messages"][-1].content

        run(QUESTION)
        [trace] = decorated.rows("select source from traces")
        assert trace["source"] == "decorator" and len(decorated.rows("select id from agent_runs")) == 1  # adapter off
        decorator_rows = decorated.sft(tmp_path / "decorated.jsonl")
    finally:
        agent_tracer.uninstrument()
    assert len(framework_rows) == 1 and same_ids(framework_rows) == same_ids(decorator_rows)
    roles = [m["role"] for m in framework_rows[0]["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
