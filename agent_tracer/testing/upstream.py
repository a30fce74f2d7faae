"""A fake OpenAI and Anthropic API on loopback, for tests, benchmarks and demos.

`FakeUpstream` is a real HTTP/1.1 server (standard library only: keep-alive, chunked server-sent
events, TCP_NODELAY) answering with exactly the shapes the official SDKs parse:

    POST /v1/chat/completions   OpenAI Chat Completions, plain and `"stream": true`
    POST /v1/responses          OpenAI Responses API, plain and streamed
    POST /v1/messages           Anthropic Messages, plain and streamed
    GET  /v1/models             an OpenAI model list
    anything else               404 in OpenAI's error shape

The header `x-fake-scenario` picks the behaviour per request (SDKs send it with `extra_headers=`);
several may be joined with commas, e.g. `stall:0.2,parallel_tools`:

    auto                 (default) a call to the first tool when the request has tools, unless the
                         conversation ends with tool results; otherwise text: "Echo: <last user
                         text>", or "Echo: <tool results>" after tool results (so agent loops end)
    text                 always text
    parallel_tools       text, then two tool calls (first and second tool, or the first twice); in a
                         stream the text comes first and the two calls' argument deltas interleave
    error:CODE           that status with the API's own error body (429 also sends retry-after: 0)
    stall:SECONDS        wait that long before answering
    cut                  a stream stops after a few events without its terminating chunk; a plain
                         answer declares a longer content-length than it sends; then the socket closes
    slow_stream:SECONDS  wait that long between stream events

Token usage is deterministic: input = whitespace-separated words of every message text (system and
instructions included), output = words of the answer text plus `len(arguments) // 4 + 1` per call.

Run it in the foreground with `python -m agent_tracer.testing.upstream --port 8000`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

__all__ = ["FakeUpstream", "SCENARIO_HEADER"]

SCENARIO_HEADER = "x-fake-scenario"
"""The request header that selects a scenario."""

MODELS = ("gpt-4o-mini", "gpt-4.1", "claude-haiku-4-5")
"""The ids `GET /v1/models` lists."""

_ARG_PIECE = 8
"""Characters of tool-call arguments per stream delta."""

_CUT_AFTER = 3
"""Stream events sent before the `cut` scenario drops the connection."""

_JSON_SEPARATORS = (",", ":")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=_JSON_SEPARATORS, ensure_ascii=False).encode()


def _new_id(prefix: str, nbytes: int = 12) -> str:
    return prefix + os.urandom(nbytes).hex()


# ------------------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class Scenario:
    """What one request asked the fake upstream to do (parsed from `x-fake-scenario`)."""

    mode: str = "auto"
    error: int | None = None
    stall: float = 0.0
    cut: bool = False
    slow_stream: float = 0.0

    @classmethod
    def parse(cls, header: str | None) -> Scenario:
        """Parse a header value; raises ValueError for anything unknown."""
        fields: dict[str, Any] = {}
        for token in (header or "").split(","):
            name, _, arg = token.strip().partition(":")
            name = name.lower()
            if not name:
                continue
            if name in ("auto", "text", "parallel_tools") and not arg:
                fields["mode"] = name
            elif name == "cut" and not arg:
                fields["cut"] = True
            elif name == "error":
                fields["error"] = _parse_number(token, arg, int)
                if not 400 <= fields["error"] <= 599:
                    raise ValueError(f"{SCENARIO_HEADER}: {token.strip()!r} is not an error status")
            elif name in ("stall", "slow_stream"):
                fields[name] = _parse_number(token, arg, float)
            else:
                raise ValueError(f"{SCENARIO_HEADER}: unknown scenario {token.strip()!r}")
        return cls(**fields)


def _parse_number(token: str, arg: str, kind: Callable[[str], Any]) -> Any:
    try:
        return kind(arg)
    except ValueError:
        raise ValueError(f"{SCENARIO_HEADER}: {token.strip()!r} needs a number") from None


# ------------------------------------------------------------------------------------------------
# What the request says, in one shape for the three wire formats


@dataclass
class _View:
    texts: list[str] = field(default_factory=list)
    """Every message text, for the input token count."""
    last_user_text: str = ""
    tool_results: list[str] | None = None
    """Texts of the tool results the conversation ends with; None when it does not end with any."""
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(name, JSON schema of the arguments) for each function tool, in request order."""


