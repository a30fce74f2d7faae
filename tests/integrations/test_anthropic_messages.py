"""The Anthropic Messages codec against bodies and streams shaped by the official `anthropic` SDK.

Request bodies are the bytes the SDK itself sends (captured with a mock transport); responses and
stream events are serialised `anthropic.types` objects, and the SDK's own stream accumulation is the
reference the codec's accumulator is checked against.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import (
    InputJSONDelta,
    Message,
    MessageDeltaUsage,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    SignatureDelta,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolUseBlock,
    Usage,
)
from anthropic.types.raw_message_delta_event import Delta

from agent_tracer.canonical import CanonicalResponse
from agent_tracer.errors import CodecError
from integrations.anthropic_messages import AnthropicMessagesCodec

MODEL = "claude-sonnet-5-5"
CODEC = AnthropicMessagesCodec()

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
    },
}

# --- helpers ---------------------------------------------------------------------------------------


def _message(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [TextBlock(type="text", text="ok")],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": Usage(input_tokens=10, output_tokens=2),
    }
    fields.update(overrides)
    return Message(**fields)


def _client(handler: Any) -> anthropic.Anthropic:
    transport = httpx2.MockTransport(handler)
    return anthropic.Anthropic(api_key="test-key", http_client=httpx2.Client(transport=transport), max_retries=0)


def sdk_request_body(**create_kwargs: Any) -> dict[str, Any]:
    """The JSON body the SDK sends for `messages.create(**create_kwargs)`."""
    sent: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert CODEC.matches(request.url.path)
        sent.append(json.loads(request.content))
        return httpx2.Response(200, json=json.loads(_message().to_json()))

    create_kwargs.setdefault("model", MODEL)
    create_kwargs.setdefault("max_tokens", 1024)
    _client(handler).messages.create(**create_kwargs)
    return sent[0]


def wire(event: Any) -> tuple[str, str]:
    """An SDK stream event (or a raw dict) as the (event name, data) pair an SSE parser yields."""
    if isinstance(event, dict):
        return event["type"], json.dumps(event)
    return event.type, event.to_json(indent=None)


def sse_bytes(events: list[tuple[str, str]]) -> bytes:
    return "".join(f"event: {name}\ndata: {data}\n\n" for name, data in events).encode()


def feed(events: list[tuple[str, str]]) -> tuple[Any, list[bool]]:
    accumulator = CODEC.stream_accumulator()
    return accumulator, [accumulator.add(name, data) for name, data in events]


def start(usage: Usage | None = None) -> RawMessageStartEvent:
    message = _message(content=[], stop_reason=None, usage=usage or Usage(input_tokens=25, output_tokens=1))
    return RawMessageStartEvent(type="message_start", message=message)


def block_start(index: int, block: Any) -> RawContentBlockStartEvent:
    return RawContentBlockStartEvent(type="content_block_start", index=index, content_block=block)


def delta(index: int, value: Any) -> RawContentBlockDeltaEvent:
    return RawContentBlockDeltaEvent(type="content_block_delta", index=index, delta=value)


def block_stop(index: int) -> RawContentBlockStopEvent:
    return RawContentBlockStopEvent(type="content_block_stop", index=index)


def message_delta(stop_reason: str, output_tokens: int) -> RawMessageDeltaEvent:
    return RawMessageDeltaEvent(
        type="message_delta",
        delta=Delta(stop_reason=stop_reason, stop_sequence=None),
        usage=MessageDeltaUsage(output_tokens=output_tokens),
    )


def text_then_two_tools() -> list[tuple[str, str]]:
    """A realistic transcript: thinking, text, then two tool calls with their input in pieces."""
    events = [
        start(),
        {"type": "ping"},
        block_start(0, ThinkingBlock(type="thinking", thinking="", signature="")),
        delta(0, ThinkingDelta(type="thinking_delta", thinking="Two cities, two calls.")),
        delta(0, SignatureDelta(type="signature_delta", signature="c2ln")),
        block_stop(0),
        block_start(1, TextBlock(type="text", text="")),
        delta(1, TextDelta(type="text_delta", text="Let me check ")),
        delta(1, TextDelta(type="text_delta", text="both cities.")),
        block_stop(1),
        block_start(2, ToolUseBlock(type="tool_use", id="toolu_01", name="get_weather", input={})),
        delta(2, InputJSONDelta(type="input_json_delta", partial_json="")),
        delta(2, InputJSONDelta(type="input_json_delta", partial_json='{"city": "Pa')),
        delta(2, InputJSONDelta(type="input_json_delta", partial_json='ris", "unit": "c"}')),
        block_stop(2),
        block_start(3, ToolUseBlock(type="tool_use", id="toolu_02", name="get_weather", input={})),
        delta(3, InputJSONDelta(type="input_json_delta", partial_json='{"city":')),
        delta(3, InputJSONDelta(type="input_json_delta", partial_json='"Zürich"}')),
        block_stop(3),
        message_delta("tool_use", 12),
        message_delta("tool_use", 87),
        RawMessageStopEvent(type="message_stop"),
    ]
    return [wire(event) for event in events]


# --- matching --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/messages", True),
        ("/anthropic/v1/messages/", True),
        ("/messages", True),
        ("/v1/messages?beta=true", True),
        ("/v1/messages/count_tokens", False),
        ("/v1/messages/batches", False),
        ("/v1/messages/batches/msgbatch_01/results", False),
        ("/v1/threads/thread_abc/messages", False),
        ("/v1/chat/completions", False),
        ("/v1/messagesx", False),
    ],
)
def test_matches(path: str, expected: bool) -> None:
    assert CODEC.matches(path) is expected


def test_identity() -> None:
    assert (CODEC.api, CODEC.provider, CODEC.operation) == ("anthropic.messages", "anthropic", "chat")


# --- requests --------------------------------------------------------------------------------------


def test_request_system_blocks_params_and_tools() -> None:
    body = sdk_request_body(
        system=[
            {"type": "text", "text": "You are a weather bot."},
            {"type": "text", "text": "Answer briefly.", "cache_control": {"type": "ephemeral"}},
        ],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL, {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
        stop_sequences=["</answer>"],
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 40},
    )
    request = CODEC.decode_request(body)

    assert request.model == MODEL
    assert request.stream is False
    assert request.messages == [
        {"role": "system", "content": "You are a weather bot.\n\nAnswer briefly."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert request.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": WEATHER_TOOL["input_schema"],
            },
        },
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    ]
    assert request.params == {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 40,
        "max_tokens": 1024,
        "stop": ["</answer>"],
    }


def test_request_string_system_and_stream_flag() -> None:
    body = {
        "model": MODEL,
        "max_tokens": 64,
        "stream": True,
        "system": "Be terse.",
        "messages": [{"role": "user", "content": "hi"}],
    }
    request = CODEC.decode_request(body)
    assert request.stream is True
    assert request.messages[0] == {"role": "system", "content": "Be terse."}
    assert request.tools == []


def test_request_multi_turn_tool_conversation() -> None:
    body = sdk_request_body(
        system="You help with travel.",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Paris and Zürich?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I need two calls.", "signature": "c2ln"},
                    {"type": "text", "text": "Checking both."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Zürich"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Also: do I need an umbrella?"},
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18°C, rain"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_02",
                        "content": [{"type": "text", "text": "Service down."}, {"type": "text", "text": "Retry."}],
                        "is_error": True,
                    },
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Paris: 18°C and rain. Take one."}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_03", "content": "ok"}]},
        ],
    )
    assert CODEC.decode_request(body).messages == [
        {"role": "system", "content": "You help with travel."},
        {"role": "user", "content": "Weather in Paris and Zürich?"},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "toolu_01",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_02",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18°C, rain"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "Service down.\n\nRetry.", "is_error": True},
        {"role": "user", "content": "Also: do I need an umbrella?"},
        {"role": "assistant", "content": "Paris: 18°C and rain. Take one."},
        {"role": "tool", "tool_call_id": "toolu_03", "content": "ok"},
    ]


def test_request_assistant_tool_only_turn_has_no_content() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "noop", "input": {}}]},
        ]
    }
    assistant = CODEC.decode_request(body).messages[1]
    assert assistant == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "noop", "arguments": "{}"}}],
    }


def test_request_images_keep_a_parts_list() -> None:
    body = sdk_request_body(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare these."},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    {"type": "text", "text": "Which is bigger?"},
                ],
            }
        ]
    )
    assert CODEC.decode_request(body).messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare these."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "Which is bigger?"},
            ],
        }
    ]


def test_request_text_blocks_are_joined() -> None:
    body = sdk_request_body(
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "First."}, {"type": "text", "text": "Second."}]}
        ]
    )
    assert CODEC.decode_request(body).messages == [{"role": "user", "content": "First.\n\nSecond."}]


def test_request_documents_and_system_role_messages() -> None:
    body = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Mid-conversation instruction."}]},
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Doc."}},
                    {"type": "text", "text": "Summarise."},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "title": "report.pdf",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                    }
                ],
            },
        ]
    }
    assert CODEC.decode_request(body).messages == [
        {"role": "system", "content": "Mid-conversation instruction."},
        {"role": "user", "content": "Doc.\n\nSummarise."},
        {
            "role": "user",
            "content": [
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "report.pdf"},
                }
            ],
        },
    ]


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        ({"type": "auto", "disable_parallel_tool_use": True}, {"tool_choice": "auto", "parallel_tool_calls": False}),
        (
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "parallel_tool_calls": False},
        ),
        ({"type": "any", "disable_parallel_tool_use": False}, {"tool_choice": "required"}),
    ],
)
def test_request_tool_choice(tool_choice: dict[str, Any], expected: dict[str, Any]) -> None:
    body = sdk_request_body(messages=[{"role": "user", "content": "hi"}], tools=[WEATHER_TOOL], tool_choice=tool_choice)
    params = CODEC.decode_request(body).params
    assert {key: params[key] for key in params if key != "max_tokens"} == expected


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "request body is not a JSON object"),
        ({"model": MODEL}, "no 'messages' list"),
        ({"messages": "hi"}, "no 'messages' list"),
        ({"messages": ["hi"]}, "messages[0] is not a JSON object"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "unknown role 'robot'"),
        ({"messages": [{"role": "user", "content": 3}]}, "neither a string nor a list"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, "content block is not a JSON object"),
        ({"messages": [], "tools": {"name": "x"}}, "'tools' is not a list"),
        ({"messages": [], "tool_choice": "auto"}, "tool_choice is not a JSON object"),
        ({"messages": [], "model": 7}, "model is not a string"),
    ],
)
def test_bad_requests_raise_codec_error(body: Any, fragment: str) -> None:
    with pytest.raises(CodecError, match=re.escape(fragment)) as caught:
        CODEC.decode_request(body)
    assert "\n" not in str(caught.value)


# --- responses -------------------------------------------------------------------------------------


def test_response_text_and_tool_calls_with_cache_tokens() -> None:
    message = _message(
        content=[
            ThinkingBlock(type="thinking", thinking="hmm", signature="c2ln"),
            TextBlock(type="text", text="Checking "),
            TextBlock(type="text", text="Zürich."),
            ToolUseBlock(type="tool_use", id="toolu_01", name="get_weather", input={"city": "Zürich", "unit": "c"}),
        ],
        stop_reason="tool_use",
        usage=Usage(input_tokens=12, cache_creation_input_tokens=2000, cache_read_input_tokens=300, output_tokens=55),
    )
    response = CODEC.decode_response(json.loads(message.to_json()))

    assert response == CanonicalResponse(
        id="msg_01",
        model=MODEL,
        message={
            "role": "assistant",
            "content": "Checking Zürich.",
            "tool_calls": [
                {
                    "id": "toolu_01",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Zürich", "unit": "c"}'},
                }
            ],
        },
        finish_reasons=["tool_calls"],
        input_tokens=2312,
        output_tokens=55,
    )


def test_response_without_cache_tokens_and_without_text() -> None:
    message = _message(
        content=[ToolUseBlock(type="tool_use", id="toolu_9", name="noop", input={})],
        stop_reason="tool_use",
        usage=Usage(input_tokens=7, output_tokens=3, cache_creation_input_tokens=None),
    )
    response = CODEC.decode_response(json.loads(message.to_json()))
    assert response.input_tokens == 7
    assert response.message["content"] is None
    assert response.tool_calls[0]["function"]["arguments"] == "{}"


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "pause_turn"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_response_stop_reasons(stop_reason: str, finish_reason: str) -> None:
    body = json.loads(_message(stop_reason=stop_reason).to_json())
    assert CODEC.decode_response(body).finish_reasons == [finish_reason]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("nope", "response body is not a JSON object"),
        ({"id": "msg_1"}, "no 'content' list"),
        ({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "Overloaded"),
        ({"content": [{"type": "text", "text": None}]}, "'text' is not a string"),
    ],
)
def test_bad_responses_raise_codec_error(body: Any, fragment: str) -> None:
    with pytest.raises(CodecError, match=re.escape(fragment)):
        CODEC.decode_response(body)


# --- streams ---------------------------------------------------------------------------------------


def test_stream_text_then_two_tool_calls() -> None:
    events = text_then_two_tools()
    accumulator, carried = feed(events)

    names = [name for name, _ in events]
    assert [name for name, flag in zip(names, carried) if flag] == [
        "content_block_delta",  # "Let me check "
        "content_block_delta",  # "both cities."
        "content_block_start",  # tool call 1 begins
        "content_block_delta",  # its input (the empty first piece carries nothing)
        "content_block_delta",
        "content_block_start",  # tool call 2 begins
        "content_block_delta",
        "content_block_delta",
    ]
    assert carried.count(True) == 8
    assert accumulator.done is True
    assert accumulator.error is None
    assert accumulator.response() == CanonicalResponse(
        id="msg_01",
        model=MODEL,
        message={
            "role": "assistant",
            "content": "Let me check both cities.",
            "tool_calls": [
                {
                    "id": "toolu_01",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'},
                },
                {
                    "id": "toolu_02",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'},
                },
            ],
        },
        finish_reasons=["tool_calls"],
        input_tokens=25,
        output_tokens=87,
    )


def test_stream_agrees_with_the_sdk_and_with_the_plain_response() -> None:
    """The SDK's own accumulation of the same bytes, decoded as a plain response, gives the same call."""
    events = text_then_two_tools()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=sse_bytes(events), headers={"content-type": "text/event-stream"})

    with _client(handler).messages.stream(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "go"}]
    ) as stream:
        final = stream.get_final_message()

    accumulator, _ = feed(events)
    assert accumulator.response() == CODEC.decode_response(json.loads(final.to_json()))


