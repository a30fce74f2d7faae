"""OpenAIChatCodec: Chat Completions requests, responses and streams → canonical call."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import (
    Choice as ChunkChoice,
)
from openai.types.chat.chat_completion_chunk import (
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.chat.chat_completion_message import ChatCompletionMessage, FunctionCall
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
)
from openai.types.completion_usage import CompletionUsage

from agent_tracer.errors import CodecError
from integrations.openai_chat import OpenAIChatCodec
from integrations.sse import SSEDecoder

codec = OpenAIChatCodec()

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
        "strict": True,
    },
}


# --- helpers ---------------------------------------------------------------------------------


def sse_bytes(chunks: list[ChatCompletionChunk | dict[str, Any]], done: bool = True) -> bytes:
    """A Chat Completions SSE body, as the API sends it."""
    out = []
    for chunk in chunks:
        data = (
            chunk.model_dump_json(exclude_unset=True) if isinstance(chunk, ChatCompletionChunk) else json.dumps(chunk)
        )
        out.append(b"data: " + data.encode() + b"\n\n")
    if done:
        out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def random_chunks(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, at = [], 0
    while at < len(data):
        size = rng.randint(1, 64)
        chunks.append(data[at : at + size])
        at += size
    return chunks


def accumulate(body: bytes, seed: int = 7) -> tuple[Any, list[bool]]:
    """Feed `body` through SSEDecoder in random-sized pieces and into a fresh accumulator."""
    rng = random.Random(seed)
    decoder, accumulator, outputs = SSEDecoder(), codec.stream_accumulator(), []
    for piece in random_chunks(body, rng):
        for event, data in decoder.feed(piece):
            outputs.append(accumulator.add(event, data))
    for event, data in decoder.flush():
        outputs.append(accumulator.add(event, data))
    return accumulator.response(), outputs


def chunk(
    delta: ChoiceDelta | None = None, finish_reason: str | None = None, index: int = 0, **extra: Any
) -> ChatCompletionChunk:
    choices = [] if delta is None else [ChunkChoice(index=index, delta=delta, finish_reason=finish_reason)]
    return ChatCompletionChunk(
        id="chatcmpl-abc123",
        object="chat.completion.chunk",
        created=1_730_000_000,
        model="gpt-4o-mini-2024-07-18",
        system_fingerprint="fp_0ba0d124f1",
        choices=choices,
        **extra,
    )


def call_delta(index: int, call_id: str | None = None, name: str | None = None, arguments: str = "") -> ChoiceDelta:
    function = ChoiceDeltaToolCallFunction(arguments=arguments, **({"name": name} if name else {}))
    call = ChoiceDeltaToolCall(
        index=index, function=function, **({"id": call_id, "type": "function"} if call_id else {})
    )
    return ChoiceDelta(tool_calls=[call])


def sdk_snapshot(body: bytes) -> dict[str, Any]:
    """The SDK's own accumulation of the same stream, as a plain dict."""
    state = ChatCompletionStreamState()
    decoder = SSEDecoder()
    for _, data in decoder.feed(body) + decoder.flush():
        if data != "[DONE]":
            state.handle_chunk(ChatCompletionChunk.model_validate_json(data))
    return state.current_completion_snapshot.model_dump(mode="json")


# --- matches ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/chat/completions",
        "/openai/deployments/gpt-4o/chat/completions",
        "/api/proxy/v1/chat/completions/",
        "/v1/chat/completions?api-version=2024-10-21",
    ],
)
def test_matches(path: str) -> None:
    assert codec.matches(path)


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/responses", "/v1/chat/completions/abc", "/v1/messages"])
def test_does_not_match(path: str) -> None:
    assert not codec.matches(path)


def test_names() -> None:
    assert (codec.api, codec.provider, codec.operation) == ("openai.chat", "openai", "chat")


# --- requests --------------------------------------------------------------------------------


