"""The decorator API: runs, nesting, concurrency, tools, outcomes, and the spans other exporters see."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agent_tracer

_user_spans = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def user_provider():
    """The app's own TracerProvider, set before init(): agent-tracer must join it."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(_user_spans))
    yield provider


def ask(upstream, text, aclient=None):
    c = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)
    return c.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])


def test_nested_agents_nest_and_share_one_trace(traced, upstream):
    @agent_tracer.trace_agent(name="inner")
    def inner(task):
        ask(upstream, "inner call")
        return "inner done"

    @agent_tracer.trace_agent(name="outer")
    def outer(task):
        ask(upstream, "outer call")
        return inner("sub task"), agent_tracer.current_trace_id()

    _, trace_id = outer("main task")
    assert agent_tracer.flush()
    detail = traced.get_trace(trace_id)
    assert detail.trace.name == "outer" and detail.trace.task == "main task"
    runs = {run.name: run for run in detail.agent_runs}
    assert runs["inner"].parent_span_id == runs["outer"].id
    assert runs["inner"].output == "inner done"
    by_text = {call.request["messages"][0]["content"]: call for call in detail.calls}
    assert by_text["outer call"].parent_span_id == runs["outer"].id
    assert by_text["inner call"].parent_span_id == runs["inner"].id


def test_concurrent_agents_in_threads_and_tasks_never_mix(traced, upstream):
    @agent_tracer.trace_agent(name="threaded")
    def threaded(tag):
        for i in range(3):
            ask(upstream, f"{tag} {i}")
        return agent_tracer.current_trace_id()

    results: dict[str, str] = {}
    threads = [threading.Thread(target=lambda t=f"t{n}": results.__setitem__(t, threaded(t))) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    aclient = openai.AsyncOpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0)

    @agent_tracer.trace_agent(name="tasked")
    async def tasked(tag):
        for i in range(3):
            await aclient.chat.completions.create(model="m", messages=[{"role": "user", "content": f"{tag} {i}"}])
            await asyncio.sleep(0)
        return agent_tracer.current_trace_id()

    async def many():
        tags = [f"a{n}" for n in range(20)]
        return dict(zip(tags, await asyncio.gather(*(tasked(tag) for tag in tags))))

    results.update(asyncio.run(many()))
    assert agent_tracer.flush()
    assert len(set(results.values())) == 28
    for tag, trace_id in results.items():
        detail = traced.get_trace(trace_id)
        assert sorted(c.request["messages"][0]["content"] for c in detail.calls) == [f"{tag} {i}" for i in range(3)]


def test_tool_errors_and_agent_errors_are_recorded_and_reraised(traced):
    @agent_tracer.trace_tool(name="lookup_order")
    def lookup(order_id: str):
        raise KeyError(order_id)

    @agent_tracer.trace_agent(name="failing")
    def run(order_id):
        pytest.trace_id = agent_tracer.current_trace_id()
        return lookup(order_id)

    with pytest.raises(KeyError):
        run("A-17")
    assert agent_tracer.flush()
    detail = traced.get_trace(pytest.trace_id)
    assert detail.trace.status == "error" and "KeyError" in detail.trace.error
    (tool,) = detail.tools
    assert tool.name == "lookup_order" and tool.arguments == {"order_id": "A-17"}
    assert tool.error == "KeyError: 'A-17'" and tool.result is None


def test_record_outcome_in_the_run_and_from_another_process(traced, db_url):
    @agent_tracer.trace_agent
    def run():
        agent_tracer.record_outcome(outcome="success", rating=4)
        return agent_tracer.current_trace_id()

    trace_id = run()
    assert agent_tracer.flush()
    assert traced.get_trace(trace_id).trace.outcome == "success"
    script = (
        "import agent_tracer, sys; "
        "agent_tracer.record_outcome(sys.argv[1], 'failure', rating=1, comment='wrong answer', db=sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", script, trace_id, db_url], check=True)
    detail = traced.get_trace(trace_id)
    assert (detail.trace.outcome, detail.trace.rating, detail.trace.comment) == ("failure", 1, "wrong answer")
    assert len(detail.feedback) == 2


def test_bad_feedback_is_refused_with_one_line(traced):
    with pytest.raises(agent_tracer.ConfigError, match="rating"):
        agent_tracer.record_outcome("0" * 32, rating=9)
    with pytest.raises(agent_tracer.ConfigError, match="trace id"):
        agent_tracer.record_outcome(outcome="success")  # outside any run


def test_spans_join_the_apps_provider_with_genai_attributes(traced, upstream):
    _user_spans.clear()

    @agent_tracer.trace_agent(name="span-agent")
    def run():
        ask(upstream, "span please")

    run()
    spans = {span.name: span for span in _user_spans.get_finished_spans()}
    chat, agent = spans["chat m"], spans["invoke_agent span-agent"]
    assert chat.parent.span_id == agent.context.span_id
    assert chat.kind == trace.SpanKind.CLIENT
    attrs = chat.attributes
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "m" and attrs["gen_ai.response.model"]
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert "gen_ai.input.messages" not in attrs  # content is opt-in
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes["gen_ai.agent.name"] == "span-agent"


def test_message_content_on_spans_when_opted_in(upstream, db_url, tmp_path):
    agent_tracer.init(db=db_url, spill_path=str(tmp_path / "s.jsonl"), capture_content=True)
    try:
        _user_spans.clear()
        ask(upstream, "visible content")
        (chat,) = [s for s in _user_spans.get_finished_spans() if s.name == "chat m"]
        assert "visible content" in chat.attributes["gen_ai.input.messages"]
        assert "Echo: visible content" in chat.attributes["gen_ai.output.messages"]
    finally:
        agent_tracer.uninstrument()


def test_init_rejects_unknown_settings_and_bad_urls():
    with pytest.raises(agent_tracer.ConfigError, match="unknown init"):
        agent_tracer.init(databse="x")
    with pytest.raises(agent_tracer.ConfigError, match="not a database URL"):
        agent_tracer.init(db="not a url")


def test_without_init_decorators_just_call_through():
    @agent_tracer.trace_agent
    def run(x):
        return x * 2

    assert run(21) == 42
    assert agent_tracer.current_trace_id() is None
    assert agent_tracer.flush() is True