def test_stream_cut_before_message_stop_is_partial() -> None:
    events = text_then_two_tools()
    cut = next(  # mid second tool input
        i for i, (_, data) in enumerate(events) if json.loads(data).get("delta", {}).get("partial_json") == '"Zürich"}'
    )
    accumulator, _ = feed(events[:cut])

    response = accumulator.response()
    assert accumulator.done is False
    assert response.finish_reasons == []
    assert response.output_tokens == 1  # only message_start's count arrived
    assert response.message["content"] == "Let me check both cities."
    assert [call["function"]["arguments"] for call in response.tool_calls] == [
        '{"city": "Paris", "unit": "c"}',
        '{"city":',  # broken JSON is kept raw
    ]


def test_stream_tool_call_without_input_pieces_gets_empty_object() -> None:
    events = [
        wire(start()),
        wire(block_start(0, ToolUseBlock(type="tool_use", id="toolu_7", name="list_files", input={}))),
        wire(block_stop(0)),
        wire(message_delta("tool_use", 9)),
        wire(RawMessageStopEvent(type="message_stop")),
    ]
    accumulator, _ = feed(events)
    assert accumulator.response().tool_calls == [
        {"id": "toolu_7", "type": "function", "function": {"name": "list_files", "arguments": "{}"}}
    ]


