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
    call_id: str | None = None
    """A model call's id (its bodies' own page when the run is paged)."""
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


CALLS_PER_PAGE = 100
"""Model calls shown on one page of a run; longer runs are paged (`?page=`)."""


@dataclass
class RunPage:
    nodes: list[Node]
    page: int
    pages: int
    first_call: int
    """The number of the page's first model call (1-based; 0 when the run has none)."""
    last_call: int


def run_nodes(detail: TraceDetail) -> list[Node]:
    """The whole run as tree rows, depth first, siblings by start time."""
    return run_page(detail, 1, per_page=None).nodes


def run_page(detail: TraceDetail, page: int = 1, *, per_page: int | None = CALLS_PER_PAGE) -> RunPage:
    """Page `page` of the run's tree rows (depth first, siblings by start time), `per_page` model
    calls a page (None: all), with the agent runs and tool executions between them; a page past
    the last is the last. Only the page's rows are rendered; a paged run leaves each call's bodies
    (which resend the whole history: quadratic in the run's length) to their own page. A call
    shows the messages not shown before it; on a later page "before" is the run's previous call
    (its request and answer), which for an agent that resends its history is the whole run so far."""
    ordered = _tree(detail)
    calls_in_order = [item for kind, item, _ in ordered if kind == "llm"]
    page, pages, first, last = _page_bounds(len(calls_in_order), page, per_page)
    numbers = {call.id: number for number, call in enumerate(detail.calls, start=1)}
    seen: set[tuple[tuple[Any, ...], int]] = set()
    keys = _Keys()
    if first > 0:
        _call_node(calls_in_order[first - 1], 0, 0, seen, keys, bodies=False)  # only for what it marks as seen
    nodes: list[Node] = []
    position = 0  # model calls met so far in tree order
    for kind, item, depth in ordered:
        if kind == "llm":
            position += 1
            on_page = first < position <= last
        else:  # rows before the first call go with page 1, the others with the call before them
            on_page = (first < position <= last) or (position == 0 and page == 1)
        if not on_page:
            continue
        if kind == "agent":
            node = Node("agent", depth, f"agent {item.name or '?'}", [ms(item.latency_ms)], error=item.error)
            if item.input is not None:
                node.blocks.append(("input", pretty(item.input)))
            if item.output is not None:
                node.blocks.append(("output", pretty(item.output)))
        elif kind == "llm":
            node = _call_node(item, numbers.get(item.id, 0), depth, seen, keys, bodies=pages == 1)
        else:
            node = Node("tool", depth, f"tool {item.name or '?'}", [ms(item.latency_ms)], error=item.error)
            if item.arguments is not None:
                node.blocks.append(("arguments", pretty(item.arguments)))
            if item.result is not None and not item.error:
                node.blocks.append(("result", pretty(item.result)))
        node.facts = [fact for fact in node.facts if fact and fact != "-"]
        nodes.append(node)
    return RunPage(nodes, page, pages, first + 1 if calls_in_order else 0, last)


def page_call_ids(detail: TraceDetail, page: int = 1, *, per_page: int | None = CALLS_PER_PAGE) -> set[str]:
    """The ids of the model calls whose bodies `run_page(detail, page)` reads: the page's calls
    and the one before them (whose messages the page's first call does not repeat)."""
    calls_in_order = [item for kind, item, _ in _tree(detail) if kind == "llm"]
    _, _, first, last = _page_bounds(len(calls_in_order), page, per_page)
    return {call.id for call in calls_in_order[max(first - 1, 0) : last]}


def _tree(detail: TraceDetail) -> list[tuple[str, Any, int]]:
    """(kind, item, depth) of the run's agent runs, model calls and tool executions as a tree by
    parent span, depth first, siblings by start time."""
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
    ordered: list[tuple[str, Any, int]] = []

    def walk(parent: str | None, depth: int) -> None:
        for kind, item in children.get(parent, []):
            ordered.append((kind, item, depth))
            walk(item.id, depth + 1)

    walk(None, 0)
    return ordered