def _content_texts(content: Any) -> list[str]:
    """Texts in a message's content: a string, or a list of parts with `text` (or nested `content`)."""
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif "content" in part:
                    texts.extend(_content_texts(part["content"]))
                elif isinstance(part.get("output"), str):
                    texts.append(part["output"])
    return texts


def _user_text(content: Any) -> str:
    """The text a user typed: text parts only, tool results left out."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") != "tool_result"]
    return " ".join(p for p in parts if isinstance(p, str))


def _view_of(messages: list[Any], system: Any = None) -> _View:
    view = _View(texts=_content_texts(system) if system else [])
    for message in messages:
        if not isinstance(message, dict):
            continue
        view.texts.extend(_content_texts(message.get("content", message.get("output"))))
        if message.get("role") == "user" and message.get("type", "message") == "message":
            view.last_user_text = _user_text(message.get("content")) or view.last_user_text
    view.tool_results = _trailing_tool_results(messages)
    return view


def _trailing_tool_results(messages: list[Any]) -> list[str] | None:
    """Texts of the tool results the conversation ends with, or None when it ends otherwise."""
    results: list[str] | None = None
    for message in reversed(messages):
        if not isinstance(message, dict):
            break
        if message.get("role") == "tool" or message.get("type") == "function_call_output":
            results = _content_texts(message.get("content", message.get("output"))) + (results or [])
            continue
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, list) and results is None:
            blocks = [p for p in content if isinstance(p, dict) and p.get("type") == "tool_result"]
            results = _content_texts(blocks) if blocks else None
        break
    return results


def _view_chat(body: dict[str, Any]) -> _View:
    view = _view_of(_as_list(body.get("messages")))
    for tool in _as_list(body.get("tools")):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and tool.get("type", "function") == "function" and "name" in function:
            view.tools.append((function["name"], function.get("parameters") or {}))
    return view


def _view_responses(body: dict[str, Any]) -> _View:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    view = _view_of(_as_list(items), body.get("instructions"))
    for tool in _as_list(body.get("tools")):
        if isinstance(tool, dict) and tool.get("type") == "function" and "name" in tool:
            view.tools.append((tool["name"], tool.get("parameters") or {}))
    return view


def _view_messages(body: dict[str, Any]) -> _View:
    view = _view_of(_as_list(body.get("messages")), body.get("system"))
    for tool in _as_list(body.get("tools")):
        if isinstance(tool, dict) and "name" in tool and tool.get("type", "custom") == "custom":
            view.tools.append((tool["name"], tool.get("input_schema") or {}))
    return view


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ------------------------------------------------------------------------------------------------
# The answer, before it is dressed in a wire format


@dataclass
class _Call:
    name: str
    arguments: str
    """JSON text, compact."""
    call_id: str
    item_id: str
    """The Responses API output item id (`fc_…`)."""


@dataclass
class _Answer:
    model: str
    text: str | None
    calls: list[_Call]
    input_tokens: int
    output_tokens: int


def example_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments that satisfy a JSON schema's required properties, with fixed placeholder values."""
    properties = schema.get("properties") or {}
    return {name: _example_value(properties.get(name) or {}) for name in schema.get("required") or []}


_EXAMPLES: dict[str, Any] = {"string": "x", "integer": 1, "number": 1.5, "boolean": True, "null": None}


def _example_value(schema: dict[str, Any]) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return _EXAMPLES.get(kind, "x")


def _count_words(texts: list[str]) -> int:
    return sum(len(text.split()) for text in texts)


