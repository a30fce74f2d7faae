"""Real instrumentations export a two-tool agent loop over OTLP to `agent-tracer collect`; the trace
it stores must be the one our own capture stores for the same loop, and `dataset sft` must make
the same row of it.

Each instrumentation runs on a TracerProvider of its own whose exporter is the real
`OTLPSpanExporter` (protobuf over HTTP); the model is the loopback fake, scripted to call both tools
and then answer. The agent and tool spans come from where the instrumentation's users get them:
OpenInference's own `@tracer.agent` / `@tracer.tool` decorators; for Traceloop and the
OpenTelemetry `openai-v2` instrumentation (which make model-call spans only), `invoke_agent` /
`execute_tool` spans with the GenAI conventions' attributes, as the conventions tell users to.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from otlp_loop import (
    ANSWER,
    QUESTION,
    SYSTEM,
    TOOL_FUNCTIONS,
    CollectProcess,
    agent_loop,
    genai_spans_loop,
    otlp_provider,
    package_cache,
    sft_rows,
    snapshot,
)

import agent_tracer
from agent_tracer.store import TraceStore


def own_capture(client: openai.OpenAI, url: str, folder: Path, name: str, **settings: Any) -> str:
    """The loop under `@trace_agent` / `@trace_tool`, captured by agent-tracer itself: its trace id."""
    tools = {tool: agent_tracer.trace_tool(name=tool)(function) for tool, function in TOOL_FUNCTIONS.items()}
    seen: list[str] = []

    @agent_tracer.trace_agent(name=name)
    def run(question: str) -> str:
        seen.append(agent_tracer.current_trace_id() or "")
        return agent_loop(client, question, lambda tool, arguments: tools[tool](**arguments))

    agent_tracer.init(
        db=url, spill_path=str(folder / "own-spill.jsonl"), writer="thread", flush_interval_s=0.02, **settings
    )
    try:
        run(QUESTION)
        assert agent_tracer.flush()
    finally:
        agent_tracer.uninstrument()
    return seen[0]


def stored(collector: CollectProcess, trace_id: str, calls: int, timeout: float = 10) -> None:
    """Wait until the collector's store has the trace's agent run and `calls` model calls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with TraceStore(collector.db_url) as store:
                detail = store.get_trace(trace_id)
            if detail.agent_runs and len(detail.calls) >= calls:
                return
        except Exception:  # not there yet (or the file not made yet)
            pass
        time.sleep(0.05)
    raise AssertionError(f"trace {trace_id} did not reach the collector's store")


def reference(client: openai.OpenAI, tmp_path: Path, name: str) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'own.db'}"
    return url, own_capture(client, url, tmp_path, name)


def loop_in_child(script: str, *args: str, env: dict[str, str]) -> str:
    """Run one of the loop scripts beside this file in a process of its own (an instrumentation
    that patches for good, a global TracerProvider, packages on a path of their own); the trace id
    it prints last."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parent / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def same_sft_rows(collector: CollectProcess, url: str, tmp_path: Path, name: str) -> None:
    """`dataset sft --name NAME` over both stores yields the same rows."""
    own = sft_rows(url, tmp_path / "own.jsonl", name)
    received = sft_rows(collector.db_url, tmp_path / "received.jsonl", name)
    assert own and received == own


# ------------------------------------------------------------------------------------------------


def test_our_own_spans_over_otlp_store_what_our_capture_stores(client, collector, tmp_path):
    """agent-tracer's own spans (GenAI conventions, content on) sent to `collect`: the same trace,
    agent run, tool executions with arguments and results, messages and tokens as its store."""
    url = f"sqlite:///{tmp_path / 'own.db'}"
    trace_id = own_capture(
        client, url, tmp_path, "own-otlp-agent", otlp_endpoint=collector.traces_url, capture_content=True
    )
    stored(collector, trace_id, calls=2)
    expected = snapshot(url, trace_id)
    assert expected["tools"] == [
        ["get_weather", {"city": "Paris"}, {"city": "Paris", "sky": "sunny"}, None],
        ["get_time", {"city": "Paris"}, {"city": "Paris", "time": "12:00"}, None],
    ]
    assert snapshot(collector.db_url, trace_id) == expected
    same_sft_rows(collector, url, tmp_path, "own-otlp-agent")


def test_openinference_openai_spans(client, collector, tmp_path):
    """OpenInference's OpenAI instrumentation with its own agent and tool decorators."""
    pytest.importorskip("openinference.instrumentation.openai")
    from openinference.instrumentation import TracerProvider as OITracerProvider
    from openinference.instrumentation.openai import OpenAIInstrumentor

    name = "openinference-agent"
    url, own_id = reference(client, tmp_path, name)
    provider = OITracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=collector.traces_url)))
    tracer = provider.get_tracer(__name__)
    tools = {tool: tracer.tool(name=tool)(function) for tool, function in TOOL_FUNCTIONS.items()}
    seen: list[str] = []

    @tracer.agent(name=name)
    def run(question: str) -> str:
        seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))
        return agent_loop(client, question, lambda tool, arguments: tools[tool](**arguments))

    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        run(QUESTION)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    stored(collector, seen[0], calls=2)
    assert snapshot(collector.db_url, seen[0]) == snapshot(url, own_id)
    same_sft_rows(collector, url, tmp_path, name)


