"""Codec for the Anthropic Messages API (`POST /v1/messages`).

Converts Messages traffic into the canonical OpenAI chat shape:

- `system` (a string or text blocks) becomes a leading system message;
- a user turn's `tool_result` blocks become `tool` messages, placed before what is left of the turn;
- an assistant turn's `tool_use` blocks become `tool_calls` with JSON-string arguments;
- `thinking`, `redacted_thinking` and server-tool blocks (`server_tool_use`, `web_search_tool_result`,
  …) are left out: they have no chat-format counterpart, and the raw bodies keep them;
- stop reasons, tool choice and parameters are renamed to their OpenAI chat names.

Pure: no I/O, no clock. Bodies that are not Messages bodies raise `CodecError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent_tracer import fastjson
from agent_tracer.canonical import CanonicalRequest, CanonicalResponse, Message
from agent_tracer.errors import CodecError

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "pause_turn",
}
"""Anthropic `stop_reason` → OpenAI `finish_reason`; an unknown reason is kept as it is."""

USER_TEXT_SEPARATOR = "\n\n"
"""Joins the text blocks of a user turn, a system prompt or a tool result: separate pieces of input."""

ASSISTANT_TEXT_SEPARATOR = ""
"""Joins the text blocks of an assistant turn: one continuous output that the API splits into blocks
(at citations, around tool calls), so joining them adds nothing, and a stream and a plain response
of the same answer give the same text."""

_EXCLUDED_SUFFIXES = ("/messages/count_tokens",)
_EXCLUDED_PARTS = ("/messages/batches", "/threads/")  # batches; OpenAI Assistants' thread messages


class AnthropicMessagesCodec:
    """The Anthropic Messages wire format."""

    api = "anthropic.messages"
    provider = "anthropic"
    operation = "chat"

    def matches(self, path: str) -> bool:
        path = path.split("?", 1)[0].rstrip("/")
        if any(part in path for part in _EXCLUDED_PARTS) or path.endswith(_EXCLUDED_SUFFIXES):
            return False
        return path.endswith("/messages")

    def decode_request(self, body: dict[str, Any]) -> CanonicalRequest:
        body = _require_dict(body, "request body")
        raw_messages = body.get("messages")
        if not isinstance(raw_messages, list):
            raise CodecError("Anthropic request has no 'messages' list")
        messages: list[Message] = []
        system = body.get("system")
        if system is not None:
            text = _text_of(system, "system", USER_TEXT_SEPARATOR)
            if text:
                messages.append({"role": "system", "content": text})
        for position, raw in enumerate(raw_messages):
            messages.extend(_decode_message(raw, position))
        return CanonicalRequest(
            model=_optional_str(body.get("model"), "model"),
            messages=messages,
            tools=[_decode_tool(tool) for tool in _list_of(body.get("tools"), "tools")],
            params=_decode_params(body),
            stream=bool(body.get("stream", False)),
        )

    def decode_response(self, body: dict[str, Any]) -> CanonicalResponse:
        body = _require_dict(body, "response body")
        if body.get("type") == "error":
            raise CodecError(f"Anthropic error body, not a message: {_error_text(body)}")
        content = body.get("content")
        if not isinstance(content, list):
            raise CodecError("Anthropic response has no 'content' list")
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for block in content:
            block = _require_dict(block, "response content block")
            kind = block.get("type")
            if kind == "text":
                texts.append(_require_str(block.get("text"), "text block 'text'"))
            elif kind == "tool_use":
                tool_calls.append(_tool_call(block, _arguments(block.get("input", {}))))
        usage = body.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        stop_reason = body.get("stop_reason")
        return CanonicalResponse(
            id=_optional_str(body.get("id"), "id"),
            model=_optional_str(body.get("model"), "model"),
            message=_assistant_message(texts if texts else None, tool_calls),
            finish_reasons=[_finish_reason(stop_reason)] if stop_reason else [],
            input_tokens=_input_tokens(usage),
            output_tokens=_int_or_none(usage.get("output_tokens")),
        )

    def stream_accumulator(self) -> AnthropicStreamAccumulator:
        return AnthropicStreamAccumulator()


@dataclass
class _Block:
    """One content block of a streamed message, as far as it has arrived."""

    kind: str
    text: str = ""
    tool_id: str | None = None
    tool_name: str | None = None
    partial_json: list[str] = field(default_factory=list)


class AnthropicStreamAccumulator:
    """Rebuilds a Messages response from its server-sent events.

    `error` holds the message of an `error` event (the response stays partial); `done` turns true at
    `message_stop`.
    """

    def __init__(self) -> None:
        self.error: str | None = None
        self.error_type: str | None = None
        self.done = False
        self._id: str | None = None
        self._model: str | None = None
        self._stop_reason: str | None = None
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
        self._blocks: dict[int, _Block] = {}

    def add(self, event: str | None, data: str) -> bool:
        if not data or not data.strip():
            return False
        try:
            payload = fastjson.loads(data)
        except ValueError as exc:
            raise CodecError(f"Anthropic stream event {event or '?'} is not JSON: {exc}") from None
        payload = _require_dict(payload, "stream event")
        kind = payload.get("type") or event
        if kind == "message_start":
            self._message_start(_require_dict(payload.get("message"), "message_start 'message'"))
        elif kind == "content_block_start":
            return self._block_start(payload)
        elif kind == "content_block_delta":
            return self._block_delta(payload)
        elif kind == "message_delta":
            self._message_delta(payload)
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            error = payload.get("error")
            self.error_type = error.get("type") if isinstance(error, dict) else None
            self.error = _error_text(payload)
        # ping, content_block_stop and event types added later carry nothing to keep.
        return False

    def response(self) -> CanonicalResponse:
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for index in sorted(self._blocks):
            block = self._blocks[index]
            if block.kind == "text":
                texts.append(block.text)
            elif block.kind == "tool_use":
                block_dict = {"id": block.tool_id, "name": block.tool_name}
                tool_calls.append(_tool_call(block_dict, _streamed_arguments(block.partial_json)))
        return CanonicalResponse(
            id=self._id,
            model=self._model,
            message=_assistant_message(texts if texts else None, tool_calls),
            finish_reasons=[_finish_reason(self._stop_reason)] if self._stop_reason else [],
            input_tokens=self._input_tokens,
            output_tokens=self._output_tokens,
        )

    def _message_start(self, message: dict[str, Any]) -> None:
        self._id = _optional_str(message.get("id"), "message id")
        self._model = _optional_str(message.get("model"), "message model")
        self._stop_reason = message.get("stop_reason") or self._stop_reason
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._input_tokens = _input_tokens(usage)
            self._output_tokens = _int_or_none(usage.get("output_tokens"))

    def _block_start(self, payload: dict[str, Any]) -> bool:
        index = _block_index(payload)
        content = _require_dict(payload.get("content_block"), "content_block_start 'content_block'")
        kind = content.get("type")
        if kind == "text":
            block = _Block("text", text=_require_str(content.get("text", ""), "text block 'text'"))
            self._blocks[index] = block
            return bool(block.text)
        if kind == "tool_use":
            self._blocks[index] = _Block("tool_use", tool_id=content.get("id"), tool_name=content.get("name"))
            return True
        self._blocks[index] = _Block(str(kind))  # thinking, server tools: tracked, never output
        return False

    def _block_delta(self, payload: dict[str, Any]) -> bool:
        index = _block_index(payload)
        delta = _require_dict(payload.get("delta"), "content_block_delta 'delta'")
        kind = delta.get("type")
        block = self._blocks.get(index)
        if kind == "text_delta":
            if block is None:  # a delta without its start: keep the text anyway
                block = self._blocks[index] = _Block("text")
            if block.kind != "text":
                return False
            text = _require_str(delta.get("text", ""), "text_delta 'text'")
            block.text += text
            return bool(text)
        if kind == "input_json_delta":
            if block is None or block.kind != "tool_use":
                return False
            piece = _require_str(delta.get("partial_json", ""), "input_json_delta 'partial_json'")
            block.partial_json.append(piece)
            return bool(piece)
        return False  # thinking_delta, signature_delta, citations_delta

    def _message_delta(self, payload: dict[str, Any]) -> None:
        delta = payload.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason"):
            self._stop_reason = delta["stop_reason"]
        usage = payload.get("usage")
        if isinstance(usage, dict):
            # Counts here are cumulative: the latest wins. Input counts appear only sometimes.
            if usage.get("output_tokens") is not None:
                self._output_tokens = _int_or_none(usage["output_tokens"])
            if usage.get("input_tokens") is not None:
                self._input_tokens = _input_tokens(usage)


# --- requests -------------------------------------------------------------------------------------


def _decode_message(raw: Any, position: int) -> list[Message]:
    """One Anthropic turn → one or more chat messages (tool results split out of a user turn)."""
    raw = _require_dict(raw, f"messages[{position}]")
    role = raw.get("role")
    content = raw.get("content")
    if not isinstance(content, (str, list)):
        raise CodecError(f"messages[{position}] content is neither a string nor a list of blocks")
    if role == "system":
        return [{"role": "system", "content": _text_of(content, "system message", USER_TEXT_SEPARATOR)}]
    if role == "user":
        return _decode_user(content, position)
    if role == "assistant":
        return [_decode_assistant(content, position)]
    raise CodecError(f"messages[{position}] has unknown role {role!r}")


def _decode_user(content: str | list[Any], position: int) -> list[Message]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tool_messages: list[Message] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        block = _require_dict(block, f"messages[{position}] content block")
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _require_str(block.get("text"), "text block 'text'")})
        elif kind == "image":
            part = _image_part(block)
            if part is not None:
                parts.append(part)
        elif kind == "tool_result":
            tool_messages.append(_tool_message(block))
        elif kind == "document":
            part = _document_part(block)
            if part is not None:
                parts.append(part)
        # search_result, container_upload and other blocks have no chat-format counterpart.
    messages = list(tool_messages)
    if parts or not tool_messages:
        messages.append({"role": "user", "content": _user_content(parts)})
    return messages


def _user_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only turns become one string; turns with images or files keep the parts list."""
    if all(part["type"] == "text" for part in parts):
        return USER_TEXT_SEPARATOR.join(part["text"] for part in parts)
    return parts