def _answer(view: _View, body: dict[str, Any], scenario: Scenario, call_prefix: str) -> _Answer:
    after_tools = view.tool_results is not None
    echo = f"Echo: {' '.join(view.tool_results or []) if after_tools else view.last_user_text}"
    tools = view.tools
    if scenario.mode == "parallel_tools" and tools:
        picked = [tools[0], tools[1] if len(tools) > 1 else tools[0]]
        text: str | None = echo
    elif scenario.mode == "auto" and tools and not after_tools:
        picked, text = [tools[0]], None
    else:
        picked, text = [], echo
    calls = [
        _Call(
            name=name,
            arguments=json.dumps(example_arguments(schema), separators=_JSON_SEPARATORS),
            call_id=_new_id(call_prefix),
            item_id=_new_id("fc_"),
        )
        for name, schema in picked
    ]
    output_tokens = (len(text.split()) if text else 0) + sum(len(c.arguments) // 4 + 1 for c in calls)
    return _Answer(
        model=str(body.get("model") or "fake-model"),
        text=text,
        calls=calls,
        input_tokens=_count_words(view.texts),
        output_tokens=output_tokens,
    )


def _text_pieces(text: str) -> list[str]:
    """Split text per word, each piece carrying its leading whitespace; joining gives the text back."""
    return re.findall(r"\s*\S+|\s+$", text) or [text]


def _interleaved_arguments(calls: list[_Call]) -> Iterator[tuple[int, str]]:
    """(call index, argument piece): round-robin over the calls, so several calls interleave."""
    pieces = [[c.arguments[i : i + _ARG_PIECE] for i in range(0, len(c.arguments), _ARG_PIECE)] for c in calls]
    for round_ in range(max((len(p) for p in pieces), default=0)):
        for index, call_pieces in enumerate(pieces):
            if round_ < len(call_pieces):
                yield index, call_pieces[round_]


def _sse_data(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


def _sse_event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _dumps(obj) + b"\n\n"


# ------------------------------------------------------------------------------------------------
# OpenAI Chat Completions


def _chat_usage(answer: _Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_completion(answer: _Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None, "annotations": []}
    if answer.calls:
        message["tool_calls"] = [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.calls
        ]
    return {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if answer.calls else "stop",
            }
        ],
        "usage": _chat_usage(answer),
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def _chat_stream(answer: _Answer, body: dict[str, Any]) -> list[bytes]:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    head = {
        "id": _new_id("chatcmpl-"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": answer.model,
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }
    if include_usage:
        head["usage"] = None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse_data({**head, "choices": [choice]})

    events = [chunk({"role": "assistant", "content": "" if answer.text is not None else None, "refusal": None})]
    events += [chunk({"content": piece}) for piece in _text_pieces(answer.text or "") if answer.text]
    for index, call in enumerate(answer.calls):
        function = {"name": call.name, "arguments": ""}
        tool_call = {"index": index, "id": call.call_id, "type": "function", "function": function}
        events.append(chunk({"tool_calls": [tool_call]}))
    for index, piece in _interleaved_arguments(answer.calls):
        events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    events.append(chunk({}, "tool_calls" if answer.calls else "stop"))
    if include_usage:
        events.append(_sse_data({**head, "choices": [], "usage": _chat_usage(answer)}))
    events.append(b"data: [DONE]\n\n")
    return events


# ------------------------------------------------------------------------------------------------
# OpenAI Responses API


class _ResponsesBuilder:
    """One Responses API answer, with ids fixed so the plain object and every event agree."""

    def __init__(self, answer: _Answer, body: dict[str, Any]) -> None:
        self.answer = answer
        self.body = body
        self.id = _new_id("resp_", 24)
        self.message_id = _new_id("msg_", 24)
        self.created_at = int(time.time())

    def message_item(self, status: str = "completed") -> dict[str, Any]:
        content = [self.text_part()] if status == "completed" else []
        return {"id": self.message_id, "type": "message", "status": status, "role": "assistant", "content": content}

    def text_part(self, text: str | None = None) -> dict[str, Any]:
        text = self.answer.text if text is None else text
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    @staticmethod
    def call_item(call: _Call, status: str = "completed") -> dict[str, Any]:
        arguments = call.arguments if status == "completed" else ""
        return {
            "id": call.item_id,
            "type": "function_call",
            "status": status,
            "call_id": call.call_id,
            "name": call.name,
            "arguments": arguments,
        }

    def output(self) -> list[dict[str, Any]]:
        items = [self.message_item()] if self.answer.text is not None else []
        return items + [self.call_item(call) for call in self.answer.calls]

    def response(self, status: str = "completed") -> dict[str, Any]:
        done = status == "completed"
        body, answer = self.body, self.answer
        usage = {
            "input_tokens": answer.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": answer.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": answer.input_tokens + answer.output_tokens,
        }
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "completed_at": int(time.time()) if done else None,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": answer.model,
            "output": self.output() if done else [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": _as_list(body.get("tools")),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": usage if done else None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def events(self) -> list[bytes]:
        events: list[bytes] = []

        def emit(name: str, /, **payload: Any) -> None:
            events.append(_sse_event(name, {"type": name, "sequence_number": len(events), **payload}))

        emit("response.created", response=self.response("in_progress"))
        emit("response.in_progress", response=self.response("in_progress"))
        index = 0
        if self.answer.text is not None:
            text_at = {"item_id": self.message_id, "output_index": 0, "content_index": 0}
            emit("response.output_item.added", output_index=0, item=self.message_item("in_progress"))
            emit("response.content_part.added", **text_at, part=self.text_part(""))
            for piece in _text_pieces(self.answer.text):
                emit("response.output_text.delta", **text_at, delta=piece, logprobs=[])
            emit("response.output_text.done", **text_at, text=self.answer.text, logprobs=[])
            emit("response.content_part.done", **text_at, part=self.text_part())
            emit("response.output_item.done", output_index=0, item=self.message_item())
            index = 1
        for offset, call in enumerate(self.answer.calls):
            emit("response.output_item.added", output_index=index + offset, item=self.call_item(call, "in_progress"))
        for offset, piece in _interleaved_arguments(self.answer.calls):
            call_at = {"item_id": self.answer.calls[offset].item_id, "output_index": index + offset}
            emit("response.function_call_arguments.delta", **call_at, delta=piece)
        for offset, call in enumerate(self.answer.calls):
            call_at = {"item_id": call.item_id, "output_index": index + offset}
            emit("response.function_call_arguments.done", **call_at, name=call.name, arguments=call.arguments)
            emit("response.output_item.done", output_index=index + offset, item=self.call_item(call))
        emit("response.completed", response=self.response())
        return events


# ------------------------------------------------------------------------------------------------
# Anthropic Messages


def _anthropic_message(answer: _Answer, message_id: str, done: bool) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if done and answer.text is not None:
        content.append({"type": "text", "text": answer.text})
    if done:
        content += [
            {"type": "tool_use", "id": c.call_id, "name": c.name, "input": json.loads(c.arguments)}
            for c in answer.calls
        ]
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": ("tool_use" if answer.calls else "end_turn") if done else None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": answer.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": answer.output_tokens if done else 1,
            "service_tier": "standard",
        },
    }


def _anthropic_stream(answer: _Answer) -> list[bytes]:
    events: list[bytes] = []

    def emit(name: str, /, **payload: Any) -> None:
        events.append(_sse_event(name, {"type": name, **payload}))

    emit("message_start", message=_anthropic_message(answer, _new_id("msg_"), done=False))
    index = 0
    if answer.text is not None:
        emit("content_block_start", index=0, content_block={"type": "text", "text": ""})
        emit("ping")
        for piece in _text_pieces(answer.text):
            emit("content_block_delta", index=0, delta={"type": "text_delta", "text": piece})
        emit("content_block_stop", index=0)
        index = 1
    for offset, call in enumerate(answer.calls):
        block = {"type": "tool_use", "id": call.call_id, "name": call.name, "input": {}}
        emit("content_block_start", index=index + offset, content_block=block)
        emit("content_block_delta", index=index + offset, delta={"type": "input_json_delta", "partial_json": ""})
    if answer.text is None:
        emit("ping")
    for offset, piece in _interleaved_arguments(answer.calls):
        emit("content_block_delta", index=index + offset, delta={"type": "input_json_delta", "partial_json": piece})
    for offset in range(len(answer.calls)):
        emit("content_block_stop", index=index + offset)
    stop_reason = "tool_use" if answer.calls else "end_turn"
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    emit("message_delta", delta=delta, usage={"output_tokens": answer.output_tokens})
    emit("message_stop")
    return events


# ------------------------------------------------------------------------------------------------
# Error bodies

_OPENAI_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "unknown_url"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_body(api: str, status: int, message: str) -> dict[str, Any]:
    if api == "anthropic":
        kind = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind, code = _OPENAI_ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# ------------------------------------------------------------------------------------------------
# The HTTP server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeUpstream/1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """Keep quiet: no request log."""

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's naming)
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    # -- one request --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            self._handle()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer

    def _handle(self) -> None:
        raw = self._read_body()
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
            bad_json = True
        else:
            bad_json = False
        self.server.upstream._record({"method": self.command, "path": self.path, "headers": headers, "json": body})

        api = "anthropic" if path == "/v1/messages" else "openai"
        try:
            scenario = Scenario.parse(headers.get(SCENARIO_HEADER))
        except ValueError as exc:
            return self._send_error(api, 400, str(exc))
        if scenario.stall:
            self.server.stopping.wait(scenario.stall)
        route = _ROUTES.get((self.command, path))
        if route is None:
            return self._send_error("openai", 404, f"Unknown request URL: {self.command} {path}.")
        if scenario.error:
            message = f"Fake upstream error {scenario.error} (scenario {headers.get(SCENARIO_HEADER)!r})."
            return self._send_error(api, scenario.error, message)
        if self.command == "GET":
            return route(self, {}, scenario)
        if bad_json or not isinstance(body, dict):
            return self._send_error(api, 400, "We could not parse the JSON body of your request.")
        route(self, body, scenario)

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";", 1)[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    # -- answers ------------------------------------------------------------------------------

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        reason = self.responses.get(status, ("Error",))[0]
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{name}: {value}" for name, value in headers), "", ""]
        return "\r\n".join(lines).encode("latin-1")

    def _request_id_header(self, api: str) -> tuple[str, str]:
        return ("request-id" if api == "anthropic" else "x-request-id", _new_id("req_"))

    def _send_json(self, api: str, status: int, obj: Any, scenario: Scenario | None = None,
                   extra: tuple[tuple[str, str], ...] = ()) -> None:
        body = _dumps(obj)
        cut = scenario is not None and scenario.cut
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(body) + 64 if cut else len(body))),
            self._request_id_header(api),
            *extra,
        ]
        self.wfile.write(self._head(status, headers) + body)
        if cut:
            self._drop_connection()

    def _send_error(self, api: str, status: int, message: str) -> None:
        extra = (("retry-after", "0"),) if status == 429 else ()
        self._send_json(api, status, _error_body(api, status, message), extra=extra)

    def _send_stream(self, api: str, events: list[bytes], scenario: Scenario) -> None:
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("transfer-encoding", "chunked"),
            ("cache-control", "no-cache"),
            self._request_id_header(api),
        ]
        self.wfile.write(self._head(200, headers))
        cut_at = min(_CUT_AFTER, len(events) - 1) if scenario.cut else len(events)
        for number, event in enumerate(events[:cut_at]):
            if number and scenario.slow_stream:
                self.server.stopping.wait(scenario.slow_stream)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        if scenario.cut:
            self._drop_connection()
        else:
            self.wfile.write(b"0\r\n\r\n")

    def _drop_connection(self) -> None:
        """Close the socket with the answer unfinished, so the client sees a broken body."""
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)

    # -- endpoints ----------------------------------------------------------------------------

    def _chat_completions(self, body: dict[str, Any], scenario: Scenario) -> None:
        answer = _answer(_view_chat(body), body, scenario, "call_")
        if body.get("stream"):
            self._send_stream("openai", _chat_stream(answer, body), scenario)
        else:
            self._send_json("openai", 200, _chat_completion(answer), scenario)

    def _responses(self, body: dict[str, Any], scenario: Scenario) -> None:
        builder = _ResponsesBuilder(_answer(_view_responses(body), body, scenario, "call_"), body)
        if body.get("stream"):
            self._send_stream("openai", builder.events(), scenario)
        else:
            self._send_json("openai", 200, builder.response(), scenario)

    def _messages(self, body: dict[str, Any], scenario: Scenario) -> None:
        answer = _answer(_view_messages(body), body, scenario, "toolu_")
        if body.get("stream"):
            self._send_stream("anthropic", _anthropic_stream(answer), scenario)
        else:
            self._send_json("anthropic", 200, _anthropic_message(answer, _new_id("msg_"), done=True), scenario)

    def _models(self, body: dict[str, Any], scenario: Scenario) -> None:
        data = [{"id": model, "object": "model", "created": 1700000000, "owned_by": "agent-tracer"} for model in MODELS]
        self._send_json("openai", 200, {"object": "list", "data": data}, scenario)


