"""An imported example (one conversation from another tool's file) and the store records it makes.

Every import format (OpenAI fine-tuning JSONL, ShareGPT, BFCL) turns a line into an `Example`: a
conversation in canonical OpenAI chat form that ends with the assistant's answer, the tools it was
offered, and where it came from. `Example.records()` makes of it what a captured run would have
left: a `trace` row (source "import"), one `llm_call` whose request holds every message but the
answer and whose response holds the answer, and a `feedback` row with outcome "success", since the
example is a demonstration of what the model should do (and trace rows never carry an outcome).

Ids are derived from the example's `key` (its own id, such as "bfcl:simple_python_0", or the hash
of its line's content) with `trace_id_for`, so importing a file twice adds nothing twice, and
`agent-tracer traces show bfcl:simple_python_0` finds the trace by that key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent_tracer import messages as vocabulary
from agent_tracer.errors import CodecError
from agent_tracer.messages import ROLES, Message, message_text
from agent_tracer.records import Record
from agent_tracer.redact import scrub, scrub_text
from agent_tracer.run_ids import trace_id_for

HELD_OUT_TAG = "held-out"
"""Tag of traces kept for evaluation only: never train on them (BFCL's live_* categories)."""


@dataclass
class Example:
    """One imported conversation, ending with the assistant's answer, in canonical chat form."""

    key: str
    """What its ids are derived from: unique to the example, the same on every import."""
    messages: list[Message]
    tools: list[dict[str, Any]] = field(default_factory=list)
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    raw_request: str | None = None
    raw_response: str | None = None

    @property
    def trace_id(self) -> str:
        return trace_id_for(self.key)

    def records(self, imported_at: datetime) -> list[Record]:
        """The example's trace, call and feedback records. `imported_at` is both rows' start time:
        the store keeps the earliest, so importing again changes nothing."""
        messages = check_conversation(self.messages)
        tools = [function_tool(tool) for tool in self.tools]
        answer = messages[-1]
        tool_calls = answer.get("tool_calls") or []
        trace_id = self.trace_id
        request = {
            "model": self.model,
            "messages": messages[:-1],
            "tools": tools,
            "params": self.params,
            "stream": False,
        }
        response = {
            "id": None,
            "model": None,
            "message": answer,
            "finish_reasons": ["tool_calls" if tool_calls else "stop"],
            "input_tokens": None,
            "output_tokens": None,
        }
        task = next((message_text(m) for m in messages if m["role"] == "user"), None)  # the run's task
        trace = {
            "id": trace_id,
            "name": scrub_text(self.name) if self.name else None,
            "task": scrub_text(task) if task else None,
            "started_at": imported_at,
            "status": "ok",
            "tags": self.tags,
            "meta": scrub(self.meta),
            "source": "import",
        }
        call = {
            "id": derived_id(trace_id, "call", 16),
            "trace_id": trace_id,
            "api": "openai.chat",
            "operation": "chat",
            "request_model": self.model,
            "request": scrub(request),
            "response": scrub(response),
            "raw_request": scrub_text(self.raw_request) if self.raw_request else None,
            "raw_response": scrub_text(self.raw_response) if self.raw_response else None,
            "status": "ok",
            "finish_reasons": response["finish_reasons"],
            "has_tool_calls": bool(tool_calls),
            "tool_names": [call["function"]["name"] for call in tool_calls],
            "started_at": imported_at,
        }
        feedback = {
            "id": derived_id(trace_id, "feedback", 32),
            "trace_id": trace_id,
            "outcome": "success",
            "source": "import",
            "created_at": imported_at,
        }
        return [("trace", trace), ("llm_call", call), ("feedback", feedback)]


def derived_id(trace_id: str, what: str, length: int) -> str:
    """A hex id for one of a trace's rows, the same whenever the trace is imported."""
    return hashlib.sha256(f"{trace_id}/{what}".encode()).hexdigest()[:length]


def content_key(fmt: str, item: Any) -> str:
    """An example key from a line's content (key order and spacing aside), for formats whose
    lines carry no id of their own."""
    text = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return f"{fmt}:{hashlib.sha256(text.encode()).hexdigest()}"


def check_conversation(messages: Any) -> list[Message]:
    """The messages, checked and with tool calls in canonical form (arguments as JSON strings);
    `CodecError` naming what is wrong when they cannot be a conversation to learn from."""
    if not isinstance(messages, list) or not messages:
        raise CodecError("no messages")
    out = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            raise CodecError(f"a message with role {role!r} (expected one of {', '.join(ROLES)})")
        if message.get("tool_calls"):
            if message["role"] != "assistant" or not isinstance(message["tool_calls"], list):
                raise CodecError("tool calls outside an assistant message")
            message = {**message, "tool_calls": [_canonical_call(call) for call in message["tool_calls"]]}
        out.append(message)
    answer = out[-1]
    if answer["role"] != "assistant":
        raise CodecError(f"the conversation ends with a {answer['role']} message, not the assistant's answer")
    if not message_text(answer).strip() and not answer.get("tool_calls"):
        raise CodecError("the assistant's answer is empty")
    return out


def _canonical_call(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(function, dict) or not isinstance(name, str) or not name:
        raise CodecError("a tool call without a name")
    return {
        **call,
        "type": call.get("type") or "function",
        "function": {**function, "arguments": arguments_json(function.get("arguments"), name)},
    }


def arguments_json(arguments: Any, name: str) -> str:
    """`messages.arguments_json`, with a `CodecError` naming the call when a string is not JSON."""
    try:
        return vocabulary.arguments_json(arguments)
    except ValueError:
        raise CodecError(f"the arguments of tool call {name!r} are not JSON") from None


def tool_call(call_id: str, name: Any, arguments: Any) -> dict[str, Any]:
    """A canonical tool call (for formats that spell calls their own way), checked."""
    if not isinstance(name, str) or not name:
        raise CodecError("a tool call without a name")
    return vocabulary.tool_call(call_id, name, arguments_json(arguments, name))


def function_tool(tool: Any) -> dict[str, Any]:
    """A tool as `{"type": "function", "function": {name, description, parameters}}`, from that
    shape or from a bare function spec (`{name, description, parameters}`)."""
    spec = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else tool
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise CodecError("a tool without a name")
    return {"type": "function", "function": spec}
