"""What the fake upstream answers, in each API's own wire shapes.

`upstream.py` is the HTTP server; this module decides the answer for a request and its scenario
(text or tool calls, token counts) and dresses it as a Chat Completions, Responses or Anthropic
Messages body or event stream, exactly as the official SDKs parse them.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from integrations import openai_chat, sse

SCENARIO_HEADER = "x-fake-scenario"
"""The request header that selects a scenario."""

MODELS = ("gpt-4o-mini", "gpt-4.1", "claude-haiku-4-5")
"""The ids `GET /v1/models` lists."""

_ARG_PIECE = 8
"""Characters of tool-call arguments per stream delta."""

CUT_AFTER = 3
"""Stream events sent before the `cut` scenario drops the connection."""

_JSON_SEPARATORS = (",", ":")


def new_id(prefix: str, nbytes: int = 12) -> str:
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
    bad_tool: str | None = None

    @classmethod
    def parse(cls, header: str | None) -> Scenario:
        """Parse a header value; raises ValueError for anything unknown."""
        fields: dict[str, Any] = {}
        for token in (header or "").split(","):
            name, _, arg = token.strip().partition(":")
            name = name.lower()
            if not name:
                continue
            if name in ("auto", "text", "parallel_tools", "empty", "tool_text") and not arg:
                fields["mode"] = name
            elif name == "bad_tool" and arg in BAD_TOOL_KINDS:
                fields["bad_tool"] = arg
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


def view_chat(body: dict[str, Any]) -> _View:
    view = _view_of(_as_list(body.get("messages")))
    for tool in _as_list(body.get("tools")):
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and tool.get("type", "function") == "function" and "name" in function:
            view.tools.append((function["name"], function.get("parameters") or {}))
    return view


def view_responses(body: dict[str, Any]) -> _View:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    view = _view_of(_as_list(items), body.get("instructions"))
    for tool in _as_list(body.get("tools")):
        if isinstance(tool, dict) and tool.get("type") == "function" and "name" in tool:
            view.tools.append((tool["name"], tool.get("parameters") or {}))
    return view


def view_messages(body: dict[str, Any]) -> _View:
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


@dataclass
class Reply:
    """A scripted answer: what a `FakeUpstream(reply=…)` hook returns for a request, in place of
    the answer its scenario would give."""

    content: str | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)
    """(name, arguments): a dict, or the text sent as it is (malformed JSON, say)."""
    prompt_tokens: int | None = None
    """None: counted as for a scenario (words of the messages); so is `completion_tokens`."""
    completion_tokens: int | None = None
    model: str | None = None
    """The model the answer names; None: the request's."""
    delay: float = 0.0
    """Seconds to wait before answering."""
    status: int = 200
    """Another status answers with the API's error body, saying `error`."""
    error: str = "scripted failure"
    body: bytes | None = None
    """Sent as it is, with `status` and `content_type`, instead of an answer (a gateway's HTML page, say)."""
    content_type: str = "application/json"