def test_traceloop_openai_spans(client, scripted_upstream, collector, tmp_path):
    """Traceloop's (OpenLLMetry's) OpenAI instrumentation, which now writes the current GenAI
    conventions (`gen_ai.input.messages` with parts, `gen_ai.tool.definitions` in the flat form).
    Run in a child process: its `uninstrument()` leaves the openai SDK patched (the capture
    tests' spans nest wrongly after it in the same process)."""
    pytest.importorskip("opentelemetry.instrumentation.openai")
    name = "traceloop-agent"
    url, own_id = reference(client, tmp_path, name)
    trace_id = loop_in_child(
        "traceloop_run.py", scripted_upstream.openai_base_url, collector.traces_url, name,
        env={"TRACELOOP_TRACE_CONTENT": "true"},
    )  # fmt: skip
    stored(collector, trace_id, calls=2)
    assert snapshot(collector.db_url, trace_id) == snapshot(url, own_id)
    same_sft_rows(collector, url, tmp_path, name)


TRACELOOP_SDK = ("traceloop-sdk==0.62.4", "cuid==0.4", "deprecated==1.3.1", "grpcio==1.85.3")
"""The Traceloop SDK and what `Traceloop.init` with only its OpenAI instrumentation imports that this
project does not install. Its own dependency list (every instrumentation it ships) cannot be
resolved together with this project's OpenTelemetry versions, so the test installs these alone
(`--no-deps`) into a folder of its own, with the OpenTelemetry pieces at the installed versions."""


@pytest.fixture(scope="session")
def traceloop_sdk() -> Path:
    """A folder holding the Traceloop SDK, for a child process's PYTHONPATH."""
    from importlib.metadata import version

    instrumentation = version("opentelemetry-instrumentation")
    pins = [
        *TRACELOOP_SDK,
        f"opentelemetry-exporter-otlp-proto-grpc=={version('opentelemetry-sdk')}",
        f"opentelemetry-instrumentation-logging=={instrumentation}",
        f"opentelemetry-instrumentation-threading=={instrumentation}",
    ]
    folder = package_cache("traceloop-sdk", " ".join(pins).encode())
    if not (folder / "traceloop" / "sdk").is_dir():
        partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(partial), *pins],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            pytest.skip(f"the Traceloop SDK could not be installed: {done.stderr.strip()[-300:]}")
        partial.rename(folder)  # whole or not at all: a cut install is not taken for a cache
    return folder


def test_traceloop_sdk_decorators(client, scripted_upstream, collector, tmp_path, traceloop_sdk):
    """The Traceloop SDK's own `@agent` and `@tool` decorators (OpenLLMetry's agent structure): the
    tool spans carry their arguments and results only as `traceloop.entity.input` (`{"args": [],
    "kwargs": {...}}`) and `traceloop.entity.output`, the agent's question as its positional
    argument, the user as an association property. The same trace as our capture, the question as
    the run's task, the user findable by `traces erase --user`."""
    name = "traceloop-sdk-agent"
    url, own_id = reference(client, tmp_path, name)
    trace_id = loop_in_child(
        "traceloop_sdk_run.py", scripted_upstream.openai_base_url, collector.traces_url, name, "user-7",
        env={
            "PYTHONPATH": os.pathsep.join([str(traceloop_sdk), str(Path(__file__).parent), *sys.path]),
            "TRACELOOP_TRACE_CONTENT": "true",
            "TRACELOOP_TELEMETRY": "false",
        },
    )  # fmt: skip
    stored(collector, trace_id, calls=2)
    assert snapshot(collector.db_url, trace_id) == snapshot(url, own_id)
    with TraceStore(collector.db_url) as store:
        detail = store.get_trace(trace_id)
    assert detail.trace.task == QUESTION
    assert detail.trace.meta.get("user.id") == "user-7"
    assert [run.output for run in detail.agent_runs] == [ANSWER]
    same_sft_rows(collector, url, tmp_path, name)