def test_decode_request_keeps_chat_format() -> None:
    image_parts = [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
    ]
    messages = [
        {"role": "developer", "content": "You are terse."},
        {"role": "user", "content": image_parts},
        {"role": "assistant", "content": "A cat. Want the weather too?"},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "4C rain"}]},
    ]
    body = {
        "model": "gpt-4o-mini",
        "messages": messages,
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "temperature": 0.2,
        "top_p": None,
        "max_completion_tokens": 512,
        "stop": ["\n\n"],
        "seed": 42,
        "n": 1,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u-1",
        "response_format": {"type": "text"},
    }
    request = codec.decode_request(body)
    assert request.model == "gpt-4o-mini"
    assert request.messages == messages
    assert request.messages[1]["content"] is image_parts
    assert request.tools == [WEATHER_TOOL]
    assert request.params == {
        "temperature": 0.2,
        "max_tokens": 512,
        "stop": ["\n\n"],
        "seed": 42,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.0,
        "n": 1,
    }
    assert request.stream is True
    assert json.loads(json.dumps(request.to_dict())) == request.to_dict()


def test_decode_request_does_not_modify_the_body() -> None:
    body = {
        "model": "gpt-3.5-turbo-0613",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
            {"role": "function", "name": "f", "content": "ok"},
        ],
    }
    before = json.dumps(body)
    codec.decode_request(body)
    assert json.dumps(body) == before


def test_decode_request_max_tokens_and_defaults() -> None:
    request = codec.decode_request(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
    )
    assert request.params == {"max_tokens": 10}
    assert request.tools == []
    assert request.stream is False


def test_decode_request_legacy_functions() -> None:
    function = {"name": "get_weather", "description": "Weather.", "parameters": {"type": "object", "properties": {}}}
    body = {
        "model": "gpt-3.5-turbo-0613",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {"role": "function", "name": "get_weather", "content": "18C"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            },
            {"role": "function", "name": "get_weather", "content": "25C"},
        ],
        "functions": [function],
        "function_call": {"name": "get_weather"},
    }
    request = codec.decode_request(body)
    assert request.tools == [{"type": "function", "function": function}]
    assert request.params == {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    first_call, second_call = request.messages[1], request.messages[3]
    assert "function_call" not in first_call
    assert first_call["tool_calls"] == [
        {
            "id": first_call["tool_calls"][0]["id"],
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert request.messages[2] == {
        "role": "tool",
        "name": "get_weather",
        "content": "18C",
        "tool_call_id": first_call["tool_calls"][0]["id"],
    }
    assert (
        request.messages[4]["tool_call_id"] == second_call["tool_calls"][0]["id"] != first_call["tool_calls"][0]["id"]
    )


@pytest.mark.parametrize("choice", ["auto", "none"])
def test_decode_request_legacy_function_call_strings(choice: str) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "functions": [{"name": "f"}], "function_call": choice}
    assert codec.decode_request(body).params == {"tool_choice": choice}


@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-4o"},
        {"model": "gpt-4o", "messages": "hello"},
        {"model": "gpt-4o", "messages": ["hello"]},
        {"model": "gpt-4o", "messages": [{"content": "no role"}]},
        {"model": "gpt-4o", "messages": [], "tools": ["get_weather"]},
        {"model": "gpt-4o", "messages": [], "function_call": {"nom": "f"}},
        ["not", "an", "object"],
    ],
)
def test_decode_request_rejects_bad_bodies(body: Any) -> None:
    with pytest.raises(CodecError) as info:
        codec.decode_request(body)
    assert "\n" not in str(info.value)


# --- responses -------------------------------------------------------------------------------


def completion(*choices: Choice, usage: CompletionUsage | None = None) -> dict[str, Any]:
    return ChatCompletion(
        id="chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        object="chat.completion",
        created=1_741_569_952,
        model="gpt-4o-2024-08-06",
        choices=list(choices),
        usage=usage or CompletionUsage(prompt_tokens=19, completion_tokens=10, total_tokens=29),
        service_tier="default",
    ).model_dump(mode="json")


