"""The conversation of a model-call span, read from each layout instrumentations use.

Every reader returns messages in the canonical OpenAI chat shape (`agent_tracer.messages`): the
input messages, the answer (one assistant message) and its finish reasons, or None where the span
does not carry that layout. `conversation()` tries them in a fixed order, separately for the input
and for the answer, and the first layout that has one wins:

1. GenAI semantic conventions, current: `gen_ai.input.messages` / `gen_ai.output.messages` (role
   and typed `parts`), with `gen_ai.system_instructions` as the system message.
2. GenAI semantic conventions, event-based (older): span events `gen_ai.{system,user,assistant,
   tool}.message` and `gen_ai.choice`, or the same events as a JSON list in the `events`
   attribute (Logfire / PydanticAI's first instrumentation, each with its `event.name`).
3. OpenInference: `llm.input_messages.N.message.*` / `llm.output_messages.N.message.*`, tool calls
   under `…tool_calls.M.tool_call.*`.
4. OpenLLMetry / Traceloop (before it moved to the current conventions): `gen_ai.prompt.N.*` /
   `gen_ai.completion.N.*`, tool calls under `…tool_calls.M.*`.
5. The Vercel AI SDK: `ai.prompt.messages` (its own message shape: `tool-call` and `tool-result`
   parts), the answer from `ai.response.text` and `ai.response.toolCalls`.
6. The flat body: `input.value` / `output.value` when they hold a Chat Completions request and
   response as JSON (OpenInference sets them beside its structured messages), decoded by the
   Chat Completions codec.

Structure wins over the flat body: a span carrying both OpenInference's messages and its
`input.value` is read from the messages (Langfuse reads the flat value first, a known complaint).
Tool definitions come from `gen_ai.tool.definitions`, OpenInference's `llm.tools.N.tool.json_schema`,
Traceloop's `llm.request.functions.N.*`, the AI SDK's `ai.prompt.tools`, or the flat body, in that
order; all become Chat Completions function specs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent_tracer import fastjson
from agent_tracer.errors import CodecError
from agent_tracer.messages import REASONING_PARTS, Message, tool_call
from agent_tracer.otlp.spans import Event
from integrations.openai_chat import OpenAIChatCodec

FINISH_REASONS = {
    "tool_call": "tool_calls",
    "tool-calls": "tool_calls",
    "function_call": "tool_calls",
    "max_tokens": "length",
    "content-filter": "content_filter",
}
"""Finish reasons under other names (the GenAI conventions', Anthropic's) → OpenAI's."""


@dataclass
class Conversation:
    """What a model-call span says was sent and answered."""

    messages: list[Message] | None = None
    answer: Message | None = None
    finish_reasons: list[str] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    layout: str | None = None
    """The layout the input messages came from (else the answer's): "gen_ai", "gen_ai.events",
    "openinference", "traceloop", "vercel" or "body"."""
    body: dict[str, Any] | None = None
    """The flat request body (`input.value`) when it was a Chat Completions request."""


def conversation(attributes: dict[str, Any], events: list[Event]) -> Conversation:
    """The span's conversation, each part from the first layout that has it (see the module's docstring)."""
    body = _json_object(attributes.get("input.value"))
    answer_body = _json_object(attributes.get("output.value"))
    out = Conversation(body=body if body is not None and "messages" in body else None)
    for layout, read in _READERS:
        messages, answer, reasons = read(attributes, events, body, answer_body)
        if out.messages is None and messages is not None:
            out.messages, out.layout = messages, layout
        if out.answer is None and answer is not None:
            out.answer, out.finish_reasons = answer, reasons
            out.layout = out.layout or layout
        if out.messages is not None and out.answer is not None:
            break
    if not out.finish_reasons:  # a span without the answer's content still says how it ended
        out.finish_reasons = _finish_list(attributes.get("gen_ai.response.finish_reasons"))
    out.tools = tool_definitions(attributes, out.body)
    return out


