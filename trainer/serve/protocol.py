"""The Chat Completions wire format as the server reads it: a request body checked and read, and
the error shape (answers and stream chunks are written by `integrations.openai_chat`).

`tool_choice` is honoured: "none" offers no tools, "required" or a named function makes the answer
open with a call (to that function), held to the tools' schemas (`trainer.serve.guided`). Fields the
server cannot honour but a client may send anyway (`response_format`, penalties, `logprobs`, `user`)
are accepted and not acted on: the proxy in front judges whether the answer did what they asked,
and falls back when not. Nor is `model` checked:
one model is served, and answers carry its served name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent_tracer.messages import ROLES


class RequestError(Exception):
    """A request the server will not run (400); `message` is one sentence for the client."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


@dataclass
class ChatRequest:
    """A checked request: messages and tools as the chat template takes them, and its settings."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    call_required: bool = False
    """tool_choice "required" or a named function: the answer must open with a call."""
    named_tool: str | None = None
    """tool_choice naming one function: the call must be to it."""
    stream: bool = False
    include_usage: bool = False
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


def parse_request(body: bytes) -> ChatRequest:
    """The request in `body`, or `RequestError` saying what is wrong with it."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RequestError("The request body must be a JSON object.", code="invalid_json")
    n = data.get("n")
    if n is not None and n != 1:
        raise RequestError("n must be 1: this server writes one answer per request.", "n", "invalid_value")
    choice = data.get("tool_choice")
    tools = [] if choice == "none" else _tools(data.get("tools"))
    named = _named_tool(choice, tools)
    return ChatRequest(
        messages=_messages(data.get("messages")),
        tools=tools,
        call_required=bool(tools) and (choice == "required" or named is not None),
        named_tool=named,
        stream=_typed(data, "stream", bool, False),
        include_usage=bool(_typed(data, "stream_options", dict, {}).get("include_usage")),
        max_tokens=_max_tokens(data),
        temperature=_number(data, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(data, "top_p", 1.0, 0.0, 1.0, low_open=True),
        stop=_stop(data.get("stop")),
        seed=_typed(data, "seed", int, None),
    )


def _messages(value: Any) -> list[dict[str, Any]]:
    """The messages in the chat template's form (`trainer.data.rows.trl_messages`, as training
    had them: text content, tool-call arguments as objects, "developer" as "system")."""
    from trainer.data.rows import NotTrainable, trl_messages

    if not isinstance(value, list) or not value:
        raise RequestError("messages must be a non-empty list of messages.", "messages", "invalid_value")
    for message in value:
        if not isinstance(message, dict):
            raise RequestError("Each message must be a JSON object with a role.", "messages", "invalid_value")
        if message.get("role") not in ROLES:
            raise RequestError(
                f"Unknown role {str(message.get('role'))[:40]!r}: a message's role is one of {', '.join(ROLES)}.",
                "messages",
                "invalid_value",
            )
    try:
        return trl_messages(value, answered=False)
    except NotTrainable as exc:
        raise RequestError(f"The conversation {exc}.", "messages", "invalid_value") from None


def _tools(value: Any) -> list[dict[str, Any]]:
    from trainer.data.rows import NotTrainable, trl_tools

    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(tool, dict) for tool in value):
        raise RequestError("tools must be a list of function tools.", "tools", "invalid_value")
    try:
        return trl_tools(value)
    except NotTrainable as exc:
        raise RequestError(f"The request {exc}.", "tools", "invalid_value") from None


def _named_tool(choice: Any, tools: list[dict[str, Any]]) -> str | None:
    """The function `tool_choice` names (`{"type": "function", "function": {"name": …}}`), checked
    against the tools offered; None for "auto", "required", "none" or no tool_choice."""
    if choice is None or choice in ("auto", "required", "none"):
        return None
    name = (
        choice.get("function", {}).get("name")
        if isinstance(choice, dict) and isinstance(choice.get("function"), dict)
        else None
    )
    if not isinstance(name, str):
        raise RequestError(
            'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": …}}.',
            "tool_choice",
            "invalid_value",
        )
    if name not in {tool["function"].get("name") for tool in tools}:
        raise RequestError(
            f"tool_choice names {name[:60]!r}, which is not among the tools.", "tool_choice", "invalid_value"
        )
    return name


def _max_tokens(data: dict[str, Any]) -> int | None:
    name = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    value = _typed(data, name, int, None)
    if value is not None and value < 1:
        raise RequestError(f"{name} must be at least 1.", name, "invalid_value")
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > 4:
        raise RequestError("stop must be a string or a list of up to 4 strings.", "stop", "invalid_value")
    return tuple(stops)


def _typed(data: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RequestError(f"{name} must be {'an' if kind is int else 'a'} {_TYPE_NAMES[kind]}.", name, "invalid_type")
    return value


_TYPE_NAMES = {bool: "boolean", int: "integer", dict: "object"}


def _number(data: dict[str, Any], name: str, default: float, low: float, high: float, low_open: bool = False) -> float:
    value = data.get(name)
    if value is None:
        return default
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not number or not (low < value <= high if low_open else low <= value <= high):
        bound = f"above {low:g} and at most {high:g}" if low_open else f"from {low:g} to {high:g}"
        raise RequestError(f"{name} must be a number {bound}.", name, "invalid_value")
    return float(value)
