"""Feedback rows: an outcome, a rating, a comment, a label or a correction for one trace, validated
in one place for `record_outcome`, `TraceStore.record_feedback`, the CLI, the UI and the proxy."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Any

from agent_tracer.errors import ConfigError
from agent_tracer.messages import Message, parse_arguments, tool_call

MAX_RATING = 5.0
BETTER_THAN = "better_than:"
"""The label of a pairwise judgement: the trace given feedback answered better than the trace whose
id follows (`agent-tracer traces rate A --better-than B`); reward data pairs the two."""
CORRECTION_KEYS = frozenset({"role", "content", "tool_calls"})
"""What a correction may hold: an assistant message's text and tool calls."""


def feedback_row(
    trace_id: str,
    outcome: str | None = None,
    rating: float | None = None,
    comment: str | None = None,
    label: str | None = None,
    source: str = "api",
    correction: Any = None,
) -> dict[str, Any]:
    """A `feedback` record for the store; ConfigError on values that cannot be stored. A
    `correction` (the answer the run should have given) is stored as `correction_message` makes it."""
    if not trace_id or not isinstance(trace_id, str):
        raise ConfigError("feedback needs a trace id (agent_tracer.current_trace_id() inside a traced run)")
    if outcome is None and rating is None and comment is None and label is None and correction is None:
        raise ConfigError("feedback needs at least one of outcome, rating, comment, label, correction")
    for name, value in (("outcome", outcome), ("comment", comment), ("label", label)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{name} must be text, got {type(value).__name__} {value!r}")
    if outcome is not None and not outcome.strip():
        raise ConfigError("outcome must not be empty")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or math.isnan(rating):
            raise ConfigError(f"rating must be a number from 0 to {MAX_RATING:g}, got {rating!r}")
        if not 0 <= rating <= MAX_RATING:
            raise ConfigError(f"rating must be from 0 to {MAX_RATING:g}, got {rating}")
    return {
        "id": uuid.uuid4().hex,
        "trace_id": trace_id.strip().lower(),
        "outcome": outcome.strip() if outcome is not None else None,
        "rating": float(rating) if rating is not None else None,
        "comment": comment,
        "label": label,
        "source": source,
        "created_at": datetime.now(timezone.utc).replace(tzinfo=None),
        "correction": correction_message(correction) if correction is not None else None,
    }


def correction_message(value: Any) -> Message:
    """A corrected answer as the store keeps it: `{"role": "assistant", "content": text or None,
    "tool_calls": [...]}` (tool calls in the canonical shape, arguments a JSON string of an object;
    no `tool_calls` key when there are none). Takes text alone, or a message whose tool calls are
    canonical (`{"function": {"name", "arguments"}}`) or short (`{"name", "arguments"}`), their
    arguments an object or its JSON. ConfigError, one line, for anything else."""
    if isinstance(value, str):
        value = {"content": value}
    if not isinstance(value, dict):
        raise ConfigError(f"a correction must be the answer's text or a message object, not {type(value).__name__}")
    unknown = sorted(set(value) - CORRECTION_KEYS)
    if unknown:
        raise ConfigError(f"a correction holds only {', '.join(sorted(CORRECTION_KEYS))}, not {', '.join(unknown)}")
    if value.get("role", "assistant") != "assistant":
        raise ConfigError(f"a correction is the assistant's answer, not a {value.get('role')!r} message")
    content = value.get("content")
    if content is not None and not isinstance(content, str):
        raise ConfigError(f"a correction's content must be text, not {type(content).__name__}")
    calls = value.get("tool_calls")
    if calls is None:
        calls = []
    if not isinstance(calls, list):
        raise ConfigError(f"a correction's tool_calls must be a list, not {type(calls).__name__}")
    made = [_tool_call(call, number) for number, call in enumerate(calls, start=1)]
    text = content if content is not None and content.strip() else None
    if text is None and not made:
        raise ConfigError("a correction needs the answer's text or tool calls")
    message: Message = {"role": "assistant", "content": text}
    if made:
        message["tool_calls"] = made
    return message


def _tool_call(call: Any, number: int) -> dict[str, Any]:
    where = f"tool call {number}"
    if not isinstance(call, dict):
        raise ConfigError(f"{where} must be an object with a name and arguments, not {type(call).__name__}")
    function = call.get("function", call)
    if not isinstance(function, dict):
        raise ConfigError(f"{where}: function must be an object with a name and arguments")
    name = function.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where} needs a tool name")
    arguments = function.get("arguments")
    parsed = parse_arguments(arguments) if arguments not in (None, "") else {}
    if not isinstance(parsed, dict):
        shown = arguments if isinstance(arguments, str) else type(arguments).__name__
        raise ConfigError(f"{where} ({name}): arguments must be a JSON object, not {shown!r}")
    call_id = call.get("id")
    if call_id is not None and not isinstance(call_id, str):
        raise ConfigError(f"{where} ({name}): id must be text")
    return tool_call(call_id or None, name.strip(), arguments if isinstance(arguments, str) and arguments else parsed)
