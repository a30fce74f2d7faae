"""Codec for the OpenAI Responses API (`POST …/responses`), converted to chat format.

Request: `instructions` becomes a system message, `input` (a string, or a list of items) becomes
chat messages:
- message items (user, system, developer, assistant) → messages; text parts (`input_text`,
  `output_text`) are joined into a string, and when images, files or audio come along the content
  becomes a chat part list instead;
- `function_call` items → `tool_calls` of an assistant message (`call_id` is the id), merged with
  the assistant message or calls just before them, as one chat turn holds text and calls;
  `custom_tool_call` items likewise, in the chat `custom` shape;
- `function_call_output` / `custom_tool_call_output` → `{"role": "tool", "tool_call_id", "content"}`;
- other items (reasoning, item references, hosted tool calls) have no chat form and are left out
  (the raw body keeps them).
Function tools move from the flat `{type, name, description, parameters}` to the chat shape.

Response: the `output` items become one assistant message. A stream is rebuilt from the typed
events; the `response.completed` / `.incomplete` / `.failed` event carries the whole response,
which then wins over what was assembled.
"""

from __future__ import annotations

from typing import Any

from agent_tracer import fastjson
from agent_tracer.canonical import CanonicalRequest, CanonicalResponse, Message
from agent_tracer.errors import CodecError

__all__ = ["OpenAIResponsesCodec", "ResponsesStreamAccumulator"]

_BAD_BODY = (KeyError, TypeError, ValueError, AttributeError, IndexError)
"""What a body of the wrong shape raises while it is taken apart; turned into `CodecError`."""

_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"})
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


# --- request ---------------------------------------------------------------------------------


def _chat_part(part: dict[str, Any]) -> dict[str, Any]:
    """A Responses content part in chat-completions part form."""
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": part["text"]}
    if kind == "refusal":
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image":
        image: dict[str, Any] = {"url": part.get("image_url") or part.get("file_id")}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        file = {key: part[key] for key in ("file_id", "filename", "file_data", "file_url") if part.get(key)}
        return {"type": "file", "file": file}
    return dict(part)


