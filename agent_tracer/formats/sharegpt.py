"""ShareGPT JSONL: `{"conversations": [{"from": …, "value": …}], "tools": …, "system": …}` a line.

The variants in circulation are all accepted:
- turns under `conversations` or `messages`, each `{"from", "value"}` or `{"role", "content"}`;
- roles `system`, `human` / `user`, `gpt` / `assistant`, and LLaMA-Factory's tool turns:
  `function_call`, whose value is JSON `{"name", "arguments"}` (or a list of them, for parallel
  calls), and `observation` / `tool`, the result;
- `tools` as a JSON string or a list, of bare function specs or `{"type": "function", …}`;
- `system` as a top-level field (put first, unless the turns start with a system message).

Tool calls get ids `call_0`, `call_1`, … in conversation order, and each observation answers the
oldest call not answered yet, so results stay linked to their calls as OpenAI chat format wants.
"""

from __future__ import annotations

import json
from typing import Any

from agent_tracer.errors import CodecError
from agent_tracer.formats.examples import Example, content_key, tool_call
from agent_tracer.formats.imports import ExampleReader, ImportOptions, example_object, existing_file
from agent_tracer.messages import Message

FORMAT = "sharegpt"
ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "function_call": "function_call",
    "observation": "tool",
    "tool": "tool",
}
"""ShareGPT speaker → chat role ("function_call" becomes an assistant message with tool calls)."""


def open_sharegpt(file: str, options: ImportOptions) -> ExampleReader:
    path = existing_file(file)

    def parse(item: Any, number: int, line: str) -> Example:
        body = example_object(item, "conversations", "messages")
        meta: dict[str, Any] = {"format": FORMAT, "file": path.name, "line": number}
        if body.get("id") is not None:
            meta["id"] = body["id"]
        return Example(
            key=content_key(FORMAT, body),
            messages=sharegpt_messages(body),
            tools=_tools(body.get("tools")),
            name=path.stem,
            tags=[FORMAT],
            meta=meta,
            raw_request=line.strip(),
        )

    return ExampleReader(path, parse, options)


def sharegpt_messages(body: dict[str, Any]) -> list[Message]:
    """The conversation of a ShareGPT example in chat format; `CodecError` when it has none."""
    turns = [_turn(turn) for turn in body.get("conversations") or body.get("messages") or ()]
    messages: list[Message] = []
    system = body.get("system")
    if isinstance(system, str) and system.strip() and turns[0][0] != "system":
        messages.append({"role": "system", "content": system})
    unanswered: list[str] = []
    calls = 0
    for role, value in turns:
        if role == "function_call":
            called = []
            for call in _calls(value):
                called.append(tool_call(f"call_{calls}", call.get("name"), call.get("arguments")))
                calls += 1
            unanswered = [call["id"] for call in called]
            messages.append({"role": "assistant", "content": None, "tool_calls": called})
        elif role == "tool":
            if not unanswered:
                raise CodecError("an observation that answers no function call")
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            messages.append({"role": "tool", "tool_call_id": unanswered.pop(0), "content": text})
        elif isinstance(value, str):
            messages.append({"role": role, "content": value})
        else:
            raise CodecError(f"a {role} turn whose value is {type(value).__name__}, not text")
    return messages


def _turn(turn: Any) -> tuple[str, Any]:
    """A turn's chat role (or "function_call") and value, in either spelling of the keys."""
    if not isinstance(turn, dict):
        raise CodecError("a turn is not an object")
    speaker = turn.get("from", turn.get("role"))
    role = ROLES.get(speaker) if isinstance(speaker, str) else None
    if role is None:
        raise CodecError(f"a turn from {speaker!r} (expected one of {', '.join(ROLES)})")
    return role, turn.get("value", turn.get("content"))


def _calls(value: Any) -> list[dict[str, Any]]:
    """A function_call turn's calls: JSON `{"name", "arguments"}`, or a list of them."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise CodecError("a function_call turn whose value is not JSON") from None
    calls = value if isinstance(value, list) else [value]
    if not calls or not all(isinstance(call, dict) for call in calls):
        raise CodecError('a function_call turn that is not {"name", "arguments"}')
    return calls


def _tools(value: Any) -> list[dict[str, Any]]:
    """The `tools` field: a JSON string or a list (the specs are checked by `Example.records`)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise CodecError("tools is not JSON") from None
    if not isinstance(value, list):
        raise CodecError("tools is not a list")
    return value
