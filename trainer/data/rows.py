"""The rows `trainer.data` makes, in the shapes TRL consumes, and the conversion from stored calls.

    SFT        {"messages": [...], "tools": [...]}
    DPO        {"prompt": [...], "chosen": [...], "rejected": [...], "tools": [...], "source": "..."}
    reward     {"prompt": [...], "chosen": [...], "rejected": [...], "tools": [...], "source": "..."}

Messages are OpenAI chat messages as TRL's chat templates want them: `content` always a string,
tool-call `arguments` a dict (the store keeps the JSON string the API sent), tool results with the
`name` of the tool they answer, `developer` messages as `system` (the templates know no other).
Tools are JSON-schema function specs. What the conversion changes or leaves out on the way (a
refusal kept as the answer's text, a message's `name`) is counted, never silent.

As a `datasets.Dataset`, each message and tool is a `Json` value: Arrow would otherwise merge the
keys of every row's tool arguments and schemas into one struct and put nulls into each row's
arguments where another row had a key (`{"city": "Paris", "tz": null}`), which the chat template
then renders into the training text.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agent_tracer.conversations import Conversation
from agent_tracer.messages import (
    ROLES,
    TEMPLATE_ROLES,
    Message,
    NotText,
    called_tools,
    strict_text,
    template_role,
    without_reasoning,
)


class NotTrainable(ValueError):
    """A conversation that cannot become a training row; the message is the reason, counted."""


@dataclass
class Example:
    """One SFT example on its way through curation: TRL's fields, and where it came from."""

    messages: list[Message]
    tools: list[dict[str, Any]] = field(default_factory=list)
    trace_id: str | None = None
    source: str = "traces"
    """"traces" (the store), or "mixin" (general instruction data the user mixed in)."""
    plain: Example | None = field(default=None, repr=False, compare=False)
    """The example before the unused-parameters step lengthened its tools: what truncation keeps
    instead when the borrowed parameters took it over the token limit."""

    def row(self) -> dict[str, Any]:
        return {"messages": self.messages, "tools": self.tools}

    @property
    def tool_names(self) -> list[str]:
        """The tools the assistant called, in order."""
        return called_tools(self.messages)


@dataclass
class Preference:
    """One preference pair: the same prompt, a better and a worse answer; `source` says how the
    pair was made ("traces", "synthetic", "llm", "feedback", "ratings") and `kind` what is wrong
    with the rejected answer, where known ("wrong_tool", "missing_argument", …)."""

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    tools: list[dict[str, Any]] = field(default_factory=list)
    source: str = "traces"
    kind: str | None = None
    trace_id: str | None = None

    def row(self) -> dict[str, Any]:
        row = {
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "tools": self.tools,
            "source": self.source,
        }
        if self.kind is not None:
            row["kind"] = self.kind
        return row


def example_from(conversation: Conversation, notes: Counter[str] | None = None) -> Example:
    """A stored conversation as an SFT example; `NotTrainable` says why it cannot be one. What
    the conversion changed is counted into `notes` (see `trl_messages`)."""
    return Example(
        trl_messages(conversation.messages, notes=notes), trl_tools(conversation.tools), conversation.trace_id
    )


def trl_messages(messages: list[Message], *, answered: bool = True, notes: Counter[str] | None = None) -> list[Message]:
    """Canonical messages in TRL's form. Raises `NotTrainable` for a role that is not a chat role,
    content that is not text (images, audio), tool arguments that are not a JSON object, or
    (`answered`, a training row) a conversation whose last message is not the assistant's; a prompt
    to serve is not answered yet. Each kind of change made to a conversation is counted once into
    `notes`: developer messages read as system, refusals kept as text, reasoning parts and message
    names left out."""
    if not messages or (answered and messages[-1].get("role") != "assistant"):
        raise NotTrainable("does not end with an assistant message")
    names: dict[str, str] = {}
    changes: set[str] = set()
    out: list[Message] = []
    for message in messages:
        role = message.get("role")
        if role not in ROLES:
            raise NotTrainable(f"has a message with role {role!r}")
        if template_role(role) != role:
            changes.add(f"{role} messages read as {template_role(role)}")
        content, reasoned = without_reasoning(message.get("content"))
        if reasoned:
            changes.add("reasoning parts left out (thinking is not trained on)")
        try:
            text = strict_text(content)
        except NotText as exc:
            raise NotTrainable(str(exc)) from None
        refusal = message.get("refusal")
        if not text and isinstance(refusal, str) and refusal:
            text = refusal
            changes.add("refusals kept as the answer's text")
        converted: Message = {"role": template_role(role), "content": text}
        if role == "assistant" and message.get("tool_calls"):
            if not isinstance(message["tool_calls"], list):
                raise NotTrainable("has tool_calls that are not a list")
            converted["tool_calls"] = [_tool_call(call, names) for call in message["tool_calls"]]
        elif role == "tool":
            call_id = message.get("tool_call_id")
            converted["tool_call_id"] = call_id
            name = message.get("name") or names.get(call_id or "")
            if name:
                converted["name"] = name
        if role != "tool" and message.get("name"):
            changes.add("message names left out (chat templates have no place for them)")
        out.append(converted)
    if notes is not None:
        notes.update(changes)
    return out


def template_roles(messages: Any) -> Any:
    """Rows read from a file (perhaps another tool's) with each role as chat templates know it:
    `developer` as `system`; anything that is not a list of messages is returned as it is."""
    if not isinstance(messages, list):
        return messages
    return [
        {**m, "role": template_role(m["role"])} if isinstance(m, dict) and m.get("role") in TEMPLATE_ROLES else m
        for m in messages
    ]


def trl_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool specs as chat templates take them: `{"type": "function", "function": {...}}`."""
    out = []
    for tool in tools:
        if tool.get("type", "function") != "function" or not isinstance(tool.get("function"), dict):
            raise NotTrainable(f"offers a tool that is not a function ({tool.get('type')!r})")
        out.append({"type": "function", "function": tool["function"]})
    return out


MESSAGE_COLUMNS = frozenset({"messages", "prompt", "chosen", "rejected"})
"""The row columns that hold lists of messages."""


def dataset_features(kind: str) -> Any:
    """The `datasets.Features` of a row kind ("sft", "dpo", "reward"): messages and tools as `Json`."""
    from datasets import Features, Json, List, Value

    if kind == "sft":
        return Features({"messages": List(Json()), "tools": List(Json())})
    return Features(
        {
            "prompt": List(Json()),
            "chosen": List(Json()),
            "rejected": List(Json()),
            "tools": List(Json()),
            "source": Value("string"),
            "kind": Value("string"),
        }
    )


def _tool_call(call: Any, names: dict[str, str]) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("function", {}), dict):
        raise NotTrainable("has a tool call that is not an object")
    function = call.get("function") or {}
    name = function.get("name")
    if not name:
        raise NotTrainable("has a tool call without a name")
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise NotTrainable("has tool-call arguments that are not valid JSON") from None
    if not isinstance(arguments, dict):
        raise NotTrainable("has tool-call arguments that are not a JSON object")
    converted = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call.get("id"):
        converted["id"] = call["id"]
        names[call["id"]] = name
    return converted