def _content(content: Any) -> Any:
    """Message or tool-output content: a string stays; text parts join into one string; other
    parts (images, files, audio) make a chat part list."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TypeError(f"content is {type(content).__name__}")
    parts = [_chat_part(part) for part in content]
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _call_output(item: dict[str, Any]) -> Message:
    return {"role": "tool", "tool_call_id": item.get("call_id"), "content": _content(item["output"])}


def _tool_call(item: dict[str, Any]) -> dict[str, Any]:
    if item["type"] == "custom_tool_call":
        return {"id": item["call_id"], "type": "custom", "custom": {"name": item["name"], "input": item["input"]}}
    return {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item.get("arguments") or ""},
    }


def _decode_items(items: list[Any], messages: list[Message]) -> None:
    """Append the chat messages for Responses input items to `messages`."""
    if not isinstance(items, list):
        raise TypeError(f"input is {type(items).__name__}, not a string or a list")
    for item in items:
        kind = item.get("type")
        if kind == "message" or (kind is None and "role" in item):
            message: Message = {"role": item["role"], "content": _content(item["content"])}
            messages.append(message)
        elif kind in ("function_call", "custom_tool_call"):
            call = _tool_call(item)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
                if last["content"] == "":
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append(_call_output(item))


def _decode_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return tool
    function = {key: tool[key] for key in ("name", "description", "parameters", "strict") if tool.get(key) is not None}
    return {"type": "function", "function": function}


def _decode_params(body: dict[str, Any]) -> dict[str, Any]:
    params = {
        name: body[name] for name in ("temperature", "top_p", "parallel_tool_calls") if body.get(name) is not None
    }
    if body.get("max_output_tokens") is not None:
        params["max_tokens"] = body["max_output_tokens"]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        choice = {"type": "function", "function": {"name": choice["name"]}}
    if choice is not None:
        params["tool_choice"] = choice
    return params


# --- response --------------------------------------------------------------------------------


def _finish_reasons(status: str | None, incomplete: dict[str, Any] | None, has_calls: bool) -> list[str]:
    """Chat finish reasons for a response status: truncation wins over a (possibly cut) call."""
    if status == "incomplete":
        reason = (incomplete or {}).get("reason")
        return ["content_filter" if reason == "content_filter" else "length"]
    if status in (None, "completed"):
        return ["tool_calls" if has_calls else "stop"]
    return []  # failed, cancelled, queued, in_progress: no natural end


def _assistant_message(texts: list[str], refusals: list[str], calls: list[dict[str, Any]]) -> Message:
    message: Message = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    if refusals:
        message["refusal"] = "".join(refusals)
    return message


def _decode_response(body: dict[str, Any]) -> CanonicalResponse:
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in body.get("output") or ():
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(part["text"])
                elif part.get("type") == "refusal":
                    refusals.append(part["refusal"])
        elif kind in ("function_call", "custom_tool_call"):
            calls.append(_tool_call(item))
    usage = body.get("usage") or {}
    return CanonicalResponse(
        id=body.get("id"),
        model=body.get("model"),
        message=_assistant_message(texts, refusals, calls),
        finish_reasons=_finish_reasons(body.get("status"), body.get("incomplete_details"), bool(calls)),
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
    )


class OpenAIResponsesCodec:
    """Responses API ↔ canonical call (chat format)."""

    api = "openai.responses"
    provider = "openai"
    operation = "chat"

    def matches(self, path: str) -> bool:
        return path.partition("?")[0].rstrip("/").endswith("/responses")

    def decode_request(self, body: dict[str, Any]) -> CanonicalRequest:
        try:
            messages: list[Message] = []
            instructions = body.get("instructions")
            if isinstance(instructions, str):
                messages.append({"role": "system", "content": instructions})
            elif instructions is not None:
                _decode_items(instructions, messages)
            source = body.get("input")
            if isinstance(source, str):
                messages.append({"role": "user", "content": source})
            elif source is not None:
                _decode_items(source, messages)
            return CanonicalRequest(
                model=body.get("model"),
                messages=messages,
                tools=[_decode_tool(tool) for tool in body.get("tools") or ()],
                params=_decode_params(body),
                stream=bool(body.get("stream")),
            )
        except _BAD_BODY as exc:
            raise CodecError(f"not a Responses request: {exc!r}") from exc

    def decode_response(self, body: dict[str, Any]) -> CanonicalResponse:
        try:
            return _decode_response(body)
        except _BAD_BODY as exc:
            raise CodecError(f"not a Responses response: {exc!r}") from exc

    def stream_accumulator(self) -> ResponsesStreamAccumulator:
        return ResponsesStreamAccumulator()


# --- stream ----------------------------------------------------------------------------------


class _Item:
    """One output item as its events arrive: a message's text, or a tool call."""

    __slots__ = ("kind", "text", "refusal", "call_id", "name", "arguments")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.text: dict[int, list[str]] = {}
        self.refusal: list[str] = []
        self.call_id: str | None = None
        self.name = ""
        self.arguments: list[str] = []

    def take_call(self, item: dict[str, Any]) -> None:
        self.call_id = item.get("call_id") or self.call_id
        self.name = item.get("name") or self.name
        value = item.get("input" if self.kind == "custom_tool_call" else "arguments")
        if value:
            self.arguments = [value]

    def tool_call(self) -> dict[str, Any]:
        arguments = "".join(self.arguments)
        if self.kind == "custom_tool_call":
            return {"id": self.call_id, "type": "custom", "custom": {"name": self.name, "input": arguments}}
        return {"id": self.call_id, "type": "function", "function": {"name": self.name, "arguments": arguments}}