def test_decode_response_text() -> None:
    body = completion(
        Choice(index=0, finish_reason="stop", message=ChatCompletionMessage(role="assistant", content="Hello there!"))
    )
    response = codec.decode_response(body)
    assert response.id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert response.model == "gpt-4o-2024-08-06"
    assert response.message == {"role": "assistant", "content": "Hello there!"}
    assert response.finish_reasons == ["stop"]
    assert (response.input_tokens, response.output_tokens) == (19, 10)
    assert response.tool_calls == []


def test_decode_response_tool_calls() -> None:
    calls = [
        ChatCompletionMessageFunctionToolCall(
            id="call_a", type="function", function=Function(name="get_weather", arguments='{"city":"Paris"}')
        ),
        ChatCompletionMessageFunctionToolCall(
            id="call_b", type="function", function=Function(name="get_weather", arguments='{"city":"Oslo"}')
        ),
    ]
    message = ChatCompletionMessage(role="assistant", content=None, tool_calls=calls)
    response = codec.decode_response(completion(Choice(index=0, finish_reason="tool_calls", message=message)))
    assert response.message["content"] is None
    assert [call["id"] for call in response.tool_calls] == ["call_a", "call_b"]
    assert response.tool_calls[1]["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert response.finish_reasons == ["tool_calls"]


def test_decode_response_n_choices_keeps_first_message_and_all_finish_reasons() -> None:
    body = completion(
        Choice(index=1, finish_reason="length", message=ChatCompletionMessage(role="assistant", content="Second")),
        Choice(index=0, finish_reason="stop", message=ChatCompletionMessage(role="assistant", content="First")),
        Choice(index=2, finish_reason="content_filter", message=ChatCompletionMessage(role="assistant", content=None)),
    )
    response = codec.decode_response(body)
    assert response.message["content"] == "First"
    assert response.finish_reasons == ["stop", "length", "content_filter"]


def test_decode_response_legacy_function_call() -> None:
    message = ChatCompletionMessage(
        role="assistant", content=None, function_call=FunctionCall(name="get_weather", arguments='{"city":"Paris"}')
    )
    response = codec.decode_response(completion(Choice(index=0, finish_reason="function_call", message=message)))
    assert response.finish_reasons == ["tool_calls"]
    (call,) = response.tool_calls
    assert call["type"] == "function" and call["id"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}


def test_decode_response_refusal() -> None:
    message = ChatCompletionMessage(role="assistant", content=None, refusal="I can't help with that.")
    response = codec.decode_response(completion(Choice(index=0, finish_reason="stop", message=message)))
    assert response.message == {"role": "assistant", "content": None, "refusal": "I can't help with that."}


def test_decode_response_without_usage_or_choices() -> None:
    response = codec.decode_response({"id": "x", "model": "m", "choices": []})
    assert response.message == {"role": "assistant", "content": None}
    assert response.finish_reasons == []
    assert response.input_tokens is None and response.output_tokens is None


@pytest.mark.parametrize(
    "body",
    [{"id": "x"}, {"choices": "nope"}, {"choices": [{"index": 0, "finish_reason": "stop"}]}, {"choices": [1]}, "text"],
)
def test_decode_response_rejects_bad_bodies(body: Any) -> None:
    with pytest.raises(CodecError):
        codec.decode_response(body)


# --- streams ---------------------------------------------------------------------------------

TEXT_STREAM = [
    chunk(ChoiceDelta(role="assistant", content="", refusal=None)),
    chunk(ChoiceDelta(content="Hello")),
    chunk(ChoiceDelta(content=", wörld")),
    chunk(ChoiceDelta(content=" 🌍!")),
    chunk(ChoiceDelta(), finish_reason="stop"),
    chunk(usage=CompletionUsage(prompt_tokens=12, completion_tokens=5, total_tokens=17)),
]


def test_stream_text_with_usage() -> None:
    response, outputs = accumulate(sse_bytes(TEXT_STREAM))
    assert response.id == "chatcmpl-abc123"
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.message == {"role": "assistant", "content": "Hello, wörld 🌍!"}
    assert response.finish_reasons == ["stop"]
    assert (response.input_tokens, response.output_tokens) == (12, 5)
    assert outputs == [False, True, True, True, False, False, False]  # role chunk, 3 pieces, finish, usage, [DONE]


def test_stream_parallel_interleaved_tool_calls() -> None:
    chunks = [
        chunk(ChoiceDelta(role="assistant", content=None)),
        chunk(call_delta(0, "call_paris", "get_weather")),
        chunk(call_delta(0, arguments='{"ci')),
        chunk(call_delta(1, "call_oslo", "get_weather")),
        chunk(call_delta(1, arguments='{"city": "Os')),
        chunk(call_delta(0, arguments='ty": "Paris"}')),
        chunk(call_delta(2, "call_time", "get_time", '{"tz": "CET"}')),
        chunk(call_delta(1, arguments='lo"}')),
        chunk(ChoiceDelta(), finish_reason="tool_calls"),
    ]
    body = sse_bytes(chunks)
    for seed in range(5):
        response, outputs = accumulate(body, seed)
        assert response.message["content"] is None
        assert response.tool_calls == [
            {
                "id": "call_paris",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_oslo",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            },
            {"id": "call_time", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
        ]
        assert response.finish_reasons == ["tool_calls"]
        assert outputs[:2] == [False, True]


def test_stream_content_then_tool_calls() -> None:
    chunks = [
        chunk(ChoiceDelta(role="assistant", content="")),
        chunk(ChoiceDelta(content="Let me check ")),
        chunk(ChoiceDelta(content="both cities.")),
        chunk(call_delta(0, "call_1", "get_weather", "")),
        chunk(call_delta(0, arguments='{"city": "Paris"}')),
        chunk(call_delta(1, "call_2", "get_weather", "")),
        chunk(call_delta(1, arguments='{"city": "Oslo"}')),
        chunk(ChoiceDelta(), finish_reason="tool_calls"),
    ]
    response, _ = accumulate(sse_bytes(chunks))
    assert response.message["content"] == "Let me check both cities."
    assert [call["id"] for call in response.tool_calls] == ["call_1", "call_2"]
    assert [call["function"]["arguments"] for call in response.tool_calls] == ['{"city": "Paris"}', '{"city": "Oslo"}']


def test_stream_cut_midway_returns_partial_response() -> None:
    chunks = [
        chunk(ChoiceDelta(role="assistant", content="Checking")),
        chunk(call_delta(0, "call_1", "get_weather", '{"city": "Par')),
    ]
    body = sse_bytes(chunks, done=False) + b'data: {"id": "chatcmpl-abc123", "choices": [{"ind'
    decoder, accumulator = SSEDecoder(), codec.stream_accumulator()
    for piece in random_chunks(body, random.Random(3)):
        for event, data in decoder.feed(piece):
            accumulator.add(event, data)
    ((event, data),) = decoder.flush()  # the connection dropped inside an event
    with pytest.raises(CodecError):
        accumulator.add(event, data)
    response = accumulator.response()
    assert response.message["content"] == "Checking"
    assert response.tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Par'}}
    ]
    assert response.finish_reasons == []
    assert response.input_tokens is None


def test_stream_partial_response_any_time() -> None:
    accumulator = codec.stream_accumulator()
    assert accumulator.response().message == {"role": "assistant", "content": None}
    accumulator.add(None, TEXT_STREAM[1].model_dump_json())
    assert accumulator.response().message["content"] == "Hello"
    accumulator.add(None, TEXT_STREAM[2].model_dump_json())
    assert accumulator.response().message["content"] == "Hello, wörld"


def test_stream_with_null_fields_everywhere() -> None:
    # model_dump_json() without exclude_unset writes every optional field as null.
    chunks = [
        chunk(ChoiceDelta(role="assistant")),
        chunk(call_delta(0, "call_1", "lookup", "")),
        chunk(call_delta(0, arguments='{"q": 1}')),
        chunk(ChoiceDelta(), finish_reason="tool_calls"),
    ]
    body = b"".join(b"data: " + c.model_dump_json().encode() + b"\n\n" for c in chunks)
    response, _ = accumulate(body)
    assert response.tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}
    ]


