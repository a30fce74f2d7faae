"""OpenAIResponsesCodec: Responses API requests, responses and streams → canonical call."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest
from openai.types.responses import (
    FunctionTool,
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseError,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from agent_tracer.errors import CodecError
from integrations.openai_responses import OpenAIResponsesCodec
from integrations.sse import SSEDecoder

codec = OpenAIResponsesCodec()

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


# --- helpers ---------------------------------------------------------------------------------


def text_message(item_id: str, *texts: str, refusal: str | None = None) -> ResponseOutputMessage:
    content: list[Any] = [ResponseOutputText(type="output_text", text=text, annotations=[]) for text in texts]
    if refusal is not None:
        content.append(ResponseOutputRefusal(type="refusal", refusal=refusal))
    return ResponseOutputMessage(id=item_id, type="message", role="assistant", status="completed", content=content)


def function_call(item_id: str, call_id: str, name: str, arguments: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=item_id, type="function_call", call_id=call_id, name=name, arguments=arguments, status="completed"
    )


def make_response(output: list[Any], status: str = "completed", reason: str | None = None) -> Response:
    return Response(
        id="resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        object="response",
        created_at=1_741_476_542,
        model="gpt-4.1-2025-04-14",
        status=status,
        incomplete_details={"reason": reason} if reason else None,
        output=output,
        parallel_tool_calls=True,
        tool_choice="auto",
        tools=[FunctionTool(type="function", name="get_weather", parameters=WEATHER_PARAMETERS, strict=True)],
        usage=ResponseUsage(
            input_tokens=36,
            input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
            output_tokens=87,
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
            total_tokens=123,
        ),
    )


def pieces(text: str, rng: random.Random) -> list[str]:
    out, at = [], 0
    while at < len(text):
        size = rng.randint(1, 6)
        out.append(text[at : at + size])
        at += size
    return out


def stream_events(final: Response, terminal: str | None = "response.completed", seed: int = 0) -> list[Any]:
    """The events the API sends while producing `final`, as SDK event objects."""
    rng, seq = random.Random(seed), itertools.count()
    started = final.model_copy(
        update={"status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    )
    events: list[Any] = [
        ResponseCreatedEvent(type="response.created", response=started, sequence_number=next(seq)),
        ResponseInProgressEvent(type="response.in_progress", response=started, sequence_number=next(seq)),
    ]
    for index, item in enumerate(final.output):
        common = {"output_index": index, "sequence_number": 0}
        if item.type == "message":
            added = item.model_copy(update={"content": [], "status": "in_progress"})
            events.append(ResponseOutputItemAddedEvent(type="response.output_item.added", item=added, **common))
            for part_index, part in enumerate(item.content):
                where = {"item_id": item.id, "content_index": part_index, **common}
                empty = (
                    ResponseOutputText(type="output_text", text="", annotations=[])
                    if part.type == "output_text"
                    else ResponseOutputRefusal(type="refusal", refusal="")
                )
                events.append(ResponseContentPartAddedEvent(type="response.content_part.added", part=empty, **where))
                if part.type == "output_text":
                    for delta in pieces(part.text, rng):
                        events.append(
                            ResponseTextDeltaEvent(type="response.output_text.delta", delta=delta, logprobs=[], **where)
                        )
                    events.append(
                        ResponseTextDoneEvent(type="response.output_text.done", text=part.text, logprobs=[], **where)
                    )
                else:
                    for delta in pieces(part.refusal, rng):
                        events.append({"type": "response.refusal.delta", "delta": delta, **where})
                    events.append({"type": "response.refusal.done", "refusal": part.refusal, **where})
                events.append(ResponseContentPartDoneEvent(type="response.content_part.done", part=part, **where))
        elif item.type == "function_call":
            added = item.model_copy(update={"arguments": "", "status": "in_progress"})
            events.append(ResponseOutputItemAddedEvent(type="response.output_item.added", item=added, **common))
            for delta in pieces(item.arguments, rng):
                events.append(
                    ResponseFunctionCallArgumentsDeltaEvent(
                        type="response.function_call_arguments.delta", item_id=item.id, delta=delta, **common
                    )
                )
            events.append(
                ResponseFunctionCallArgumentsDoneEvent(
                    type="response.function_call_arguments.done", item_id=item.id, arguments=item.arguments, **common
                )
            )
        else:
            events.append(ResponseOutputItemAddedEvent(type="response.output_item.added", item=item, **common))
        events.append(ResponseOutputItemDoneEvent(type="response.output_item.done", item=item, **common))
    if terminal == "response.completed":
        events.append(ResponseCompletedEvent(type=terminal, response=final, sequence_number=0))
    elif terminal == "response.incomplete":
        events.append(ResponseIncompleteEvent(type=terminal, response=final, sequence_number=0))
    elif terminal == "response.failed":
        events.append(ResponseFailedEvent(type=terminal, response=final, sequence_number=0))
    for event in events:
        if isinstance(event, dict):
            event["sequence_number"] = next(seq)
        else:
            event.sequence_number = next(seq)
    return events


def sse_bytes(events: list[Any], named: bool = True) -> bytes:
    out = []
    for event in events:
        payload = event if isinstance(event, dict) else event.model_dump(mode="json")
        if named:
            out.append(f"event: {payload['type']}\n".encode())
        out.append(b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n")
    return b"".join(out)


def accumulate(body: bytes, seed: int = 11) -> tuple[Any, list[bool]]:
    rng = random.Random(seed)
    decoder, accumulator, outputs = SSEDecoder(), codec.stream_accumulator(), []
    at = 0
    while at < len(body):
        size = rng.randint(1, 80)
        for event, data in decoder.feed(body[at : at + size]):
            outputs.append(accumulator.add(event, data))
        at += size
    for event, data in decoder.flush():
        outputs.append(accumulator.add(event, data))
    return accumulator.response(), outputs


# --- matches ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/responses", "/responses", "/openai/v1/responses", "/gateway/v1/responses/?x=1"])
def test_matches(path: str) -> None:
    assert codec.matches(path)


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/responses/resp_1", "/v1/responses/resp_1/cancel", "/v1/responses/compact"]
)
def test_does_not_match(path: str) -> None:
    assert not codec.matches(path)


def test_names() -> None:
    assert (codec.api, codec.provider, codec.operation) == ("openai.responses", "openai", "chat")


# --- requests --------------------------------------------------------------------------------


def test_decode_request_string_input_and_instructions() -> None:
    body = {
        "model": "gpt-4.1",
        "instructions": "You are a helpful assistant.",
        "input": "Tell me a joke.",
        "max_output_tokens": 256,
        "temperature": 0.7,
        "top_p": 1,
        "stream": True,
    }
    request = codec.decode_request(body)
    assert request.model == "gpt-4.1"
    assert request.messages == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Tell me a joke."},
    ]
    assert request.params == {"temperature": 0.7, "top_p": 1, "max_tokens": 256}
    assert request.stream is True
    assert request.tools == []


def test_decode_request_input_items() -> None:
    body = {
        "model": "gpt-4.1",
        "instructions": "Use the tools.",
        "input": [
            {"role": "developer", "content": "Answer in English."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather in "},
                    {"type": "input_text", "text": "Paris and Oslo?"},
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA..."},
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}],
            },
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_paris",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
                "status": "completed",
            },
            {
                "type": "function_call",
                "id": "fc_2",
                "call_id": "call_oslo",
                "name": "get_weather",
                "arguments": '{"city":"Oslo"}',
                "status": "completed",
            },
            {"type": "function_call_output", "call_id": "call_paris", "output": "18C, sunny"},
            {
                "type": "function_call_output",
                "call_id": "call_oslo",
                "output": [{"type": "input_text", "text": "4C, "}, {"type": "input_text", "text": "rain"}],
            },
            {"type": "function_call", "call_id": "call_rome", "name": "get_weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "call_rome", "output": "25C"},
            {"type": "item_reference", "id": "msg_0"},
            {"role": "user", "content": "Thanks! And Berlin?"},
        ],
    }
    request = codec.decode_request(body)
    assert request.messages == [
        {"role": "system", "content": "Use the tools."},
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "call_paris",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_oslo",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_paris", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "call_oslo", "content": "4C, rain"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_rome",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_rome", "content": "25C"},
        {"role": "user", "content": "Thanks! And Berlin?"},
    ]
    assert json.loads(json.dumps(request.to_dict())) == request.to_dict()


def test_decode_request_images_and_files_become_chat_parts() -> None:
    body = {
        "model": "gpt-4.1",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Compare these."},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"},
                    {"type": "input_image", "file_id": "file-123", "detail": "auto"},
                    {"type": "input_file", "file_id": "file-456", "filename": "report.pdf"},
                ],
            }
        ],
    }
    (message,) = codec.decode_request(body).messages
    assert message == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Compare these."},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "file-123", "detail": "auto"}},
            {"type": "file", "file": {"file_id": "file-456", "filename": "report.pdf"}},
        ],
    }


def test_decode_request_custom_tool_calls() -> None:
    body = {
        "model": "gpt-5",
        "input": [
            {"role": "user", "content": "Run it."},
            {"type": "custom_tool_call", "call_id": "call_c", "name": "code_exec", "input": "print(1)"},
            {"type": "custom_tool_call_output", "call_id": "call_c", "output": "1"},
        ],
    }
    messages = codec.decode_request(body).messages
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_c", "type": "custom", "custom": {"name": "code_exec", "input": "print(1)"}}],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "call_c", "content": "1"}


def test_decode_request_tools_and_params() -> None:
    web_search = {"type": "web_search_preview", "search_context_size": "low"}
    body = {
        "model": "gpt-4.1",
        "input": "Weather?",
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Current weather.",
                "parameters": WEATHER_PARAMETERS,
                "strict": True,
            },
            {"type": "function", "name": "noop", "parameters": None, "strict": None},
            web_search,
        ],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "max_output_tokens": 100,
        "reasoning": {"effort": "low"},
        "store": False,
    }
    request = codec.decode_request(body)
    assert request.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather.",
                "parameters": WEATHER_PARAMETERS,
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "noop"}},
        web_search,
    ]
    assert request.params == {
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "max_tokens": 100,
    }
    assert codec.decode_request({"input": "x", "tool_choice": "required"}).params == {"tool_choice": "required"}


def test_decode_request_without_input() -> None:
    request = codec.decode_request({"model": "gpt-4.1", "previous_response_id": "resp_1", "prompt": {"id": "pmpt_1"}})
    assert request.messages == []


@pytest.mark.parametrize(
    "body",
    [
        {"input": 5},
        {"input": ["hello"]},
        {"input": [{"type": "message", "content": "no role"}]},
        {"input": [{"type": "function_call", "name": "f"}]},
        {"input": [{"role": "user", "content": 3}]},
        {"input": "x", "tools": ["get_weather"]},
        "just text",
    ],
)
def test_decode_request_rejects_bad_bodies(body: Any) -> None:
    with pytest.raises(CodecError) as info:
        codec.decode_request(body)
    assert "\n" not in str(info.value)


# --- responses -------------------------------------------------------------------------------


def test_decode_response_text() -> None:
    body = make_response(
        [ResponseReasoningItem(id="rs_1", type="reasoning", summary=[]), text_message("msg_1", "Hello ", "world.")]
    ).model_dump(mode="json")
    response = codec.decode_response(body)
    assert response.id == "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"
    assert response.model == "gpt-4.1-2025-04-14"
    assert response.message == {"role": "assistant", "content": "Hello world."}
    assert response.finish_reasons == ["stop"]
    assert (response.input_tokens, response.output_tokens) == (36, 87)


def test_decode_response_function_calls() -> None:
    output = [
        text_message("msg_1", "Checking."),
        function_call("fc_1", "call_paris", "get_weather", '{"city":"Paris"}'),
        function_call("fc_2", "call_oslo", "get_weather", '{"city":"Oslo"}'),
    ]
    response = codec.decode_response(make_response(output).model_dump(mode="json"))
    assert response.message == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {
                "id": "call_paris",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "call_oslo",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            },
        ],
    }
    assert response.finish_reasons == ["tool_calls"]


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        ("incomplete", "max_output_tokens", ["length"]),
        ("incomplete", "content_filter", ["content_filter"]),
        ("failed", None, []),
        ("in_progress", None, []),
    ],
)
def test_decode_response_status(status: str, reason: str | None, expected: list[str]) -> None:
    body = make_response([text_message("msg_1", "Once upon a")], status=status, reason=reason).model_dump(mode="json")
    assert codec.decode_response(body).finish_reasons == expected


def test_decode_response_refusal_and_missing_usage() -> None:
    body = make_response([text_message("msg_1", refusal="I can't help with that.")]).model_dump(mode="json")
    body["usage"] = None
    response = codec.decode_response(body)
    assert response.message == {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    assert response.input_tokens is None


@pytest.mark.parametrize(
    "body",
    [
        {"output": "text"},
        {"output": [{"type": "function_call", "name": "f"}]},
        {"output": [{"type": "message", "content": [{"type": "output_text"}]}]},
        [1],
    ],
)
def test_decode_response_rejects_bad_bodies(body: Any) -> None:
    with pytest.raises(CodecError):
        codec.decode_response(body)


# --- streams ---------------------------------------------------------------------------------

TOOL_OUTPUT = [
    ResponseReasoningItem(id="rs_1", type="reasoning", summary=[]),
    text_message("msg_1", "Let me check the weather in both cities. ☀️"),
    function_call("fc_1", "call_paris", "get_weather", '{"city": "Paris", "unit": "c"}'),
    function_call("fc_2", "call_oslo", "get_weather", '{"city": "Oslo", "unit": "c"}'),
]


@pytest.mark.parametrize("named", [True, False], ids=["with-event-names", "data-only"])
def test_stream_text(named: bool) -> None:
    final = make_response([text_message("msg_1", "Why did the chicken cross the road? To get to the other side.")])
    response, outputs = accumulate(sse_bytes(stream_events(final), named=named))
    assert response == codec.decode_response(final.model_dump(mode="json"))
    assert outputs[:4] == [False, False, False, False]  # created, in_progress, item added, part added
    assert outputs[4] is True  # first text delta


def test_stream_function_calls() -> None:
    final = make_response(TOOL_OUTPUT)
    for seed in range(4):
        response, outputs = accumulate(sse_bytes(stream_events(final, seed=seed)), seed)
        assert response == codec.decode_response(final.model_dump(mode="json"))
        assert response.finish_reasons == ["tool_calls"]
        assert [call["id"] for call in response.tool_calls] == ["call_paris", "call_oslo"]
        assert (response.input_tokens, response.output_tokens) == (36, 87)


def test_stream_assembled_without_terminal_event_matches_final() -> None:
    # What the accumulator builds from deltas alone equals the server's final response.
    final = make_response(TOOL_OUTPUT)
    events = [
        event
        for event in stream_events(final, terminal=None)
        if getattr(event, "type", None) != "response.output_item.done"
    ]
    events = [event for event in events if getattr(event, "type", None) != "response.function_call_arguments.done"]
    response, _ = accumulate(sse_bytes(events))
    expected = codec.decode_response(final.model_dump(mode="json"))
    assert response.message == expected.message
    assert (response.id, response.model) == (expected.id, expected.model)
    assert response.finish_reasons == []
    assert response.input_tokens is None


def test_stream_interleaved_function_call_arguments() -> None:
    # Arguments of two calls arrive interleaved; each delta goes to its output_index.
    added = [
        {
            "type": "response.output_item.added",
            "output_index": i,
            "sequence_number": i,
            "item": {
                "type": "function_call",
                "id": f"fc_{i}",
                "call_id": f"call_{i}",
                "name": name,
                "arguments": "",
                "status": "in_progress",
            },
        }
        for i, name in enumerate(["get_weather", "get_time"])
    ]
    deltas = [
        (0, '{"city"'),
        (1, '{"tz": '),
        (0, ': "Paris"}'),
        (1, '"CET"}'),
    ]
    events = added + [
        {
            "type": "response.function_call_arguments.delta",
            "output_index": i,
            "item_id": f"fc_{i}",
            "delta": d,
            "sequence_number": 9,
        }
        for i, d in deltas
    ]
    response, outputs = accumulate(sse_bytes(events, named=False))
    assert outputs == [True, True, True, True, True, True]
    assert [call["function"] for call in response.tool_calls] == [
        {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"name": "get_time", "arguments": '{"tz": "CET"}'},
    ]


def test_stream_cut_midway_returns_partial_response() -> None:
    final = make_response(TOOL_OUTPUT)
    body = sse_bytes(stream_events(final))
    cut = body.index(b'"delta": "', body.index(b"response.function_call_arguments.delta")) + 12
    decoder, accumulator = SSEDecoder(), codec.stream_accumulator()
    for event, data in decoder.feed(body[:cut]):
        accumulator.add(event, data)
    response = accumulator.response()
    assert response.id == final.id
    assert response.message["content"] == "Let me check the weather in both cities. ☀️"
    (call,) = response.tool_calls
    assert call["id"] == "call_paris"
    assert call["function"]["name"] == "get_weather"
    assert '{"city": "Paris", "unit": "c"}'.startswith(call["function"]["arguments"])
    assert response.finish_reasons == []


def test_stream_incomplete() -> None:
    final = make_response(
        [text_message("msg_1", "Once upon a time, in a land")], status="incomplete", reason="max_output_tokens"
    )
    response, _ = accumulate(sse_bytes(stream_events(final, terminal="response.incomplete")))
    assert response.message["content"] == "Once upon a time, in a land"
    assert response.finish_reasons == ["length"]
    assert response.output_tokens == 87


def test_stream_failed_keeps_streamed_output() -> None:
    streamed = make_response([text_message("msg_1", "Partial answer")])
    events = stream_events(streamed, terminal=None)
    failed = streamed.model_copy(
        update={
            "status": "failed",
            "output": [],
            "error": ResponseError(code="server_error", message="The model failed."),
        }
    )
    events.append(ResponseFailedEvent(type="response.failed", response=failed, sequence_number=99))
    response, _ = accumulate(sse_bytes(events))
    assert response.message == {"role": "assistant", "content": "Partial answer"}
    assert response.finish_reasons == []
    assert response.input_tokens == 36


def test_stream_refusal() -> None:
    final = make_response([text_message("msg_1", refusal="I can't help with that.")])
    events = stream_events(final, terminal=None)
    response, outputs = accumulate(sse_bytes(events))
    assert response.message == {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    assert True in outputs


def test_stream_error_event() -> None:
    accumulator = codec.stream_accumulator()
    error = {
        "type": "error",
        "code": "rate_limit_exceeded",
        "message": "Slow down.",
        "param": None,
        "sequence_number": 1,
    }
    assert accumulator.add("error", json.dumps(error)) is False
    assert accumulator.error == "Slow down."
    assert accumulator.add(None, "[DONE]") is False


def test_stream_unknown_events_ignored() -> None:
    accumulator = codec.stream_accumulator()
    assert (
        accumulator.add(
            None,
            json.dumps(
                {
                    "type": "response.web_search_call.searching",
                    "output_index": 0,
                    "item_id": "ws_1",
                    "sequence_number": 3,
                }
            ),
        )
        is False
    )
    assert accumulator.add("keepalive", json.dumps({"sequence_number": 4})) is False
    assert accumulator.response().message == {"role": "assistant", "content": None}


@pytest.mark.parametrize(
    "data",
    [
        "{oops",
        "[]",
        json.dumps({"type": "response.output_text.delta", "output_index": 0}),
        json.dumps({"type": "response.completed", "response": "done"}),
    ],
)
def test_stream_rejects_bad_events(data: str) -> None:
    with pytest.raises(CodecError):
        codec.stream_accumulator().add(None, data)