def test_stream_error_event_keeps_partial_response() -> None:
    events = text_then_two_tools()[:9]  # message_start … the text block's deltas
    events.append(
        ("error", json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    )
    accumulator, carried = feed(events)

    assert carried[-1] is False
    assert accumulator.error == "Overloaded"
    assert accumulator.error_type == "overloaded_error"
    assert accumulator.done is False
    response = accumulator.response()
    assert response.message == {"role": "assistant", "content": "Let me check both cities."}
    assert response.finish_reasons == []
    assert response.id == "msg_01"


def test_stream_cache_tokens_and_cumulative_usage() -> None:
    usage = Usage(input_tokens=5, cache_creation_input_tokens=1000, cache_read_input_tokens=4000, output_tokens=1)
    events = [
        wire(start(usage)),
        wire(block_start(0, TextBlock(type="text", text=""))),
        wire(delta(0, TextDelta(type="text_delta", text="Hi"))),
        wire(block_stop(0)),
        wire(message_delta("max_tokens", 3)),
        wire(message_delta("max_tokens", 16)),
        wire(RawMessageStopEvent(type="message_stop")),
    ]
    response = feed(events)[0].response()
    assert (response.input_tokens, response.output_tokens) == (5005, 16)
    assert response.finish_reasons == ["length"]


def test_stream_event_name_may_be_missing() -> None:
    accumulator = CODEC.stream_accumulator()
    for _, data in text_then_two_tools():
        accumulator.add(None, data)
    assert accumulator.response().finish_reasons == ["tool_calls"]


def test_stream_thinking_and_pings_carry_nothing() -> None:
    events = text_then_two_tools()[:6]  # start, ping, thinking block
    accumulator, carried = feed(events)
    assert carried == [False] * 6
    assert accumulator.response().message == {"role": "assistant", "content": None}


@pytest.mark.parametrize(
    "data",
    ["not json", "[1, 2]", '{"type": "content_block_delta", "delta": {"type": "text_delta", "text": "x"}}'],
)
def test_bad_stream_events_raise_codec_error(data: str) -> None:
    with pytest.raises(CodecError):
        CODEC.stream_accumulator().add("content_block_delta", data)
