"""What a message is, said once: roles, the text of a content in every shape the SDKs send, when two
messages are the same turn, what a tool call looks like, and what an API error body looks like.

Capture, the store's readers, datasets, training, serving, evaluation and the CLI all read and
write conversations in the canonical OpenAI chat shape (`canonical.py`); when each spelled out its
own roles or its own "text of a content", they drifted (a `developer` message served fine and made
an empty dataset). Every such rule lives here and is imported everywhere. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agent_tracer import fastjson

Message = dict[str, Any]
"""An OpenAI chat message: {"role", "content", optional "tool_calls", "tool_call_id", "name", "refusal"}."""

ROLES = ("system", "developer", "user", "assistant", "tool")
"""The roles a canonical message may have. `developer` is what OpenAI's current models call the
system message; it is kept as sent in the store and in exports."""

TEMPLATE_ROLES = {"developer": "system"}
"""Roles that chat templates (and so training rows and the served model) know by another name."""

TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
"""Content-part types that carry text under `text`: Chat Completions, and the Responses API's."""

REFUSAL_PART = "refusal"
"""A content part (or message field) holding a model's refusal, as text under `refusal`."""

REASONING_PARTS = frozenset({"thinking", "redacted_thinking", "reasoning"})
"""Content parts holding a model's reasoning rather than its answer (Anthropic's thinking blocks,
reasoning items). The codecs leave them out of the canonical call at capture (the raw bodies keep
them); a conversation from elsewhere that has them is trained without them, counted."""


class NotText(ValueError):
    """Content that is not only text (an image, audio, a file): `kind` names the first such part."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"has {kind} content, not only text")
        self.kind = kind


def template_role(role: Any) -> Any:
    """The role as chat templates know it: `developer` is `system`; others unchanged."""
    return TEMPLATE_ROLES.get(role, role)


def content_text(content: Any, *, placeholders: bool = False) -> str:
    """The text of a message's content, for reading and search: a string, or the text of its text
    and refusal parts; other parts (images, audio) are skipped, or shown as `[image_url]` with
    `placeholders` (for a person reading the conversation)."""
    if content is None or isinstance(content, str) or isinstance(content, list):
        return _text(content, _placeholder if placeholders else _skipped)
    return str(content)


def strict_text(content: Any) -> str:
    """The text of a content that must be text only (a training row, a prompt to serve): `NotText`
    for any part that is not text or a refusal, or for content of another type."""
    if content is None or isinstance(content, str) or isinstance(content, list):
        return _text(content, _refused)
    raise NotText(f"{type(content).__name__}-typed")


def _text(content: str | list[Any] | None, other: Callable[[Any], str]) -> str:
    """The text of a content: `other` says what a part that is not text stands for."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        text = _part_text(part) if isinstance(part, dict) else None
        texts.append(other(part) if text is None else text)
    return "".join(texts)


def _skipped(part: Any) -> str:
    return ""


def _placeholder(part: Any) -> str:
    return f"[{part.get('type') or 'part'}]" if isinstance(part, dict) else str(part)


def _refused(part: Any) -> str:
    raise NotText(str(part.get("type")) if isinstance(part, dict) else type(part).__name__)


def message_text(message: Message, *, placeholders: bool = False) -> str:
    """What a message says: its content's text (`content_text`), or its refusal when it has no
    content (an OpenAI refusal arrives in the `refusal` field with `content` null)."""
    content = message.get("content")
    if type(content) is str and content:  # most messages: plain text, read as it is
        return content
    text = content_text(content, placeholders=placeholders)
    refusal = message.get("refusal")
    return text if text or not isinstance(refusal, str) else refusal


def user_text(messages: list[Message]) -> str:
    """What the user said in a conversation: the text of its user messages, one per line (empty
    ones left out). Not the system prompt, not tool results: what a task is compared on."""
    return "\n".join(text for m in messages if m.get("role") == "user" and (text := message_text(m)))


def without_reasoning(content: Any) -> tuple[Any, bool]:
    """The content without its reasoning parts, and whether it had any."""
    if not isinstance(content, list):
        return content, False
    kept = [part for part in content if not (isinstance(part, dict) and part.get("type") in REASONING_PARTS)]
    return kept, len(kept) < len(content)


def _part_text(part: dict[str, Any]) -> str | None:
    kind = part.get("type", "text")
    if kind in TEXT_PARTS:
        text = part.get("text")
        return text if isinstance(text, str) else ""
    if kind == REFUSAL_PART:
        text = part.get(REFUSAL_PART)
        return text if isinstance(text, str) else ""
    return None


# ------------------------------------------------------------------------------------------------
# Identity


def message_key(message: Message) -> tuple[Any, ...]:
    """What makes two messages the same turn, whatever the agent changed when it sent the answer
    back: role, text (stripped; None and "" alike), tool calls by name and arguments (parsed, so
    re-serialised JSON compares equal), and which call a tool result answers. Used to join a run's
    calls into conversations and to show each message of a run once."""
    calls = []
    for call in message.get("tool_calls") or ():
        function = (call.get("function") if isinstance(call, dict) else None) or {}
        calls.append((function.get("name"), fastjson.dumps_sorted(parse_arguments(function.get("arguments")))))
    return message.get("role"), message_text(message).strip(), tuple(calls), message.get("tool_call_id")


# ------------------------------------------------------------------------------------------------
# Tool calls


def tool_call(call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    """A canonical tool call: arguments as the JSON string the OpenAI API sends."""
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments_json(arguments)}}
    return {"id": call_id, **call} if call_id is not None else call


def arguments_json(arguments: Any) -> str:
    """Tool-call arguments as a JSON string: a string is checked to be JSON (`ValueError` if not),
    anything else is serialised; none at all is "{}"."""
    if arguments is None or arguments == "":
        return "{}"
    if isinstance(arguments, str):
        json.loads(arguments)
        return arguments
    return fastjson.python_spaced(arguments)


def parse_arguments(arguments: Any) -> Any:
    """Tool-call arguments as a value: a JSON string parsed (left as the string when it is not
    JSON, which a caller may report), anything else as it is."""
    if isinstance(arguments, str):
        try:
            return fastjson.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def called_tools(messages: list[Message]) -> list[str]:
    """Names of the tools the assistant called, in order, repeats included ("?" for a call without one)."""
    return [
        ((call.get("function") if isinstance(call, dict) else None) or {}).get("name") or "?"
        for message in messages
        if message.get("role") == "assistant"
        for call in message.get("tool_calls") or ()
    ]


# ------------------------------------------------------------------------------------------------
# Error bodies


OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "unknown_url"),
    429: ("requests", "rate_limit_exceeded"),
}
"""OpenAI's error `type` and usual `code` by HTTP status; others are invalid_request_error (4xx)
or server_error (5xx)."""

ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""Anthropic's error `type` by HTTP status; others are invalid_request_error (4xx) or api_error (5xx)."""


def error_body(
    api: str, status: int, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """An error in the shape `api` ("openai" or "anthropic") writes its own, so the official SDKs
    raise their usual exception with `message` in it. `code` overrides OpenAI's usual one."""
    if api == "anthropic":
        kind = ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind, usual = OPENAI_ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": param, "code": code if code is not None else usual}}