def _image_part(block: dict[str, Any]) -> dict[str, Any] | None:
    source = _require_dict(block.get("source"), "image block 'source'")
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'application/octet-stream')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = _require_str(source.get("url"), "image source 'url'")
    else:  # a Files API id has no URL to give
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: dict[str, Any]) -> dict[str, Any] | None:
    """A plain-text document becomes text; a base64 or uploaded PDF an OpenAI `file` part."""
    source = _require_dict(block.get("source"), "document block 'source'")
    kind = source.get("type")
    if kind == "text":
        return {"type": "text", "text": _require_str(source.get("data"), "document source 'data'")}
    if kind == "content":
        return {"type": "text", "text": _text_of(source.get("content", ""), "document", USER_TEXT_SEPARATOR)}
    if kind == "base64":
        media = source.get("media_type", "application/pdf")
        file: dict[str, Any] = {"file_data": f"data:{media};base64,{source.get('data', '')}"}
    elif kind == "file":
        file = {"file_id": source.get("file_id")}
    else:  # url documents: OpenAI file parts cannot point at a URL
        return None
    if block.get("title"):
        file["filename"] = block["title"]
    return {"type": "file", "file": file}


def _tool_message(block: dict[str, Any]) -> Message:
    tool_use_id = _require_str(block.get("tool_use_id"), "tool_result 'tool_use_id'")
    message: Message = {
        "role": "tool",
        "tool_call_id": tool_use_id,
        "content": _text_of(block.get("content", ""), "tool_result content", USER_TEXT_SEPARATOR),
    }
    if block.get("is_error") is True:
        message["is_error"] = True
    return message


