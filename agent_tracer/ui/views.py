"""What the pages show, as plain data for the templates: no HTML here (the templates escape
every value they print).

A run is laid out as `agent-tracer traces show` lays it out: agent runs, model calls and tool
executions as a tree by parent span, each call showing only the messages not shown before it
(`message_key` says when two messages are the same turn), so a conversation reads once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent_tracer.messages import message_key, message_text, parse_arguments
from agent_tracer.store import LLMCall, TraceDetail


@dataclass
class ToolCallView:
    id: str | None
    name: str
    arguments: str
    """Pretty-printed JSON (or the text as sent, when it is not JSON)."""


@dataclass
class MessageView:
    role: str
    text: str
    tool_calls: list[ToolCallView] = field(default_factory=list)
    tool_call_id: str | None = None
    answer: bool = False
    """The model's answer in this call (not a message it was sent)."""


@dataclass
class Node:
    """One row of the run's tree: an agent run, a model call or a tool execution."""

    kind: str  # "agent", "llm" or "tool"
    depth: int
    title: str
    facts: list[str] = field(default_factory=list)
    messages: list[MessageView] = field(default_factory=list)
    blocks: list[tuple[str, str]] = field(default_factory=list)
    """(label, text) pairs shown as preformatted text: inputs, outputs, arguments, results, errors."""
    bodies: list[tuple[str, str]] = field(default_factory=list)
    """(label, pretty JSON) of a model call's request and response, shown on demand."""
    error: str | None = None


def pretty(value: Any) -> str:
    """A value as indented JSON; a string that holds JSON is parsed first, other strings stay."""
    if isinstance(value, str):
        parsed = parse_arguments(value)
        if isinstance(parsed, str):
            return value
        value = parsed
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def run_nodes(detail: TraceDetail) -> list[Node]:
    """The run as tree rows, depth first, siblings by start time."""
    items: list[tuple[str, Any]] = (
        [("agent", run) for run in detail.agent_runs]
        + [("llm", call) for call in detail.calls]
        + [("tool", tool) for tool in detail.tools]
    )
    ids = {item.id for _, item in items}
    children: dict[str | None, list[tuple[str, Any]]] = {}
    for kind, item in items:
        parent = item.parent_span_id if item.parent_span_id in ids else None
        children.setdefault(parent, []).append((kind, item))
    for siblings in children.values():
        siblings.sort(key=lambda pair: (pair[1].started_at is None, pair[1].started_at or datetime.min, pair[1].id))
    numbers = {call.id: number for number, call in enumerate(detail.calls, start=1)}
    seen: set[tuple[tuple[Any, ...], int]] = set()
    nodes: list[Node] = []

    def walk(parent: str | None, depth: int) -> None:
        for kind, item in children.get(parent, []):
            if kind == "agent":
                node = Node("agent", depth, f"agent {item.name or '?'}", [ms(item.latency_ms)], error=item.error)
                if item.input is not None:
                    node.blocks.append(("input", pretty(item.input)))
                if item.output is not None:
                    node.blocks.append(("output", pretty(item.output)))
            elif kind == "llm":
                node = _call_node(item, numbers.get(item.id, 0), depth, seen)
            else:
                node = Node("tool", depth, f"tool {item.name or '?'}", [ms(item.latency_ms)], error=item.error)
                if item.arguments is not None:
                    node.blocks.append(("arguments", pretty(item.arguments)))
                if item.result is not None and not item.error:
                    node.blocks.append(("result", pretty(item.result)))
            node.facts = [fact for fact in node.facts if fact and fact != "-"]
            nodes.append(node)
            walk(item.id, depth + 1)

    walk(None, 0)
    return nodes


def _call_node(call: LLMCall, number: int, depth: int, seen: set[tuple[tuple[Any, ...], int]]) -> Node:
    model = call.request_model or call.response_model or "?"
    if call.response_model and call.request_model and call.response_model != call.request_model:
        model += f" → {call.response_model}"
    status = call.status + (f" (HTTP {call.http_status})" if call.http_status and call.http_status >= 400 else "")
    route = None
    if call.route:
        route = f"route {call.route}" + (f" ({call.fallback_reason})" if call.fallback_reason else "")
    facts = [
        ms(call.latency_ms),
        f"first token {ms(call.ttft_ms)}" if call.ttft_ms is not None else None,
        f"tokens {count(call.input_tokens)} in / {count(call.output_tokens)} out"
        if call.input_tokens is not None or call.output_tokens is not None
        else None,
        status,
        route,
        f"endpoint {call.endpoint}" if call.endpoint else None,
        "streamed" if call.streamed else None,
    ]
    node = Node("llm", depth, f"model call #{number} {model}", [fact for fact in facts if fact], error=call.error)
    occurrences: dict[tuple[Any, ...], int] = {}
    for message in (call.request or {}).get("messages") or []:
        key = message_key(message)
        occurrence = occurrences.get(key, 0)
        occurrences[key] = occurrence + 1
        if (key, occurrence) in seen:
            continue
        seen.add((key, occurrence))
        node.messages.append(message_view(message))
    answer = (call.response or {}).get("message")
    if answer:
        seen.add((message_key(answer), 0))
        node.messages.append(message_view(answer, answer=True))
    for label, value in (
        ("request (canonical)", call.request),
        ("response (canonical)", call.response),
        ("request body (raw)", call.raw_request),
        ("response body (raw)", call.raw_response),
    ):
        if value is not None:
            node.bodies.append((label, pretty(value)))
    return node


def message_view(message: dict[str, Any], *, answer: bool = False) -> MessageView:
    calls = []
    for call in message.get("tool_calls") or []:
        function = (call.get("function") if isinstance(call, dict) else None) or {}
        calls.append(ToolCallView(call.get("id"), function.get("name") or "?", pretty(function.get("arguments") or {})))
    return MessageView(
        role=str(message.get("role") or "?"),
        text=message_text(message, placeholders=True),
        tool_calls=calls,
        tool_call_id=message.get("tool_call_id"),
        answer=answer,
    )


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"
