"""The OpenAI Agents SDK adapter, on the real SDK: `Agent` + `Runner.run` with two function tools,
through the official `openai` SDK to the loopback fake model, recorded by `agent_tracer.init(
frameworks="auto")`. What a user checks: the trace carries the workflow's name and group, the two
tool executions their arguments and results, the model calls (stored once, by the transport) sit
in the same trace with their tokens, and `dataset sft` makes the row our own decorators make."""

from __future__ import annotations

import pytest

agents = pytest.importorskip("agents")

import openai  # noqa: E402
from agents import (  # noqa: E402
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
    gen_trace_id,
    input_guardrail,
    set_trace_processors,
)
from agents.tracing import get_trace_provider  # noqa: E402
from agents.tracing.processors import default_processor  # noqa: E402
from framework_loop import ANSWER, QUESTION, clock, parallel_tools, same_ids, start, weather  # noqa: E402

import agent_tracer  # noqa: E402
from agent_tracer.frameworks import openai_agents  # noqa: E402
from agent_tracer.testing import FakeUpstream, Reply  # noqa: E402


@pytest.fixture(autouse=True)
def only_our_processor(monkeypatch):
    """OpenAI's own processor would upload these traces to api.openai.com: as a user without an
    OpenAI key would, the tests keep only ours (`set_trace_processors`), and restore the list after."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = get_trace_provider()
    before = list(provider._multi_processor._processors)
    openai_agents.instrument()
    set_trace_processors([openai_agents.processor()])
    yield
    set_trace_processors(before)


def model(upstream: FakeUpstream, api: str):
    client = openai.AsyncOpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
    if api == "responses":
        return OpenAIResponsesModel(model="gpt-test", openai_client=client)
    return OpenAIChatCompletionsModel(model="gpt-test", openai_client=client)


def tools(traced: bool = False):
    """The two tools; `traced`: their bodies are our own `@trace_tool`s (the decorator baseline)."""
    do_weather = agent_tracer.trace_tool(name="get_weather")(weather) if traced else weather
    do_clock = agent_tracer.trace_tool(name="get_time")(clock) if traced else clock

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        agent_tracer.record_outcome(outcome="success", rating=5)
        return do_weather(city)

    @function_tool
    def get_time(city: str) -> str:
        """The local time in a city."""
        return do_clock(city)

    return [get_weather, get_time]


def weather_agent(upstream, api="chat_completions", traced=False, **options):
    return Agent(
        name="Weather agent",
        instructions="Answer about the weather.",
        tools=tools(traced),
        model=model(upstream, api),
        **options,
    )


@pytest.fixture(params=["thread", "process"])
def by_writer(request, tmp_path, upstream_loop):
    """A recording with either writer: with "process", what the processor hands over crosses to
    the writer process (pickled), where its rows are made."""
    recording = start(tmp_path, upstream_loop, request.param, frameworks="auto", writer=request.param)
    try:
        yield recording
    finally:
        agent_tracer.uninstrument()


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
async def test_a_run_is_a_trace_with_its_tools_and_model_calls(by_writer, api, caplog):
    recording = by_writer
    sdk_trace_id = gen_trace_id()
    config = RunConfig(
        workflow_name="weather-workflow", group_id="conv-7", trace_id=sdk_trace_id, trace_metadata={"user": "u1"}
    )
    result = await Runner.run(weather_agent(recording.upstream, api), QUESTION, run_config=config)
    assert result.final_output == ANSWER

    trace_id = openai_agents.trace_id_for(sdk_trace_id)
    [trace] = recording.rows("select * from traces")
    assert trace["id"] == trace_id == sdk_trace_id.removeprefix("trace_")
    assert (trace["name"], trace["task"], trace["status"], trace["source"]) == (
        "weather-workflow",
        QUESTION,
        "ok",
        "openai-agents",
    )
    assert trace["tags"] == '["group:conv-7"]' and '"user":"u1"' in trace["meta"]
    assert (trace["outcome"], trace["rating"]) == ("success", 5.0)  # record_outcome() inside a tool

    runs = recording.rows("select * from agent_runs order by started_at")
    assert [(r["name"], r["parent_span_id"] is None) for r in runs] == [
        ("weather-workflow", True),
        ("Weather agent", False),
    ]
    assert runs[0]["output"] == f'"{ANSWER}"'
    agent_span = runs[1]["id"]

    tools_run = recording.rows("select * from tool_executions order by started_at")
    assert [(t["name"], t["arguments"], t["result"], t["error"]) for t in tools_run] == [
        ("get_weather", '{"city":"Paris"}', '"sunny in Paris"', None),
        ("get_time", '{"city":"Paris"}', '"noon in Paris"', None),
    ]
    assert {t["parent_span_id"] for t in tools_run} == {agent_span}

    calls = recording.rows("select * from llm_calls order by started_at")
    assert len(calls) == 3 == len(recording.upstream.requests)  # each model call stored once
    assert {(c["trace_id"], c["parent_span_id"]) for c in calls} == {(trace_id, agent_span)}
    assert [(c["input_tokens"], c["output_tokens"]) for c in calls] == [(40, 7), (50, 7), (60, 9)]
    assert {c["api"] for c in calls} == {"openai.responses" if api == "responses" else "openai.chat"}
    counts = openai_agents.current().stats.snapshot()
    assert counts["model_spans_left_to_transport"] >= 3 and counts["errors"] == 0
    assert "could not go to the writer process" not in caplog.text  # not written here instead


async def test_a_streamed_run_without_a_workflow_name_is_named_after_its_agent(recording):
    result = Runner.run_streamed(weather_agent(recording.upstream, "responses"), QUESTION)
    async for _ in result.stream_events():
        pass
    assert result.final_output == ANSWER
    [trace] = recording.rows("select * from traces")
    assert (trace["name"], trace["task"]) == ("Weather agent", QUESTION)
    calls = recording.rows("select trace_id, streamed from llm_calls")
    assert [tuple(c) for c in calls] == [(trace["id"], 1)] * 3
    assert len(recording.rows("select * from tool_executions")) == 2
    assert agent_tracer.current_trace_id() is None  # nothing of the run stays current


async def test_parallel_tool_calls_are_two_tool_executions_in_the_trace(tmp_path):
    with FakeUpstream(reply=parallel_tools) as upstream:
        recording = start(tmp_path, upstream, "parallel", frameworks="auto")
        try:
            assert (await Runner.run(weather_agent(upstream), QUESTION)).final_output == ANSWER
            [trace] = recording.rows("select id from traces")
            tools_run = recording.rows("select id, name, trace_id from tool_executions")
            assert sorted(t["name"] for t in tools_run) == ["get_time", "get_weather"]
            assert len({t["id"] for t in tools_run}) == 2 and {t["trace_id"] for t in tools_run} == {trace["id"]}
            assert len(recording.rows("select id from llm_calls where trace_id = ?", trace["id"])) == 2
        finally:
            agent_tracer.uninstrument()


def handoff_script(body):
    tools = [t.get("function", t).get("name") for t in body.get("tools") or ()]
    if "transfer_to_weather_agent" in tools:
        return Reply(calls=[("transfer_to_weather_agent", {})])
    return Reply(content=ANSWER)


@input_guardrail
async def polite(context, agent, user_input) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info=None, tripwire_triggered="rude" in str(user_input))


async def test_handoffs_and_guardrails_are_recorded(tmp_path):
    with FakeUpstream(reply=handoff_script) as upstream:
        recording = start(tmp_path, upstream, "handoff", frameworks=["openai-agents"])
        try:
            target = Agent(name="Weather agent", instructions="Answer.", model=model(upstream, "chat_completions"))
            triage = Agent(
                name="Triage",
                instructions="Hand off.",
                handoffs=[target],
                input_guardrails=[polite],
                model=model(upstream, "chat_completions"),
            )
            result = await Runner.run(triage, QUESTION)
            assert result.final_output == ANSWER
            with pytest.raises(InputGuardrailTripwireTriggered):
                await Runner.run(triage, "a rude question")

            ok, tripped = recording.rows("select * from traces order by started_at")
            assert (ok["name"], ok["status"]) == ("Triage", "ok")
            assert tripped["status"] == "error" and "tripwire" in tripped["error"].lower()
            rows = recording.rows("select name, arguments, result from tool_executions where trace_id = ?", ok["id"])
            assert {tuple(r) for r in rows} == {
                ("handoff", '{"from_agent":"Triage","to_agent":"Weather agent"}', "null"),
                ("guardrail", '{"name":"polite"}', '{"triggered":false}'),
            }
            [guard] = recording.rows("select result from tool_executions where trace_id = ?", tripped["id"])
            assert guard["result"] == '{"triggered":true}'
            names = recording.rows("select id, name from agent_runs where trace_id = ? order by started_at", ok["id"])
            assert [r["name"] for r in names] == ["Triage", "Triage", "Weather agent"]
            # each agent's model call hangs under that agent's span, read when the call was made
            calls = recording.rows(
                "select parent_span_id from llm_calls where trace_id = ? order by started_at", ok["id"]
            )
            assert [c["parent_span_id"] for c in calls] == [names[1]["id"], names[2]["id"]]
        finally:
            agent_tracer.uninstrument()


def test_a_long_run_hands_its_tool_executions_over_while_it_runs(recording):
    """A run's rows go to the writer with the run's own row, or every `ROWS_PER_PAYLOAD` spans
    during a long one: they are in the store before the run ends, and none is lost at its end."""
    many = openai_agents.ROWS_PER_PAYLOAD + 6
    with agents.trace("batch-job") as job:
        for i in range(many):
            with agents.function_span(name="step", input=f'{{"i": {i}}}') as step:
                step.span_data.output = f"done {i}"
        agent_tracer.flush(10)
        assert len(recording.rows("select id from tool_executions")) == openai_agents.ROWS_PER_PAYLOAD
    [trace] = recording.rows("select id, name from traces")
    assert (trace["id"], trace["name"]) == (openai_agents.trace_id_for(job.trace_id), "batch-job")
    steps = recording.rows("select arguments, result, parent_span_id from tool_executions order by started_at")
    assert [(s["arguments"], s["result"]) for s in steps] == [(f'{{"i":{i}}}', f'"done {i}"') for i in range(many)]
    [root] = recording.rows("select id from agent_runs where parent_span_id is null")
    assert {s["parent_span_id"] for s in steps} == {root["id"]}


async def test_inside_trace_agent_the_run_joins_that_trace(recording):
    @agent_tracer.trace_agent(name="support-desk")
    async def desk(question: str) -> str:
        return (await Runner.run(weather_agent(recording.upstream), question)).final_output

    assert await desk(QUESTION) == ANSWER
    [trace] = recording.rows("select * from traces")
    assert (trace["name"], trace["source"]) == ("support-desk", "decorator")
    runs = recording.rows("select name, parent_span_id from agent_runs order by started_at")
    assert [r["name"] for r in runs] == ["support-desk", "Weather agent", "Weather agent"]  # workflow, agent
    assert runs[1]["parent_span_id"] is not None
    assert {r["trace_id"] for r in recording.rows("select trace_id from llm_calls")} == {trace["id"]}


async def test_a_failing_adapter_never_breaks_the_run(recording, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(openai_agents, "_SpanRows", broken)
    result = await Runner.run(weather_agent(recording.upstream), QUESTION)
    assert result.final_output == ANSWER
    assert agent_tracer.stats()["capture_errors"] >= 2
    assert openai_agents.current().stats.snapshot()["errors"] >= 2
    assert len(recording.rows("select * from llm_calls")) == 3  # the model calls are still stored
    assert len(recording.rows("select * from traces")) == 1


async def test_dataset_sft_makes_the_row_our_decorators_make(tmp_path, recording):
    await Runner.run(weather_agent(recording.upstream), QUESTION)
    framework_rows = recording.sft(tmp_path / "framework.jsonl")
    agent_tracer.uninstrument()

    decorated = start(tmp_path, recording.upstream, "decorated")
    try:

        @agent_tracer.trace_agent(name="weather-workflow")
        async def run(question: str) -> str:
            return (await Runner.run(weather_agent(decorated.upstream, traced=True), question)).final_output

        await run(QUESTION)
        decorator_rows = decorated.sft(tmp_path / "decorated.jsonl")
        assert [r["name"] for r in decorated.rows("select name from tool_executions order by started_at")] == [
            "get_weather",
            "get_time",
        ]
    finally:
        agent_tracer.uninstrument()
    assert len(framework_rows) == 1 and same_ids(framework_rows) == same_ids(decorator_rows)
    assert [m["role"] for m in framework_rows[0]["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]


def test_instrument_keeps_the_processors_already_there(monkeypatch):
    set_trace_processors([default_processor()])
    monkeypatch.setattr(openai_agents, "_registered", False)
    ours = openai_agents.instrument()
    assert get_trace_provider()._multi_processor._processors == (default_processor(), ours)
    openai_agents.instrument()  # idempotent
    assert len(get_trace_provider()._multi_processor._processors) == 2