def _decode_assistant(content: str | list[Any], position: int) -> Message:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in content:
        block = _require_dict(block, f"messages[{position}] content block")
        kind = block.get("type")
        if kind == "text":
            texts.append(_require_str(block.get("text"), "text block 'text'"))
        elif kind == "tool_use":
            tool_calls.append(_tool_call(block, _arguments(block.get("input", {}))))
        # thinking, redacted_thinking and server-tool blocks are left out.
    return _assistant_message(texts if texts else None, tool_calls)


def _decode_tool(tool: Any) -> dict[str, Any]:
    """A client tool becomes a function spec; a server tool (`web_search_20250305`, …) stays as is."""
    tool = _require_dict(tool, "tool")
    if "input_schema" not in tool or tool.get("type") not in (None, "custom"):
        return tool
    function: dict[str, Any] = {"name": _require_str(tool.get("name"), "tool 'name'")}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    function["parameters"] = tool["input_schema"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _decode_params(body: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in ("temperature", "top_p", "top_k", "max_tokens"):
        if body.get(name) is not None:
            params[name] = body[name]
    if body.get("stop_sequences") is not None:
        params["stop"] = body["stop_sequences"]
    choice = body.get("tool_choice")
    if choice is not None:
        choice = _require_dict(choice, "tool_choice")
        params["tool_choice"] = _tool_choice(choice)
        if choice.get("disable_parallel_tool_use") is True:
            params["parallel_tool_calls"] = False
    return params


def _tool_choice(choice: dict[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool":
        name = _require_str(choice.get("name"), "tool_choice 'name'")
        return {"type": "function", "function": {"name": name}}
    return choice  # a kind added later: kept in Anthropic terms rather than guessed at


# --- shared pieces --------------------------------------------------------------------------------


def _assistant_message(texts: list[str] | None, tool_calls: list[dict[str, Any]]) -> Message:
    message: Message = {
        "role": "assistant",
        "content": ASSISTANT_TEXT_SEPARATOR.join(texts) if texts is not None else None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tool_call(block: dict[str, Any], arguments: str) -> dict[str, Any]:
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": arguments},
    }


def _arguments(tool_input: Any) -> str:
    """A `tool_use` input as the JSON string OpenAI logs hold (non-ASCII kept, as the API sends it)."""
    return json.dumps(tool_input, ensure_ascii=False)


def _streamed_arguments(pieces: list[str]) -> str:
    """Streamed `partial_json` pieces joined; normalised like `_arguments` when the result parses
    (so a stream and a plain response give the same string), kept raw when it does not."""
    raw = "".join(pieces)
    if not raw.strip():
        return "{}"
    try:
        return _arguments(fastjson.loads(raw))
    except ValueError:
        return raw


def _finish_reason(stop_reason: Any) -> str:
    return STOP_REASONS.get(stop_reason, str(stop_reason))


def _input_tokens(usage: dict[str, Any]) -> int | None:
    """All prompt tokens: uncached input plus cache writes plus cache reads."""
    counts = [
        _int_or_none(usage.get(name))
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    present = [count for count in counts if count is not None]
    return sum(present) if present else None


def _text_of(content: Any, what: str, separator: str) -> str:
    """A string, or the text of a list of blocks (other blocks skipped)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise CodecError(f"{what} is neither a string nor a list of blocks")
    texts = []
    for block in content:
        block = _require_dict(block, f"{what} block")
        if block.get("type") == "text":
            texts.append(_require_str(block.get("text"), f"{what} text"))
    return separator.join(texts)


def _error_text(payload: dict[str, Any]) -> str:
    error = payload.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return json.dumps(payload, ensure_ascii=False)


def _block_index(payload: dict[str, Any]) -> int:
    index = payload.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise CodecError(f"Anthropic {payload.get('type')} event has no integer 'index'")
    return index


def _list_of(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CodecError(f"Anthropic request '{what}' is not a list")
    return value


def _require_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CodecError(f"Anthropic {what} is not a JSON object")
    return value


def _require_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise CodecError(f"Anthropic {what} is not a string")
    return value


def _optional_str(value: Any, what: str) -> str | None:
    return None if value is None else _require_str(value, what)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