def decide_answer(
    view: _View, body: dict[str, Any], scenario: Scenario, call_prefix: str, reply: Reply | None = None
) -> _Answer:
    after_tools = view.tool_results is not None
    echo = f"Echo: {' '.join(view.tool_results or []) if after_tools else view.last_user_text}"
    tools = view.tools
    named: list[tuple[str, Any]]
    if reply is not None:
        named, text = reply.calls, reply.content
    elif scenario.mode == "parallel_tools" and tools:
        named = [(name, example_arguments(schema)) for name, schema in (tools[0], tools[1 if len(tools) > 1 else 0])]
        text = echo
    elif (scenario.mode == "auto" or scenario.bad_tool) and tools and not after_tools:
        named, text = [(tools[0][0], example_arguments(tools[0][1]))], None
    else:
        named, text = [], {"empty": "", "tool_text": '<tool_call>{"name": "unfinished'}.get(scenario.mode, echo)
    calls = [
        _Call(
            name=name,
            arguments=arguments if isinstance(arguments, str) else json.dumps(arguments, separators=_JSON_SEPARATORS),
            call_id=new_id(call_prefix),
            item_id=new_id("fc_"),
        )
        for name, arguments in named
    ]
    if calls and scenario.bad_tool:
        calls[0] = _bad_call(calls[0], scenario.bad_tool)
    input_tokens = _count_words(view.texts)
    output_tokens = (len(text.split()) if text else 0) + sum(len(c.arguments) // 4 + 1 for c in calls)
    if reply is not None:
        input_tokens = input_tokens if reply.prompt_tokens is None else reply.prompt_tokens
        output_tokens = output_tokens if reply.completion_tokens is None else reply.completion_tokens
    return _Answer(
        model=(reply and reply.model) or str(body.get("model") or "fake-model"),
        text=text,
        calls=calls,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


BAD_TOOL_KINDS = ("unknown", "json", "schema")
"""`bad_tool:KIND`: the first call names a tool the request lacks, has arguments that are not
JSON, or has arguments missing the tool's required properties."""


def _bad_call(call: _Call, kind: str) -> _Call:
    if kind == "unknown":
        return replace(call, name=f"not_{call.name}")
    return replace(call, arguments="{not json" if kind == "json" else "{}")


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


# ------------------------------------------------------------------------------------------------
# OpenAI Chat Completions


_OPENAI_FIELDS = {"service_tier": "default", "system_fingerprint": "fp_fake"}
"""Top-level fields the API adds to every answer and chunk."""


def _chat_usage(answer: _Answer) -> dict[str, Any]:
    return {
        **openai_chat.usage(answer.input_tokens, answer.output_tokens),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_calls(answer: _Answer) -> list[dict[str, Any]]:
    return [
        {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in answer.calls
    ]


def chat_completion(answer: _Answer) -> dict[str, Any]:
    finish_reason = "tool_calls" if answer.calls else "stop"
    body = openai_chat.completion(
        new_id("chatcmpl-"),
        int(time.time()),
        answer.model,
        answer.text,
        _chat_calls(answer),
        finish_reason,
        _chat_usage(answer),
        **_OPENAI_FIELDS,
    )
    body["choices"][0]["message"]["annotations"] = []
    return body


def chat_stream(answer: _Answer, body: dict[str, Any]) -> list[bytes]:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    ident, created = new_id("chatcmpl-"), int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return sse.encode(
            openai_chat.chunk(ident, created, answer.model, delta, finish_reason, include_usage, **_OPENAI_FIELDS)
        )

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
        usage = openai_chat.usage_chunk(ident, created, answer.model, _chat_usage(answer), **_OPENAI_FIELDS)
        events.append(sse.encode(usage))
    events.append(openai_chat.STREAM_END)
    return events


# ------------------------------------------------------------------------------------------------
# OpenAI Responses API


class ResponsesBuilder:
    """One Responses API answer, with ids fixed so the plain object and every event agree."""

    def __init__(self, answer: _Answer, body: dict[str, Any]) -> None:
        self.answer = answer
        self.body = body
        self.id = new_id("resp_", 24)
        self.message_id = new_id("msg_", 24)
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
            events.append(sse.encode({"type": name, "sequence_number": len(events), **payload}, name))

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


def anthropic_message(answer: _Answer, message_id: str, done: bool) -> dict[str, Any]:
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


def anthropic_stream(answer: _Answer) -> list[bytes]:
    events: list[bytes] = []

    def emit(name: str, /, **payload: Any) -> None:
        events.append(sse.encode({"type": name, **payload}, name))

    emit("message_start", message=anthropic_message(answer, new_id("msg_"), done=False))
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
# Google Gemini API (`generateContent`, as google-genai sends it)


GEMINI_PATH = re.compile(r"^/v1(?:beta|alpha)?/models/(?P<model>[^/:]+):generateContent$")
"""The Gemini API's `generateContent` path: the model is in it, not in the body."""


def view_gemini(body: dict[str, Any]) -> _View:
    """Gemini's `contents` (roles "user" / "model", parts `text`, `functionCall`, `functionResponse`)
    seen as the other formats are: texts, the last user text, trailing tool results, tools."""
    view = _View(texts=_content_texts((body.get("systemInstruction") or {}).get("parts")))
    contents = [c for c in _as_list(body.get("contents")) if isinstance(c, dict)]
    for content in contents:
        parts = [p for p in _as_list(content.get("parts")) if isinstance(p, dict)]
        view.texts.extend(p["text"] for p in parts if isinstance(p.get("text"), str))
        if content.get("role", "user") == "user" and any(isinstance(p.get("text"), str) for p in parts):
            view.last_user_text = " ".join(p["text"] for p in parts if isinstance(p.get("text"), str))
    last = contents[-1] if contents else {}
    responses = [
        p["functionResponse"] for p in _as_list(last.get("parts")) if isinstance(p, dict) and "functionResponse" in p
    ]
    if responses:
        view.tool_results = [json.dumps(r.get("response"), separators=_JSON_SEPARATORS) for r in responses]
    for tool in _as_list(body.get("tools")):
        for function in _as_list(tool.get("functionDeclarations") if isinstance(tool, dict) else None):
            if isinstance(function, dict) and "name" in function:
                schema = function.get("parameters") or function.get("parametersJsonSchema") or {}
                view.tools.append((function["name"], schema))
    return view


def gemini_response(answer: _Answer) -> dict[str, Any]:
    """A `GenerateContentResponse`: one candidate whose parts are the text and the function calls
    (without ids, as the Gemini API sends them)."""
    parts: list[dict[str, Any]] = [{"text": answer.text}] if answer.text else []
    parts += [{"functionCall": {"name": c.name, "args": json.loads(c.arguments)}} for c in answer.calls]
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": answer.input_tokens,
            "candidatesTokenCount": answer.output_tokens,
            "totalTokenCount": answer.input_tokens + answer.output_tokens,
        },
        "modelVersion": answer.model,
        "responseId": new_id("", 16),
    }