def test_stream_n_choices() -> None:
    chunks = [
        chunk(ChoiceDelta(role="assistant", content=""), index=0),
        chunk(ChoiceDelta(role="assistant", content=""), index=1),
        chunk(ChoiceDelta(content="first"), index=0),
        chunk(ChoiceDelta(content="second"), index=1),
        chunk(ChoiceDelta(), finish_reason="length", index=1),
        chunk(ChoiceDelta(), finish_reason="stop", index=0),
    ]
    response, _ = accumulate(sse_bytes(chunks))
    assert response.message["content"] == "first"
    assert response.finish_reasons == ["stop", "length"]


def test_stream_refusal() -> None:
    chunks = [
        chunk(ChoiceDelta(role="assistant", content=None, refusal="")),
        chunk(ChoiceDelta(refusal="I can't ")),
        chunk(ChoiceDelta(refusal="help with that.")),
        chunk(ChoiceDelta(), finish_reason="stop"),
    ]
    response, outputs = accumulate(sse_bytes(chunks))
    assert response.message == {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    assert outputs[:3] == [False, True, True]


def test_stream_legacy_function_call() -> None:
    chunks = [
        {
            "id": "c",
            "model": "gpt-3.5-turbo-0613",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "content": None,
                        "function_call": {"name": "get_weather", "arguments": ""},
                    },
                    "finish_reason": None,
                }
            ],
        },
        {
            "id": "c",
            "model": "gpt-3.5-turbo-0613",
            "choices": [{"index": 0, "delta": {"function_call": {"arguments": '{"city":'}}, "finish_reason": None}],
        },
        {
            "id": "c",
            "model": "gpt-3.5-turbo-0613",
            "choices": [{"index": 0, "delta": {"function_call": {"arguments": ' "Paris"}'}}, "finish_reason": None}],
        },
        {
            "id": "c",
            "model": "gpt-3.5-turbo-0613",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "function_call"}],
        },
    ]
    response, _ = accumulate(sse_bytes(chunks))
    (call,) = response.tool_calls
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert response.finish_reasons == ["tool_calls"]