Read = tuple[list[Message] | None, Message | None, list[str]]
_READERS: tuple[tuple[str, Callable[[dict[str, Any], list[Event], Any, Any], Read]], ...] = (
    ("gen_ai", lambda attributes, events, body, answer: _genai(attributes)),
    ("gen_ai.events", lambda attributes, events, body, answer: _events(events or _logfire_events(attributes))),
    ("openinference", lambda attributes, events, body, answer: _openinference(attributes)),
    ("traceloop", lambda attributes, events, body, answer: _traceloop(attributes)),
    ("vercel", lambda attributes, events, body, answer: _vercel(attributes)),
    ("body", lambda attributes, events, body, answer: _body(body, answer)),
)
"""Each layout's reader of (attributes, events, the flat request body, the flat answer body), in
the order they are tried; made once (closures made at every span were a part of its mapping)."""


# ------------------------------------------------------------------------------------------------
# 1. GenAI semantic conventions: messages of typed parts


def _genai(attributes: dict[str, Any]) -> Read:
    inputs = _json_list(attributes.get("gen_ai.input.messages"))
    outputs = _json_list(attributes.get("gen_ai.output.messages"))
    messages = None
    if inputs is not None:
        messages = [m for item in inputs if isinstance(item, dict) for m in parts_messages(item)]
        instructions = _json_list(attributes.get("gen_ai.system_instructions"))
        if instructions and not any(m.get("role") in ("system", "developer") for m in messages):
            messages.insert(0, {"role": "system", "content": _parts_content(instructions)})
    answer, reasons = None, []
    if outputs:
        first = next((item for item in outputs if isinstance(item, dict)), None)
        if first is not None:
            converted = parts_messages({**first, "role": first.get("role") or "assistant"})
            answer = converted[0] if converted else {"role": "assistant", "content": None}
            reason = first.get("finish_reason")
            reasons = [_finish(reason)] if isinstance(reason, str) and reason else []
    return messages, answer, reasons


def parts_messages(item: dict[str, Any]) -> list[Message]:
    """One GenAI-conventions message (role + parts) as chat messages: tool results become `tool`
    messages, one per `tool_call_response` part; text parts the content; tool calls `tool_calls`."""
    role = item.get("role") or "user"
    parts = item.get("parts")
    if not isinstance(parts, list):  # some emitters put plain content there
        content = item.get("content")
        return [{"role": role, "content": content if isinstance(content, str | list) else None}]
    results: list[Message] = []
    calls: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "tool_call":
            calls.append(_call(part.get("id"), part.get("name"), part.get("arguments")))
        elif kind == "tool_call_response":
            response = part.get("response", part.get("result"))
            results.append({"role": "tool", "tool_call_id": part.get("id"), "content": _text_value(response)})
        elif kind not in REASONING_PARTS:
            kept.append(part)
    if results and not kept and not calls:
        return results
    message: Message = {"role": role, "content": _parts_content(kept) if kept else None}
    if calls:
        message["tool_calls"] = calls
    return [message, *results]


def _parts_content(parts: list[Any]) -> Any:
    """Text parts as one string; with any other part, a list of chat content parts."""
    texts = [p for p in parts if isinstance(p, dict) and p.get("type", "text") == "text"]
    if len(texts) == len(parts):
        return "".join(str(p.get("content") or p.get("text") or "") for p in texts)
    out = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if part.get("type", "text") == "text":
            out.append({"type": "text", "text": str(part.get("content") or part.get("text") or "")})
        else:
            out.append(dict(part))
    return out


# ------------------------------------------------------------------------------------------------
# 2. GenAI semantic conventions, event-based


_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _events(events: list[Event]) -> Read:
    messages: list[Message] = []
    answer, reasons = None, []
    seen = False
    for event in events:
        role = _EVENT_ROLES.get(event.name)
        fields = _event_fields(event.attributes)
        if role is not None:
            seen = True
            messages.append(_event_message(fields.get("role") or role, fields))
        elif event.name == "gen_ai.choice" and answer is None:
            if int(fields.get("index") or 0) != 0:
                continue
            message = _json_object(fields.get("message")) or {}
            answer = _event_message("assistant", message)
            reason = fields.get("finish_reason")
            reasons = [_finish(reason)] if isinstance(reason, str) and reason else []
    return (messages if seen else None), answer, reasons