def test_google_adk_spans_over_otlp(scripted_upstream, collector):
    """Google ADK's own spans, exported over OTLP (not through the in-process adapter): its
    `invoke_workflow` root names the trace after the agent and sets its status, as the agent run
    does in process; the tools carry their arguments and results, the Gemini calls their messages
    and tokens, and the conversation id is the trace's session."""
    pytest.importorskip("google.adk")
    name = "weather_agent"
    trace_id = loop_in_child(
        "adk_run.py", scripted_upstream.url, collector.traces_url, name,
        env={"GOOGLE_API_KEY": "AIzaSyTest-not-a-real-key-0123456789"},
    )  # fmt: skip
    stored(collector, trace_id, calls=2)
    with TraceStore(collector.db_url) as store:
        detail = store.get_trace(trace_id)
    assert (detail.trace.name, detail.trace.status) == (name, "ok")
    assert detail.trace.meta.get("session.id")  # ADK's gen_ai.conversation.id
    [run] = detail.agent_runs
    assert run.name == name
    assert [(t.name, t.arguments, t.result) for t in detail.tools] == [
        ("get_weather", {"city": "Paris"}, {"city": "Paris", "sky": "sunny"}),
        ("get_time", {"city": "Paris"}, {"city": "Paris", "time": "12:00"}),
    ]
    assert all(t.trace_id == trace_id for t in detail.tools)  # under ADK's "(merged tools)" span, kept unmapped
    first, last = detail.calls
    assert [m["role"] for m in first.request["messages"]] == ["system", "user"]
    assert QUESTION in json.dumps(first.request) and last.response["message"]["content"] == ANSWER
    assert all(call.input_tokens and call.output_tokens for call in detail.calls)


def test_opentelemetry_openai_v2_spans_and_log_events(client, collector, tmp_path, monkeypatch):
    """The OpenTelemetry contrib `openai-v2` instrumentation (2.3b0) with content capture on: its
    spans carry model, tokens, finish reasons and response ids, the messages come as log events
    (the real `OTLPLogExporter` to `/v1/logs`), in requests of their own and in either order; the
    stored calls have the messages and answers our own capture stores."""
    pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    import wrapt
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.instrumentation import openai_v2
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    # 2.3b0 calls wrap_function_wrapper(module=…), which wrapt 2 renamed to target=.
    if "module" not in inspect.signature(wrapt.wrap_function_wrapper).parameters:
        monkeypatch.setattr(
            openai_v2,
            "wrap_function_wrapper",
            lambda module, name, wrapper: wrapt.wrap_function_wrapper(module, name, wrapper),
        )
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    name = "openai-v2-agent"
    url, own_id = reference(client, tmp_path, name)
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=collector.logs_url)))
    try:
        with otlp_provider(collector.traces_url) as provider:
            instrumentor = openai_v2.OpenAIInstrumentor()
            instrumentor.instrument(tracer_provider=provider, logger_provider=logger_provider)
            try:
                trace_id = genai_spans_loop(provider.get_tracer(__name__), client, name)
            finally:
                instrumentor.uninstrument()
    finally:
        logger_provider.shutdown()  # exports what the processor holds
    stored(collector, trace_id, calls=2)
    parts = ("messages", "answer", "tokens")
    expected = snapshot(url, own_id, parts=parts)
    assert len(expected["calls"][1]["messages"]) == 5  # system, user, the tool calls, two results
    received = _settled(lambda: snapshot(collector.db_url, trace_id, parts=parts), expected)
    assert received == expected
    with TraceStore(collector.db_url) as store:
        calls = store.get_trace(trace_id).calls
    assert [call.finish_reasons for call in calls] == [["tool_calls"], ["stop"]]
    assert all(call.response_id and call.provider == "openai" for call in calls)