def test_stream_error_chunk_is_kept() -> None:
    accumulator = codec.stream_accumulator()
    accumulator.add(None, TEXT_STREAM[1].model_dump_json())
    assert accumulator.add(None, json.dumps({"error": {"message": "overloaded", "type": "server_error"}})) is False
    assert accumulator.error == "overloaded"
    assert accumulator.response().message["content"] == "Hello"


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", '{"choices": [{"index": 0, "delta": "x"}]}', '{"choices": 5}'])
def test_stream_rejects_bad_chunks(data: str) -> None:
    with pytest.raises(CodecError):
        codec.stream_accumulator().add(None, data)


@pytest.mark.parametrize("name", ["text", "tools"])
def test_stream_agrees_with_sdk_accumulation(name: str) -> None:
    chunks = (
        TEXT_STREAM
        if name == "text"
        else [
            chunk(ChoiceDelta(role="assistant", content="Sure.")),
            chunk(call_delta(0, "call_a", "get_weather", '{"city"')),
            chunk(call_delta(1, "call_b", "get_time", "{}")),
            chunk(call_delta(0, arguments=': "Rome"}')),
            chunk(ChoiceDelta(), finish_reason="tool_calls"),
            chunk(usage=CompletionUsage(prompt_tokens=40, completion_tokens=22, total_tokens=62)),
        ]
    )
    body = sse_bytes(chunks)
    streamed, _ = accumulate(body)
    expected = codec.decode_response(sdk_snapshot(body))
    assert streamed.message["content"] == expected.message["content"]
    assert streamed.tool_calls == [
        {
            "id": c["id"],
            "type": c["type"],
            "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
        }
        for c in expected.tool_calls
    ]
    assert streamed.finish_reasons == expected.finish_reasons
    assert (streamed.input_tokens, streamed.output_tokens) == (expected.input_tokens, expected.output_tokens)
    assert (streamed.id, streamed.model) == (expected.id, expected.model)
