"""From stored model calls to whole conversations: what datasets and exports are made of.

A call's conversation is its request's messages followed by the answer's message, with the
request's tools. An agent sends its history again with every call, so within a run each call's
conversation is usually the start of the next call's request; the run's *final* conversations are
those no later call continues: one for a plain agent loop, several when a run holds independent
threads (a planner and a summariser with their own system prompts, say).

Messages stay in the canonical OpenAI chat shape, tool-call arguments as JSON strings (what the
logs hold); `trainer.data` converts them for TRL. Pure: no store, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent_tracer.messages import Message, called_tools, message_key, message_text


@dataclass
class Conversation:
    """Messages ending with the model's answer, the tools it was offered, and where it came from."""

    messages: list[Message]
    tools: list[dict[str, Any]] = field(default_factory=list)
    trace_id: str | None = None
    call_ids: list[str] = field(default_factory=list)
    """The stored calls whose answers are in it (the last one answered last)."""

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools the assistant called, in order, repeats included."""
        return called_tools(self.messages)


def call_conversation(
    call_id: str | None, trace_id: str | None, request: dict[str, Any] | None, response: dict[str, Any] | None
) -> Conversation | None:
    """One stored call (its `request` and `response` columns) as a conversation; None when the
    call has no answer to learn from (failed, cut off, empty)."""
    if not request or not response:
        return None
    answer = response.get("message") or {}
    if answer.get("role") != "assistant" or not (message_text(answer) or answer.get("tool_calls")):
        return None
    messages = [*(request.get("messages") or []), answer]
    return Conversation(messages, list(request.get("tools") or []), trace_id, [call_id] if call_id else [])


def final_conversations(calls: list[Conversation]) -> list[Conversation]:
    """A run's call conversations (in call order) reduced to the ones no later call continues or
    retries (a later request that is this one again: its answer was replaced), each carrying the
    ids of the calls it contains."""
    keys = [[message_key(m) for m in conversation.messages] for conversation in calls]
    finals: list[Conversation] = []
    for i, conversation in enumerate(calls):
        own, request = keys[i], keys[i][:-1]
        later = next(
            (j for j in range(i + 1, len(calls)) if keys[j][: len(own)] == own or keys[j][:-1] == request), None
        )
        if later is None:
            finals.append(conversation)
        elif keys[later][: len(own)] == own:  # the later conversation contains this call's answer
            calls[later].call_ids = [*conversation.call_ids, *calls[later].call_ids]
    return finals
