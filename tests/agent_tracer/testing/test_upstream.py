"""FakeUpstream driven by the official OpenAI and Anthropic SDKs over real loopback HTTP."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from agent_tracer.testing import FakeUpstream
from agent_tracer.testing.upstream import SCENARIO_HEADER, example_arguments

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "verbose": {"type": "boolean"},
    },
    "required": ["city", "days", "unit"],
}
TIME_SCHEMA = {
    "type": "object",
    "properties": {"timezone": {"type": "string"}, "offset": {"type": "number"}},
    "required": ["timezone", "offset"],
}
WEATHER_ARGS = {"city": "x", "days": 1, "unit": "celsius"}
TIME_ARGS = {"timezone": "x", "offset": 1.5}

CHAT_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}},
    {"type": "function", "function": {"name": "get_time", "parameters": TIME_SCHEMA}},
]
RESPONSES_TOOLS: list[Any] = [
    {"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA, "strict": False},
    {"type": "function", "name": "get_time", "parameters": TIME_SCHEMA, "strict": False},
]
ANTHROPIC_TOOLS: list[Any] = [
    {"name": "get_weather", "input_schema": WEATHER_SCHEMA},
    {"name": "get_time", "input_schema": TIME_SCHEMA},
]
USER = [{"role": "user", "content": "what is the weather"}]
ECHO = "Echo: what is the weather"


def output_tokens(text: str, *arguments: dict[str, Any]) -> int:
    """The fake upstream's count: answer words, plus len(arguments JSON) // 4 + 1 per call."""
    return len(text.split()) + sum(len(json.dumps(a, separators=(",", ":"))) // 4 + 1 for a in arguments)


def scenario(name: str) -> dict[str, str]:
    return {SCENARIO_HEADER: name}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def oai(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(upstream: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=upstream.anthropic_base_url, api_key="sk-test", max_retries=0) as client:
        yield client


# --- Chat Completions ---------------------------------------------------------------------------


def test_chat_text_and_request_record(upstream: FakeUpstream, oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "be brief"}, *USER],
    )
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.message.content == ECHO
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (6, 5)
    assert completion.usage.total_tokens == 11

    recorded = upstream.requests[-1]
    assert recorded["method"] == "POST"
    assert recorded["path"] == "/v1/chat/completions"
    assert recorded["headers"]["authorization"] == "Bearer sk-test"
    assert recorded["json"]["model"] == "gpt-4o-mini"


def test_chat_stream_splits_text_and_reports_usage(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 5
    assert "".join(pieces) == ECHO
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_without_include_usage_has_no_usage(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="m", messages=USER, stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_chat_auto_calls_first_tool_with_schema_arguments(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="m", messages=USER, tools=CHAT_TOOLS)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS


def test_auto_answers_text_after_tool_results(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    """So that an agent's tool loop ends: the tool results are echoed instead of another call."""
    chat: list[Any] = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    completion = oai.chat.completions.create(model="m", messages=chat, tools=CHAT_TOOLS)
    assert completion.choices[0].message.content == "Echo: sunny"

    items: list[Any] = [
        *USER,
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "cloudy"},
    ]
    assert oai.responses.create(model="m", input=items, tools=RESPONSES_TOOLS).output_text == "Echo: cloudy"

    messages: list[Any] = [
        *USER,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "rainy"}]},
    ]
    message = claude.messages.create(model="m", max_tokens=64, messages=messages, tools=ANTHROPIC_TOOLS)
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text == "Echo: rainy"


def test_chat_text_scenario_ignores_tools(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="m", messages=USER, tools=CHAT_TOOLS, extra_headers=scenario("text"))
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"


