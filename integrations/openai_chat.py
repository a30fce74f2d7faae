"""Codec for the OpenAI Chat Completions API (`POST …/chat/completions`).

The canonical format *is* chat format, so requests mostly pass through: messages keep their content
strings or part lists, tools keep their shape. What changes:
- legacy `functions` / `function_call` become `tools` / `tool_choice`, an assistant message's
  `function_call` becomes a one-element `tool_calls`, and a `function` role message becomes a
  `tool` message answering it (legacy calls have no id, so one is made from their position);
- `max_completion_tokens` is stored as `max_tokens`;
- a response keeps choice 0's message (n > 1: the finish reasons of all choices are kept).

A stream is rebuilt from `chat.completion.chunk` events: content pieces, tool calls assembled per
`index` (id and name in the first delta of an index, arguments in pieces, several indexes
interleaved), refusal, finish reasons, and the usage of the final chunk.

The other way round, `completion`, `chunk` and `usage_chunk` write answers as the API does, for
every server that speaks it (`trainer.serve`, the quickstart's stand-in, the test fake upstream).
"""

from __future__ import annotations

import uuid
from typing import Any

from agent_tracer import fastjson
from agent_tracer.canonical import CanonicalRequest, CanonicalResponse, Message
from agent_tracer.errors import CodecError

__all__ = [
    "STREAM_END",
    "ChatStreamAccumulator",
    "OpenAIChatCodec",
    "chunk",
    "completion",
    "completion_id",
    "usage",
    "usage_chunk",
]

PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "tool_choice",
    "parallel_tool_calls",
    "frequency_penalty",
    "presence_penalty",
    "n",
)
"""Request fields kept in `CanonicalRequest.params`, under the same names."""

_BAD_BODY = (KeyError, TypeError, ValueError, AttributeError, IndexError)
"""What a body of the wrong shape raises while it is taken apart; turned into `CodecError`."""


def _finish_reason(reason: str) -> str:
    return "tool_calls" if reason == "function_call" else reason


def _legacy_call_id(n: int) -> str:
    """An id for the n-th legacy `function_call` of a conversation (the wire carries none)."""
    return f"call_legacy_{n}"


def _tool_call_from_function_call(call_id: str, function_call: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": function_call["name"], "arguments": function_call.get("arguments") or ""},
    }


def _decode_messages(messages: list[Any]) -> list[Message]:
    if not isinstance(messages, list):
        raise TypeError(f"messages is {type(messages).__name__}, not a list")
    out: list[Message] = []
    legacy_calls = 0
    open_legacy_call: str | None = None
    for raw in messages:
        if not isinstance(raw, dict) or not isinstance(raw.get("role"), str):
            raise ValueError("a message is not an object with a role")
        message = dict(raw)
        if message["role"] == "assistant" and message.get("function_call"):
            open_legacy_call = _legacy_call_id(legacy_calls)
            legacy_calls += 1
            call = _tool_call_from_function_call(open_legacy_call, message.pop("function_call"))
            message["tool_calls"] = [*(message.get("tool_calls") or []), call]
        elif message["role"] == "function":
            message["role"] = "tool"
            message["tool_call_id"] = open_legacy_call
            open_legacy_call = None
        out.append(message)
    return out


def _decode_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = list(body.get("tools") or [])
    for function in body.get("functions") or []:
        tools.append({"type": "function", "function": function})
    for tool in tools:
        if not isinstance(tool, dict):
            raise ValueError("a tool is not an object")
    return tools


def _decode_params(body: dict[str, Any]) -> dict[str, Any]:
    params = {name: body[name] for name in PARAMS if body.get(name) is not None}
    if body.get("max_completion_tokens") is not None:
        params["max_tokens"] = body["max_completion_tokens"]
    legacy_choice = body.get("function_call")
    if legacy_choice is not None and "tool_choice" not in params:
        if isinstance(legacy_choice, dict):
            legacy_choice = {"type": "function", "function": {"name": legacy_choice["name"]}}
        params["tool_choice"] = legacy_choice
    return params


def _decode_assistant(raw: dict[str, Any]) -> Message:
    message: Message = {"role": "assistant", "content": raw.get("content")}
    tool_calls = list(raw.get("tool_calls") or [])
    if raw.get("function_call"):
        tool_calls.append(_tool_call_from_function_call(_legacy_call_id(0), raw["function_call"]))
    if tool_calls:
        message["tool_calls"] = tool_calls
    if raw.get("refusal") is not None:
        message["refusal"] = raw["refusal"]
    return message


class OpenAIChatCodec:
    """Chat Completions ↔ canonical call."""

    api = "openai.chat"
    provider = "openai"
    operation = "chat"

    def matches(self, path: str) -> bool:
        return path.partition("?")[0].rstrip("/").endswith("/chat/completions")

    def decode_request(self, body: dict[str, Any]) -> CanonicalRequest:
        try:
            return CanonicalRequest(
                model=body.get("model"),
                messages=_decode_messages(body["messages"]),
                tools=_decode_tools(body),
                params=_decode_params(body),
                stream=bool(body.get("stream")),
            )
        except _BAD_BODY as exc:
            raise CodecError(f"not a Chat Completions request: {exc!r}") from exc

    def decode_response(self, body: dict[str, Any]) -> CanonicalResponse:
        try:
            choices = sorted(body["choices"], key=lambda choice: choice.get("index") or 0)
            response = CanonicalResponse(id=body.get("id"), model=body.get("model"))
            if choices:
                response.message = _decode_assistant(choices[0]["message"])
            response.finish_reasons = [
                _finish_reason(choice["finish_reason"]) for choice in choices if choice.get("finish_reason")
            ]
            usage = body.get("usage") or {}
            response.input_tokens = usage.get("prompt_tokens")
            response.output_tokens = usage.get("completion_tokens")
            return response
        except _BAD_BODY as exc:
            raise CodecError(f"not a Chat Completions response: {exc!r}") from exc

    def stream_accumulator(self) -> ChatStreamAccumulator:
        return ChatStreamAccumulator()