def _logfire_events(attributes: dict[str, Any]) -> list[Event]:
    """The `events` attribute as span events: `[{"event.name": "gen_ai.user.message", …}, …]`."""
    listed = _json_list(attributes.get("events"))
    if not listed:
        return []
    return [
        Event(str(item["event.name"]), 0, {k: v for k, v in item.items() if k != "event.name"})
        for item in listed
        if isinstance(item, dict) and isinstance(item.get("event.name"), str)
    ]


def _event_fields(attributes: dict[str, Any]) -> dict[str, Any]:
    """An event's fields: its attributes, or the JSON body some emitters put in one attribute."""
    for key in ("gen_ai.event.content", "event.body", "body"):
        body = _json_object(attributes.get(key))
        if body is not None:
            return {**attributes, **body}
    return attributes


def _event_message(role: str, fields: dict[str, Any]) -> Message:
    content = fields.get("content")
    parsed = _json_list(content) if isinstance(content, str) and content.startswith("[") else None
    message: Message = {"role": role, "content": parsed if _is_parts(parsed) else content}
    calls = _json_list(fields.get("tool_calls"))
    if calls:
        message["tool_calls"] = [_chat_call(call) for call in calls if isinstance(call, dict)]
    if role == "tool":
        message["tool_call_id"] = fields.get("id") or fields.get("tool_call_id")
        message["content"] = _text_value(message["content"])
    return message


# ------------------------------------------------------------------------------------------------
# 3. OpenInference


def _openinference(attributes: dict[str, Any]) -> Read:
    inputs = _indexed(unflatten(attributes, "llm.input_messages"))
    outputs = _indexed(unflatten(attributes, "llm.output_messages"))
    messages = [_oi_message(item.get("message") or {}) for item in inputs if isinstance(item, dict)] or None
    answer = None
    if outputs and isinstance(outputs[0], dict):
        answer = _oi_message(outputs[0].get("message") or {})
    reason = attributes.get("llm.finish_reason")
    return messages, answer, [_finish(reason)] if isinstance(reason, str) and reason and answer else []