def _reassemble(chunks: list[Any]) -> tuple[str, dict[int, dict[str, str]], list[str]]:
    """Text, calls by index, and the order of delta kinds ("text", "0", "1") as they arrived."""
    text, calls, order = "", {}, []
    for chunk in chunks:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            text += delta.content
            order.append("text")
        for tool_call in delta.tool_calls or []:
            call = calls.setdefault(tool_call.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += tool_call.id or ""
            if tool_call.function:
                call["name"] += tool_call.function.name or ""
                call["arguments"] += tool_call.function.arguments or ""
            order.append(str(tool_call.index))
    return text, calls, order


def test_chat_parallel_tools_stream_interleaves_calls(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="m", messages=USER, tools=CHAT_TOOLS, stream=True, extra_headers=scenario("parallel_tools")
        )
    )
    text, calls, order = _reassemble(chunks)
    assert text == ECHO
    assert [calls[0]["name"], calls[1]["name"]] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == WEATHER_ARGS
    assert json.loads(calls[1]["arguments"]) == TIME_ARGS
    assert calls[0]["id"] != calls[1]["id"]
    # every text delta before the first call delta, then the calls alternate
    first_call = order.index("0")
    assert set(order[:first_call]) == {"text"} and "text" not in order[first_call:]
    assert order[first_call : first_call + 4] == ["0", "1", "0", "1"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_chat_parallel_tools_through_stream_helper(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model="m", messages=USER, tools=CHAT_TOOLS, extra_headers=scenario("parallel_tools")
    ) as stream:
        completion = stream.get_final_completion()
    calls = completion.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [WEATHER_ARGS, TIME_ARGS]


def test_chat_parallel_tools_with_one_tool_calls_it_twice(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="m", messages=USER, tools=CHAT_TOOLS[:1], extra_headers=scenario("parallel_tools")
    )
    calls = completion.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert calls[0].id != calls[1].id


async def test_async_chat_parallel_stream(upstream: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=upstream.openai_base_url, api_key="sk-test", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="m",
            messages=USER,
            tools=CHAT_TOOLS,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=scenario("parallel_tools"),
        )
        chunks = [chunk async for chunk in stream]
        plain = await client.chat.completions.create(model="m", messages=USER)
    _, calls, _ = _reassemble(chunks)
    assert json.loads(calls[1]["arguments"]) == TIME_ARGS
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == output_tokens(ECHO, WEATHER_ARGS, TIME_ARGS)
    assert plain.choices[0].message.content == ECHO


# --- Responses API ------------------------------------------------------------------------------


def test_responses_text_and_tool_call(oai: openai.OpenAI) -> None:
    text = oai.responses.create(model="gpt-4.1", input="hello there", instructions="be brief")
    assert text.id.startswith("resp_")
    assert text.object == "response" and text.status == "completed"
    assert text.output_text == "Echo: hello there"
    assert text.usage is not None and (text.usage.input_tokens, text.usage.output_tokens) == (4, 3)

    call = oai.responses.create(model="gpt-4.1", input=USER, tools=RESPONSES_TOOLS)
    (item,) = call.output
    assert item.type == "function_call"
    assert item.call_id.startswith("call_") and (item.id or "").startswith("fc_")
    assert item.name == "get_weather" and json.loads(item.arguments) == WEATHER_ARGS


def test_responses_raw_stream_events(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model="m", input="a b c", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert types.count("response.output_text.delta") == 4
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert deltas == final.output_text == "Echo: a b c"
    assert final.usage is not None and final.usage.output_tokens == 4


def test_responses_stream_helper_parallel_tools(oai: openai.OpenAI) -> None:
    with oai.responses.stream(
        model="m", input=USER, tools=RESPONSES_TOOLS, extra_headers=scenario("parallel_tools")
    ) as stream:
        kinds = [event.type for event in stream]
        response = stream.get_final_response()
    assert response.output_text == ECHO
    calls = [item for item in response.output if item.type == "function_call"]
    assert [json.loads(c.arguments) for c in calls] == [WEATHER_ARGS, TIME_ARGS]
    argument_deltas = [k for k in kinds if k == "response.function_call_arguments.delta"]
    assert len(argument_deltas) >= 4


# --- Anthropic Messages -------------------------------------------------------------------------


def test_anthropic_text_and_tool_use(upstream: FakeUpstream, claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-test", max_tokens=64, system="be brief", messages=USER)
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text == ECHO
    assert (message.usage.input_tokens, message.usage.output_tokens) == (6, 5)
    assert upstream.requests[-1]["path"] == "/v1/messages"

    tool = claude.messages.create(model="claude-test", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS)
    assert tool.stop_reason == "tool_use"
    (block,) = tool.content
    assert block.type == "tool_use" and block.id.startswith("toolu_")
    assert block.name == "get_weather" and block.input == WEATHER_ARGS


def test_anthropic_stream_parallel_tools(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="m", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS, extra_headers=scenario("parallel_tools")
    ) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    text, first, second = message.content
    assert text.type == "text" and text.text == ECHO
    assert first.type == "tool_use" and first.input == WEATHER_ARGS
    assert second.type == "tool_use" and second.input == TIME_ARGS
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == output_tokens(ECHO, WEATHER_ARGS, TIME_ARGS)
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


def test_anthropic_raw_stream_has_ping_and_split_text(upstream: FakeUpstream, claude: anthropic.Anthropic) -> None:
    events = list(claude.messages.create(model="m", max_tokens=64, messages=USER, stream=True))
    text_deltas = [e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"]
    assert len(text_deltas) == 5 and "".join(text_deltas) == ECHO
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.delta.stop_reason == "end_turn" and delta.usage.output_tokens == 5
    # the SDK drops `ping`, so check it on the wire
    response = httpx2.post(
        upstream.url + "/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": USER, "stream": True},
    )
    assert "event: ping\n" in response.text


async def test_async_anthropic_stream_tool_use(upstream: FakeUpstream) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=upstream.anthropic_base_url, api_key="sk-test", max_retries=0
    ) as client:
        async with client.messages.stream(model="m", max_tokens=64, messages=USER, tools=ANTHROPIC_TOOLS) as stream:
            message = await stream.get_final_message()
    (block,) = message.content
    assert block.type == "tool_use" and block.input == WEATHER_ARGS


# --- failure scenarios --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "openai_error", "anthropic_error"),
    [
        (429, openai.RateLimitError, anthropic.RateLimitError),
        (500, openai.InternalServerError, anthropic.InternalServerError),
        (400, openai.BadRequestError, anthropic.BadRequestError),
    ],
)
def test_error_scenarios_raise_the_sdk_errors(
    oai: openai.OpenAI, claude: anthropic.Anthropic, status: int, openai_error: Any, anthropic_error: Any
) -> None:
    headers = scenario(f"error:{status}")
    with pytest.raises(openai_error) as oai_info:
        oai.chat.completions.create(model="m", messages=USER, stream=True, extra_headers=headers)
    assert oai_info.value.status_code == status
    assert isinstance(oai_info.value.body, dict) and {"message", "type", "code"} <= set(oai_info.value.body)
    with pytest.raises(anthropic_error) as claude_info:
        claude.messages.create(model="m", max_tokens=5, messages=USER, extra_headers=headers)
    assert claude_info.value.body["type"] == "error"  # type: ignore[index]
    if status == 429:
        assert oai_info.value.response.headers["retry-after"] == "0"
        assert claude_info.value.response.headers["retry-after"] == "0"


def test_cut_breaks_streams_and_bodies(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    cut = scenario("cut")
    with pytest.raises(openai.APIConnectionError):
        list(oai.chat.completions.create(model="m", messages=USER, stream=True, extra_headers=cut))
    with pytest.raises(openai.APIConnectionError):
        list(oai.responses.create(model="m", input="hi", stream=True, extra_headers=cut))
    # the anthropic SDK lets the transport error through unwrapped while iterating
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        with claude.messages.stream(model="m", max_tokens=5, messages=USER, extra_headers=cut) as stream:
            stream.get_final_message()
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="m", messages=USER, extra_headers=cut)
    with pytest.raises(anthropic.APIConnectionError):
        claude.messages.create(model="m", max_tokens=5, messages=USER, extra_headers=cut)


def test_stall_times_out_and_stop_does_not_wait_for_it() -> None:
    server = FakeUpstream().start()
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0, timeout=0.2)
    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=USER, extra_headers=scenario("stall:30"))
    assert time.perf_counter() - started < 2
    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 1
    client.close()