class _ToolCall:
    __slots__ = ("id", "type", "name", "arguments")

    def __init__(self) -> None:
        self.id: str | None = None
        self.type = "function"
        self.name = ""
        self.arguments: list[str] = []

    def to_message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.name, "arguments": "".join(self.arguments)},
        }


class ChatStreamAccumulator:
    """Rebuilds a chat completion from its `chat.completion.chunk` events."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.error: str | None = None
        """The message of a chunk that reported a failure mid-stream, if one did."""
        self.done = False
        """True once `data: [DONE]` arrived: the stream ended as the API ends it."""
        self._content: list[str] | None = None
        self._refusal: list[str] | None = None
        self._tool_calls: dict[int, _ToolCall] = {}
        self._finish_reasons: dict[int, str] = {}
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None

    def add(self, event: str | None, data: str) -> bool:
        if data == "[DONE]":
            self.done = True
            return False
        try:
            chunk = fastjson.loads(data)
            return self._add_chunk(chunk)
        except _BAD_BODY as exc:
            raise CodecError(f"not a chat.completion.chunk: {exc!r}") from exc

    def _add_chunk(self, chunk: dict[str, Any]) -> bool:
        if chunk.get("error") is not None:
            self.error = _error_text(chunk["error"])
            return False
        if chunk.get("id"):
            self.id = self.id or chunk["id"]
        if chunk.get("model"):
            self.model = chunk["model"]
        usage = chunk.get("usage")
        if usage:
            self._input_tokens = usage.get("prompt_tokens")
            self._output_tokens = usage.get("completion_tokens")
        output = False
        for choice in chunk.get("choices") or ():
            index = choice.get("index") or 0
            if choice.get("finish_reason"):
                self._finish_reasons[index] = _finish_reason(choice["finish_reason"])
            delta = choice.get("delta")
            if not delta:
                continue
            content = delta.get("content")
            tool_calls = delta.get("tool_calls")
            function_call = delta.get("function_call")
            refusal = delta.get("refusal")
            if content or tool_calls or function_call or refusal:
                output = True
            if index != 0:
                continue
            if content is not None:
                if self._content is None:
                    self._content = []
                self._content.append(content)
            if refusal is not None:
                if self._refusal is None:
                    self._refusal = []
                self._refusal.append(refusal)
            for piece in tool_calls or ():
                self._add_tool_call(piece.get("index") or 0, piece.get("id"), piece.get("type"), piece.get("function"))
            if function_call:
                self._add_tool_call(-1, _legacy_call_id(0), None, function_call)
        return output

    def _add_tool_call(self, index: int, call_id: str | None, kind: str | None, function: Any) -> None:
        call = self._tool_calls.get(index)
        if call is None:
            call = self._tool_calls[index] = _ToolCall()
        if call_id and not call.id:
            call.id = call_id
        if kind:
            call.type = kind
        if function:
            if function.get("name") and not call.name:
                call.name = function["name"]
            if function.get("arguments"):
                call.arguments.append(function["arguments"])

    def response(self) -> CanonicalResponse:
        content = "".join(self._content) if self._content is not None else None
        message: Message = {"role": "assistant", "content": content}
        if self._tool_calls:
            message["tool_calls"] = [self._tool_calls[i].to_message() for i in sorted(self._tool_calls)]
            if not content:
                message["content"] = None
        if self._refusal is not None:
            message["refusal"] = "".join(self._refusal)
        return CanonicalResponse(
            id=self.id,
            model=self.model,
            message=message,
            finish_reasons=[self._finish_reasons[i] for i in sorted(self._finish_reasons)],
            input_tokens=self._input_tokens,
            output_tokens=self._output_tokens,
        )


def _error_text(error: Any) -> str:
    """The message of an in-stream error object (or the object itself, as text)."""
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(error)


# ------------------------------------------------------------------------------------------------
# Answers, as the API writes them (the official SDK parses them)

STREAM_END = b"data: [DONE]\n\n"
"""The event that ends a stream, after the last chunk."""


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    ident: str,
    created: int,
    model: str,
    content: str | None,
    calls: list[dict[str, Any]],
    finish_reason: str,
    token_usage: dict[str, Any],
    **fields: Any,
) -> dict[str, Any]:
    """A whole `chat.completion` (`fields`: more top-level fields). `calls` are tool calls as a
    message holds them; a stream delta's `index` is dropped."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = [{key: value for key, value in call.items() if key != "index"} for call in calls]
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": token_usage,
        **fields,
    }


def chunk(
    ident: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    with_usage: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """One `chat.completion.chunk` with one choice; `with_usage` (stream_options.include_usage)
    adds `"usage": null`, as OpenAI sends it on every chunk before the last."""
    body: dict[str, Any] = {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        **fields,
    }
    if with_usage:
        body["usage"] = None
    return body


def usage_chunk(ident: str, created: int, model: str, token_usage: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The last chunk of a stream with include_usage: no choices, the usage."""
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": token_usage,
        **fields,
    }