def _page_bounds(calls: int, page: int, per_page: int | None) -> tuple[int, int, int, int]:
    """(page, pages, first, last) for `calls` model calls: the page asked for, kept within
    1..pages, and its calls [first, last) in tree order."""
    size = per_page or max(calls, 1)
    pages = max((calls + size - 1) // size, 1)
    page = min(max(page, 1), pages)
    return page, pages, (page - 1) * size, min(page * size, calls)


@dataclass
class _Keys:
    """The previous call's messages with their `message_key`: an agent resends its history, so
    most of a call's messages equal the previous call's at the same place, and their key is known
    (the key is what a long run's page spends its time on)."""

    pairs: list[tuple[Any, tuple[Any, ...]]] = field(default_factory=list)

    def of(self, messages: list[Any]) -> list[tuple[Any, ...]]:
        previous, pairs = self.pairs, []
        for i, message in enumerate(messages):
            same = i < len(previous) and previous[i][0] == message
            pairs.append((message, previous[i][1] if same else message_key(message)))
        self.pairs = pairs
        return [key for _, key in pairs]


def _call_node(
    call: LLMCall,
    number: int,
    depth: int,
    seen: set[tuple[tuple[Any, ...], int]],
    keys: _Keys | None = None,
    *,
    bodies: bool = True,
) -> Node:
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
    node.call_id = call.id
    occurrences: dict[tuple[Any, ...], int] = {}
    messages = (call.request or {}).get("messages") or []
    for message, key in zip(messages, (keys or _Keys()).of(messages)):
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
    if bodies:
        node.bodies = call_bodies(call)
    return node


def call_bodies(call: LLMCall) -> list[tuple[str, str]]:
    """(label, pretty JSON) of a model call's canonical and raw request and response."""
    found = []
    for label, value in (
        ("request (canonical)", call.request),
        ("response (canonical)", call.response),
        ("request body (raw)", call.raw_request),
        ("response body (raw)", call.raw_response),
    ):
        if value is not None:
            found.append((label, pretty(value)))
    return found


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


@dataclass
class Bar:
    """One row of the timing waterfall: where a model call or tool execution sits in the run."""

    kind: str  # "llm" or "tool"
    label: str
    offset_ms: float
    duration_ms: float
    ttft_ms: float | None = None
    """Time to first token, on streamed calls."""
    failed: bool = False
    left: float = 0.0
    """Percent of the run's span from its start to the bar's start."""
    width: float = 0.0
    """Percent of the run's span the bar lasts (at least a sliver, so a 0 ms bar still shows)."""
    ttft_at: float | None = None
    """Percent of the run's span where the first token came."""
    number: int = 0
    """A model call's number in the run (1-based)."""


@dataclass
class Waterfall:
    span_ms: float
    bars: list[Bar]


MIN_BAR_PERCENT = 0.3


def waterfall(detail: TraceDetail, calls: tuple[int, int] | None = None) -> Waterfall | None:
    """The run's model calls and tool executions as bars by offset from the run's first start and
    by duration (its latency, else end minus start), in start order; None when nothing has a time.
    `calls`: (first, last) numbers of the model calls to show (a page of them), with the tool
    executions that start between them; the scale stays the whole run's."""
    timed: list[tuple[datetime, Bar]] = []
    numbers = {call.id: n for n, call in enumerate(detail.calls, start=1)}
    for call in detail.calls:
        if call.started_at is None:
            continue
        label = f"#{numbers.get(call.id, 0)} {call.request_model or call.response_model or 'model call'}"
        bar = Bar("llm", label, 0.0, _duration(call), call.ttft_ms if call.streamed else None, call.status != "ok")
        bar.number = numbers.get(call.id, 0)
        timed.append((call.started_at, bar))
    for tool in detail.tools:
        if tool.started_at is not None:
            timed.append(
                (tool.started_at, Bar("tool", tool.name or "tool", 0.0, _duration(tool), None, bool(tool.error)))
            )
    if not timed:
        return None
    timed.sort(key=lambda pair: pair[0])
    start = min([pair[0] for pair in timed] + ([detail.trace.started_at] if detail.trace.started_at else []))
    for started, bar in timed:
        bar.offset_ms = (started - start).total_seconds() * 1000
    span = max(bar.offset_ms + bar.duration_ms for _, bar in timed) or 1.0
    for _, bar in timed:
        bar.left = 100 * bar.offset_ms / span
        bar.width = max(100 * bar.duration_ms / span, MIN_BAR_PERCENT)
        bar.left = min(bar.left, 100 - bar.width)
        if bar.ttft_ms is not None:
            bar.ttft_at = 100 * (bar.offset_ms + bar.ttft_ms) / span
    if calls is not None:
        first, last = calls
        starts = [call.started_at for call in detail.calls]
        low = starts[first - 1] if 0 < first <= len(starts) else None
        high = starts[last] if 0 <= last < len(starts) else None
        timed = [
            (started, bar)
            for started, bar in timed
            if (first <= bar.number <= last if bar.kind == "llm" else _between(started, low, high))
        ]
    return Waterfall(span, [bar for _, bar in timed])


def _between(started: datetime, low: datetime | None, high: datetime | None) -> bool:
    return (low is None or started >= low) and (high is None or started < high)


def _duration(item: Any) -> float:
    if item.latency_ms is not None:
        return max(float(item.latency_ms), 0.0)
    if item.started_at is not None and item.ended_at is not None:
        return max((item.ended_at - item.started_at).total_seconds() * 1000, 0.0)
    return 0.0


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