def _settled(read: Callable[[], Any], expected: Any, timeout: float = 10) -> Any:
    """What `read` gives once it equals `expected`, or at the timeout (log events may land after
    their spans, each in a request of its own)."""
    deadline = time.monotonic() + timeout
    while (got := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def test_pydantic_ai_native_genai_spans(scripted_upstream, collector, tmp_path):
    """PydanticAI emits GenAI spans itself (invoke_agent, chat, execute_tool): the same PydanticAI
    agent captured by agent-tracer (transport capture under `@trace_agent` / `@trace_tool`) and
    exported over OTLP store the same trace."""
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    name = "pydantic-ai-agent"

    def make_agent(wrap_tool: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Agent:
        provider = OpenAIProvider(base_url=scripted_upstream.openai_base_url, api_key="sk-test")
        agent = Agent(OpenAIChatModel("gpt-test", provider=provider), system_prompt=SYSTEM, name=name)
        for function in TOOL_FUNCTIONS.values():
            agent.tool_plain(wrap_tool(function))
        return agent

    url = f"sqlite:///{tmp_path / 'own.db'}"
    own = make_agent(lambda function: agent_tracer.trace_tool(name=function.__name__)(function))
    seen: list[str] = []

    @agent_tracer.trace_agent(name=name)
    def run(question: str) -> str:
        seen.append(agent_tracer.current_trace_id() or "")
        return own.run_sync(question).output

    agent_tracer.init(db=url, spill_path=str(tmp_path / "s.jsonl"), writer="thread", flush_interval_s=0.02)
    try:
        assert run(QUESTION) == ANSWER
        assert agent_tracer.flush()
    finally:
        agent_tracer.uninstrument()

    with otlp_provider(collector.traces_url) as provider:
        traced = make_agent(lambda function: function)
        traced.instrument = InstrumentationSettings(tracer_provider=provider, include_content=True)
        result = traced.run_sync(QUESTION)
        assert result.output == ANSWER
    deadline = time.monotonic() + 10
    while not (runs := _named_traces(collector.db_url, name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    (trace_id,) = runs
    stored(collector, trace_id, calls=2)
    received, expected = snapshot(collector.db_url, trace_id), snapshot(url, seen[0])
    # What the span's tool definitions leave out of the request body: "strict", an empty description.
    assert _loose_tools(received) == _loose_tools(expected)
    assert received["calls"][0]["tools"][0]["function"]["name"] == "get_weather"


def _named_traces(url: str, name: str) -> list[str]:
    try:
        with TraceStore(url) as store:
            return [t.id for t in store.traces(name=name)]
    except Exception:  # the store not made yet
        return []


def _loose_tools(snap: dict[str, Any]) -> dict[str, Any]:
    # PydanticAI runs the tool calls of one answer concurrently: which starts first is the event
    # loop's choice (under load it varies), so their executions are compared in name order.
    snap["tools"] = sorted(snap["tools"], key=lambda tool: tool[0])
    for call in snap["calls"]:
        for tool in call["tools"]:
            function = tool["function"]
            function.pop("strict", None)
            if not function.get("description"):
                function.pop("description", None)
    return snap


def test_a_pydantic_ai_tool_error_over_otlp_says_what_failed(scripted_upstream, collector):
    """PydanticAI's failing tool span has an error status without a description, and the exception
    as an event: over OTLP too, the stored tool execution says what it raised, not just "error"."""
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(base_url=scripted_upstream.openai_base_url, api_key="sk-test")
    agent = Agent(OpenAIChatModel("gpt-test", provider=provider), system_prompt=SYSTEM, name="broken-tools")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        raise ValueError("the barometer is broken")

    with otlp_provider(collector.traces_url) as tracer_provider:
        agent.instrument = InstrumentationSettings(tracer_provider=tracer_provider, include_content=True)
        with pytest.raises(ValueError, match="barometer"):
            agent.run_sync(QUESTION)
    deadline = time.monotonic() + 10
    while not (tools := _tool_errors(collector.db_url)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tools == [("get_weather", "ValueError: the barometer is broken")]


def _tool_errors(url: str) -> list[tuple[str, str | None]]:
    try:
        with TraceStore(url) as store:
            [trace] = store.traces(name="broken-tools")
            return [(tool.name, tool.error) for tool in store.get_trace(trace.id).tools]
    except Exception:  # the store or the trace not made yet
        return []