def test_slow_stream_spaces_the_events(oai: openai.OpenAI) -> None:
    started = time.perf_counter()
    stream = oai.chat.completions.create(
        model="m", messages=USER, stream=True, extra_headers=scenario("slow_stream:0.03,text")
    )
    next(iter(stream))
    first = time.perf_counter() - started
    rest = list(stream)
    total = time.perf_counter() - started
    assert total - first >= 0.03 * len(rest)  # a pause before every event after the first
    assert first < total - first


def test_bad_json_unknown_path_scenario_and_keep_alive(upstream: FakeUpstream) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=5)

    def call(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())

    status, body = call("POST", "/v1/chat/completions", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body = call("POST", "/v1/messages", b"[1, 2")
    assert status == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    status, body = call("POST", "/v1/embeddings", b"{}")
    assert status == 404 and body["error"]["code"] == "unknown_url"
    status, body = call("POST", "/v1/chat/completions", b"{}", scenario("nonsense"))
    assert status == 400 and "nonsense" in body["error"]["message"]
    status, body = call("GET", "/v1/models")
    assert status == 200 and body["object"] == "list" and body["data"][0]["object"] == "model"
    connection.close()
    assert upstream.requests[-5]["json"] is None  # an unparsable body is recorded as None


def test_models_list_through_the_sdk(oai: openai.OpenAI) -> None:
    assert "gpt-4o-mini" in [model.id for model in oai.models.list()]


def test_example_arguments() -> None:
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "a": {"type": "array", "items": {"type": "string"}},
            "o": {"type": "object"},
            "e": {"type": "integer", "enum": [7, 8]},
            "opt": {"type": ["null", "integer"]},
            "skipped": {"type": "string"},
        },
        "required": ["s", "i", "n", "b", "a", "o", "e", "opt"],
    }
    assert example_arguments(schema) == {"s": "x", "i": 1, "n": 1.5, "b": True, "a": [], "o": {}, "e": 7, "opt": 1}
    assert example_arguments({}) == {}


def test_runs_as_a_module() -> None:
    command = [sys.executable, "-W", "error", "-m", "agent_tracer.testing.upstream", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
            with openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0) as client:
                assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == ECHO
        finally:
            process.terminate()
            process.wait(timeout=5)
        assert process.stderr is not None and process.stderr.read() == ""