def _oi_message(node: dict[str, Any]) -> Message:
    role = node.get("role") or "user"
    content: Any = node.get("content")
    contents = _indexed(node.get("contents") or {})
    if content is None and contents:
        parts = [item.get("message_content") or {} for item in contents if isinstance(item, dict)]
        content = _parts_content([{"type": p.get("type") or "text", "text": p.get("text"), **p} for p in parts])
    message: Message = {"role": role, "content": content}
    calls = [(item.get("tool_call") or {}) for item in _indexed(node.get("tool_calls") or {}) if isinstance(item, dict)]
    if calls:
        message["tool_calls"] = [
            _call(c.get("id"), (c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
            for c in calls
        ]
    if node.get("tool_call_id") is not None:
        message["tool_call_id"] = node["tool_call_id"]
    if node.get("name") and role != "tool":
        message["name"] = node["name"]
    return message


# ------------------------------------------------------------------------------------------------
# 4. OpenLLMetry / Traceloop (indexed prompt and completion attributes)


def _traceloop(attributes: dict[str, Any]) -> Read:
    prompts = _indexed(unflatten(attributes, "gen_ai.prompt"))
    completions = _indexed(unflatten(attributes, "gen_ai.completion"))
    messages = [_tl_message(item) for item in prompts if isinstance(item, dict)] or None
    answer, reasons = None, []
    if completions and isinstance(completions[0], dict):
        answer = _tl_message({"role": "assistant", **completions[0]})
        reason = completions[0].get("finish_reason")
        reasons = [_finish(reason)] if isinstance(reason, str) and reason else []
    return messages, answer, reasons


def _tl_message(node: dict[str, Any]) -> Message:
    role = node.get("role") or "user"
    content = node.get("content")
    parsed = _json_list(content) if isinstance(content, str) and content.startswith("[") else None
    message: Message = {"role": role, "content": parsed if _is_parts(parsed) else content}
    calls = [item for item in _indexed(node.get("tool_calls") or {}) if isinstance(item, dict)]
    if calls:
        message["tool_calls"] = [_call(c.get("id"), c.get("name"), c.get("arguments")) for c in calls]
    if node.get("tool_call_id") is not None:
        message["tool_call_id"] = node["tool_call_id"]
    return message


# ------------------------------------------------------------------------------------------------
# 5. The Vercel AI SDK (`ai.*` attributes of its `ai.generateText.doGenerate`-style spans)


def _vercel(attributes: dict[str, Any]) -> Read:
    prompt = _json_list(attributes.get("ai.prompt.messages"))
    messages = None
    if prompt is not None:
        messages = [m for item in prompt if isinstance(item, dict) for m in _vercel_messages(item)]
    text, calls = attributes.get("ai.response.text"), _json_list(attributes.get("ai.response.toolCalls"))
    answer: Message | None = None
    reasons: list[str] = []
    if isinstance(text, str) or calls:
        answer = {"role": "assistant", "content": text if isinstance(text, str) else None}
        if calls:
            answer["tool_calls"] = [
                _call(c.get("toolCallId"), c.get("toolName"), c.get("input", c.get("args")))
                for c in calls
                if isinstance(c, dict)
            ]
        reason = attributes.get("ai.response.finishReason")
        reasons = [_finish(reason)] if isinstance(reason, str) and reason else []
    return messages, answer, reasons


def _vercel_messages(item: dict[str, Any]) -> list[Message]:
    """One AI SDK prompt message: content a string or parts (`text`, `tool-call`, `tool-result`,
    `reasoning`, files); tool results become `tool` messages, one per part."""
    role, content = item.get("role") or "user", item.get("content")
    if not isinstance(content, list):
        return [{"role": role, "content": content}]
    kept: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[Message] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "tool-call":
            calls.append(_call(part.get("toolCallId"), part.get("toolName"), part.get("input", part.get("args"))))
        elif kind == "tool-result":
            output = part.get("output", part.get("result"))
            if (
                isinstance(output, dict)
                and "value" in output
                and output.get("type") in ("json", "text", "error-text", "error-json")
            ):
                output = output["value"]
            results.append({"role": "tool", "tool_call_id": part.get("toolCallId"), "content": _text_value(output)})
        elif kind not in REASONING_PARTS:
            kept.append({**part, "content": part.get("text")} if kind == "text" else part)
    if results and not kept and not calls:
        return results
    message: Message = {"role": role, "content": _parts_content(kept) if kept else None}
    if calls:
        message["tool_calls"] = calls
    return [message, *results]


# ------------------------------------------------------------------------------------------------
# 6. The flat body (input.value / output.value)


def _body(body: dict[str, Any] | None, answer_body: dict[str, Any] | None) -> Read:
    codec = OpenAIChatCodec()
    messages = answer = None
    reasons: list[str] = []
    if body is not None and "messages" in body:
        try:
            messages = codec.decode_request(body).messages
        except CodecError:
            messages = None
    if answer_body is not None and "choices" in answer_body:
        try:
            response = codec.decode_response(answer_body)
        except CodecError:
            response = None
        if response is not None:
            answer, reasons = response.message, response.finish_reasons
    return messages, answer, reasons


# ------------------------------------------------------------------------------------------------
# Tool definitions


def tool_definitions(attributes: dict[str, Any], body: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The tools offered to the model, as Chat Completions function specs ([] when none are given)."""
    listed = _json_list(attributes.get("gen_ai.tool.definitions"))
    if listed:
        return [_function_spec(tool) for tool in listed if isinstance(tool, dict)]
    schemas = [
        _json_object((item.get("tool") or {}).get("json_schema")) if isinstance(item, dict) else None
        for item in _indexed(unflatten(attributes, "llm.tools"))
    ]
    if any(schemas):
        return [_function_spec(schema) for schema in schemas if schema]
    functions = [item for item in _indexed(unflatten(attributes, "llm.request.functions")) if isinstance(item, dict)]
    if functions:
        return [
            _function_spec({**f, "parameters": _json_object(f.get("parameters")) or f.get("parameters") or {}})
            for f in functions
        ]
    ai_tools = attributes.get("ai.prompt.tools")  # the AI SDK: a list of JSON texts, schema as inputSchema
    if isinstance(ai_tools, list) and ai_tools:
        specs = [_json_object(tool) for tool in ai_tools]
        return [
            _function_spec({**spec, "parameters": spec.get("inputSchema", spec.get("parameters"))})
            for spec in specs
            if spec is not None
        ]
    if body is not None and isinstance(body.get("tools"), list):
        return [_function_spec(tool) for tool in body["tools"] if isinstance(tool, dict)]
    return []


def _function_spec(tool: dict[str, Any]) -> dict[str, Any]:
    """`{"type": "function", "function": {name, description, parameters}}`, from that or the flat
    form (`{"type": "function", "name": …, "parameters": …}`, as the Responses API and the GenAI
    conventions' examples write it)."""
    if isinstance(tool.get("function"), dict):
        return {"type": "function", "function": tool["function"]}
    function = {key: tool[key] for key in ("name", "description", "parameters", "strict") if key in tool}
    return {"type": "function", "function": function}


# ------------------------------------------------------------------------------------------------
# Helpers


def unflatten(attributes: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Attributes under `prefix.` as a tree: `prefix.0.message.role` → {"0": {"message": {"role": …}}}."""
    root: dict[str, Any] = {}
    start = prefix + "."
    for key, value in attributes.items():
        if not key.startswith(start):
            continue
        *path, leaf = key[len(start) :].split(".")
        node = root
        for step in path:
            child = node.get(step)
            if not isinstance(child, dict):
                child = node[step] = {}
            node = child
        node[leaf] = value
    return root


def _indexed(node: Any) -> list[Any]:
    """The numbered children of an unflattened node, in order."""
    if not isinstance(node, dict):
        return []
    return [node[key] for key in sorted((k for k in node if k.isdigit()), key=int)]


def _call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    try:
        return tool_call(call_id, str(name or ""), arguments)
    except ValueError:  # arguments that are not JSON: kept as sent, as the API would send them
        call: dict[str, Any] = {"type": "function", "function": {"name": str(name or ""), "arguments": arguments}}
        return {"id": call_id, **call} if call_id is not None else call


def _chat_call(call: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else call
    return _call(call.get("id"), function.get("name"), function.get("arguments"))


def _finish(reason: str) -> str:
    return FINISH_REASONS.get(reason, reason)


def _finish_list(value: Any) -> list[str]:
    items = _json_list(value) if isinstance(value, str) else value
    return [_finish(str(item)) for item in items or [] if item]


def _text_value(value: Any) -> Any:
    """A tool result as message content: text as it is, anything else as compact JSON text (what
    the span's emitter sent the model is not on the span; compact is what pydantic, PydanticAI's
    serialiser, writes)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and _is_parts(value):
        return value
    return fastjson.python_compact(value)


def _is_parts(value: Any) -> bool:
    return bool(value) and all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in value)


def _json_object(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    parsed = _json_text(value, "{")
    return parsed if isinstance(parsed, dict) else None


def _json_list(value: Any) -> list[Any] | None:
    if isinstance(value, list | tuple):
        return list(value)
    parsed = _json_text(value, "[")
    return parsed if isinstance(parsed, list) else None


def _json_text(value: Any, opener: str) -> Any:
    """An attribute's JSON text parsed, when it is text that starts with `opener`; else None."""
    if not (isinstance(value, str) and value.lstrip().startswith(opener)):
        return None
    try:
        return fastjson.loads(value)
    except ValueError:
        return None