class ResponsesStreamAccumulator:
    """Rebuilds a response from Responses streaming events."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.error: str | None = None
        """The message of an `error` event, if the stream carried one."""
        self.done = False
        """True once a final event (completed, incomplete, failed) or `[DONE]` arrived."""
        self._items: dict[int, _Item] = {}
        self._final: CanonicalResponse | None = None

    def add(self, event: str | None, data: str) -> bool:
        if data == "[DONE]":
            self.done = True
            return False
        try:
            payload = fastjson.loads(data)
            return self._add(payload.get("type") or event, payload)
        except _BAD_BODY as exc:
            raise CodecError(f"not a Responses stream event: {exc!r}") from exc

    def _item(self, payload: dict[str, Any], kind: str) -> _Item:
        index = payload.get("output_index") or 0
        item = self._items.get(index)
        if item is None:
            item = self._items[index] = _Item(kind)
        return item

    def _add(self, kind: str | None, payload: dict[str, Any]) -> bool:
        if kind == "response.output_text.delta":
            pieces = self._item(payload, "message").text.setdefault(payload.get("content_index") or 0, [])
            pieces.append(payload["delta"])
            return bool(payload["delta"])
        if kind == "response.function_call_arguments.delta":
            self._item(payload, "function_call").arguments.append(payload["delta"])
            return bool(payload["delta"])
        if kind == "response.custom_tool_call_input.delta":
            self._item(payload, "custom_tool_call").arguments.append(payload["delta"])
            return bool(payload["delta"])
        if kind == "response.output_item.added" or kind == "response.output_item.done":
            raw = payload["item"]
            item = self._item(payload, raw.get("type") or "message")
            item.kind = raw.get("type") or item.kind
            if item.kind in ("function_call", "custom_tool_call"):
                item.take_call(raw)
                return kind == "response.output_item.added"
            if item.kind == "message" and kind == "response.output_item.done":
                for index, part in enumerate(raw.get("content") or ()):
                    if part.get("type") == "output_text":
                        item.text[index] = [part["text"]]
                    elif part.get("type") == "refusal":
                        item.refusal = [part["refusal"]]
            return False
        if kind == "response.function_call_arguments.done":
            self._item(payload, "function_call").arguments = [payload["arguments"]]
            return False
        if kind == "response.custom_tool_call_input.done":
            self._item(payload, "custom_tool_call").arguments = [payload["input"]]
            return False
        if kind == "response.output_text.done":
            self._item(payload, "message").text[payload.get("content_index") or 0] = [payload["text"]]
            return False
        if kind == "response.refusal.delta":
            self._item(payload, "message").refusal.append(payload["delta"])
            return bool(payload["delta"])
        if kind == "response.refusal.done":
            self._item(payload, "message").refusal = [payload["refusal"]]
            return False
        if kind in _FINAL_EVENTS:
            self.done = True
            self._take_response(payload["response"], final=True)
            return False
        if kind in ("response.created", "response.in_progress", "response.queued"):
            self._take_response(payload["response"], final=False)
            return False
        if kind == "error":
            self.error = str(payload.get("message") or payload)
        return False

    def _take_response(self, body: dict[str, Any], final: bool) -> None:
        self.id = body.get("id") or self.id
        self.model = body.get("model") or self.model
        if final:
            self._final = _decode_response(body)

    def _assembled(self) -> Message:
        texts: list[str] = []
        refusals: list[str] = []
        calls: list[dict[str, Any]] = []
        for index in sorted(self._items):
            item = self._items[index]
            if item.kind == "message":
                texts.extend(piece for part in sorted(item.text) for piece in item.text[part])
                refusals.extend(item.refusal)
            elif item.kind in ("function_call", "custom_tool_call"):
                calls.append(item.tool_call())
        return _assistant_message(texts, refusals, calls)

    def response(self) -> CanonicalResponse:
        final = self._final
        if final is None:
            return CanonicalResponse(id=self.id, model=self.model, message=self._assembled())
        if final.message.get("content") is None and not final.tool_calls and self._items:
            final.message = self._assembled()  # a failed response may report no output it did stream
        return final