_ROUTES: dict[tuple[str, str], Callable[[_Handler, dict[str, Any], Scenario], None]] = {
    ("POST", "/v1/chat/completions"): _Handler._chat_completions,
    ("POST", "/v1/responses"): _Handler._responses,
    ("POST", "/v1/messages"): _Handler._messages,
    ("GET", "/v1/models"): _Handler._models,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], upstream: FakeUpstream) -> None:
        self.upstream = upstream
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open keep-alive connection, so no handler thread answers after `stop()`."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue  # already closed by its handler

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that hung up while we read its request
        super().handle_error(request, client_address)


class FakeUpstream:
    """Context manager; starts the server in a background thread on a free port.

        with FakeUpstream() as upstream:
            client = openai.OpenAI(base_url=upstream.openai_base_url, api_key="sk-test")
            client.chat.completions.create(model="gpt-4o-mini", messages=[...])
            assert upstream.requests[-1]["path"] == "/v1/chat/completions"
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[dict[str, Any]] = []
        """Every request received, in arrival order: {"method", "path" (as sent, query included),
        "headers" (lower-case names, credentials included), "json" (the parsed body, or None)}."""
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://HOST:PORT`; the port is known once started."""
        if not self.port:
            raise RuntimeError("FakeUpstream is not started: its port is not chosen yet")
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The Anthropic SDK appends `/v1/messages` itself."""
        return self.url

    def start(self) -> FakeUpstream:
        """Bind and serve in a daemon thread; a second call does nothing."""
        if self._server is None:
            server = _Server((self.host, self.port), self)
            self.port = server.server_address[1]
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-upstream-{self.port}",
                daemon=True,
            )
            self._server = server
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled handlers, drop open connections. Keeps the port for a restart."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()

    def _record(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(request)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"serving {self.url}" if self._server else "stopped"
        return f"<FakeUpstream {state}, {len(self.requests)} requests>"


def main(argv: list[str] | None = None) -> None:
    """Serve in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m agent_tracer.testing.upstream", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    args = parser.parse_args(argv)
    upstream = FakeUpstream(args.host, args.port).start()
    print(upstream.url, flush=True)
    print(f"  OpenAI base_url:    {upstream.openai_base_url}", flush=True)
    print(f"  Anthropic base_url: {upstream.anthropic_base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        upstream.stop()


if __name__ == "__main__":
    main()
