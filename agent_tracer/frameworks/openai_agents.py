"""The OpenAI Agents SDK (`openai-agents`, module `agents`): a `TracingProcessor` that stores its runs.

    agent_tracer.init(frameworks="auto")                 # or, after init():
    agent_tracer.frameworks.openai_agents.instrument()

The processor is added with `agents.add_trace_processor`, next to the SDK's own (OpenAI's
uploader stays unless you drop it with `agents.set_trace_processors`). What becomes what:

- an SDK trace (one `Runner.run`, or a `with agents.trace(...)` block) is a trace: named after its
  workflow name (the SDK's default "Agent workflow" gives way to the first agent's name), its
  `group_id` a tag `group:<id>`, its metadata the trace's metadata, the first user text its task;
  inside a `@trace_agent` it joins that trace as a nested run instead;
- an `agent` span is a nested agent run named after the agent;
- a `function` span is a tool execution: the arguments the model sent, the result, the error;
- a `handoff` span is a tool execution named "handoff" (arguments: from_agent, to_agent), a
  `guardrail` span one named "guardrail" (arguments: name; result: triggered);
- `generation` and `response` spans (the model calls) are not stored from here: the transport
  capture stores each call once, with its whole request and response, in the same trace and
  under its agent, since our context is current while the SDK runs (one scope per SDK trace whose
  ids follow the SDK's current agent span; see `scope.py`). They are counted.

Rows are built by the writer, not on the agent's path: an ended span's plain fields are kept and
go to the writer with the run's row when the SDK trace ends (every `ROWS_PER_PAYLOAD` spans in a
long run), as the SDK's own processor queues its spans for its exporter thread.

The trace's status is "error" when a span other than a tool's ends with an error (a guardrail's
tripwire, a failed model call, a run past `max_turns`): a tool's error goes back to the model.

Ids: the SDK's `trace_<32 hex>` is the stored trace id (`trace_id_for` maps one), span ids are
hashes of the SDK's. Nothing here raises into the SDK: a failure is counted in
`agent_tracer.stats()["capture_errors"]`, logged once, and the run goes on.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from opentelemetry.trace import SpanContext

from agent_tracer import runtime as _runtime
from agent_tracer.frameworks.scope import (
    AdapterStats,
    Scope,
    epoch_ns,
    run_payload,
    span_context,
    span_hex,
    tool_payload,
    trace_hex,
)
from agent_tracer.messages import content_text
from agent_tracer.records import Record, SpanIds, jsonable

SOURCE = "openai-agents"
DEFAULT_WORKFLOW_NAME = "Agent workflow"
MODEL_SPAN_TYPES = ("generation", "response")
STORED_SPAN_TYPES = ("agent", "function", "handoff", "guardrail")


def trace_id_for(sdk_trace_id: str) -> str:
    """The stored trace id of an SDK trace id (`result.trace.trace_id`, `agents.gen_trace_id()`),
    for `agent_tracer.record_outcome` after the run or `agent-tracer traces show`. A run inside
    a `@trace_agent` is stored in that trace instead."""
    return trace_hex(sdk_trace_id)


class _OpenTrace:
    """What the processor holds for one SDK trace while it runs."""

    __slots__ = (
        "sdk_id",
        "scope",
        "sdk_trace",
        "started_ns",
        "parents",
        "contexts",
        "first_agent",
        "models",
        "failed",
        "rows",
    )

    def __init__(self, sdk_id: str, scope: Scope, sdk_trace: Any) -> None:
        self.sdk_id = sdk_id
        self.scope = scope
        self.sdk_trace = sdk_trace
        self.started_ns = time.time_ns()
        self.parents: dict[str, tuple[str | None, str]] = {}
        """SDK span id → (its parent's SDK span id, its span type), from its start on."""
        self.contexts: dict[str | None, SpanContext] = {}
        """SDK agent span id (None: the run's root) → its span context, made when first asked for."""
        self.first_agent: str | None = None
        self.models: list[Any] = []
        """The ended model spans: the first ones (the run's task) and the last (its output)."""
        self.failed: Any = None
        """The error of the first span other than a tool's that ended with an error."""
        self.rows: list[_SpanRows] = []
        """Ended stored spans not yet handed to the writer: they go with the run's row, or in
        groups of `ROWS_PER_PAYLOAD` during a long run."""

    def stored_parent(self, sdk_parent_id: str | None) -> str | None:
        """The SDK id of the nearest stored ancestor; None for the trace's root run."""
        parents = self.parents
        while sdk_parent_id is not None and sdk_parent_id in parents:
            grand, kind = parents[sdk_parent_id]
            if kind in STORED_SPAN_TYPES:
                return sdk_parent_id
            sdk_parent_id = grand
        return None

    def current_context(self) -> SpanContext:
        """Our span context of the agent the SDK runs now (its current span or the nearest agent
        span above it), or the run's root: what a model call, a `@trace_tool` or
        `record_outcome()` made now hangs under. Asked for when read, not on every span."""
        agent: str | None = None
        span = _sdk_current_span()
        if span is not None and span.trace_id == self.sdk_id:
            parents, span_id = self.parents, span.span_id
            while span_id is not None and span_id in parents:
                parent, kind = parents[span_id]
                if kind == "agent":
                    agent = span_id
                    break
                span_id = parent
        found = self.contexts.get(agent)
        if found is None:
            span_id = span_hex(agent) if agent is not None else self.scope.ids.span_id
            found = self.contexts[agent] = span_context(self.scope.ids.trace_id, span_id)
        return found


KEPT_MODEL_SPANS = 8
"""Model spans held per open trace, the first and the last ones: a long run does not grow it."""
ROWS_PER_PAYLOAD = 64


class AgentTracerProcessor:
    """Receives the SDK's traces and spans; a `TracingProcessor` (the base class is mixed in by
    `processor()`, so this module imports without the SDK).

    The agent's path gets only what cannot wait. One scope per SDK trace is made current, whose
    ids are those of the agent span the SDK is in when they are read (`current_context`), so a
    model call the transport capture records hangs under its agent without a context switch per
    span; each span's parent is noted; an ended span's plain fields go in a small payload that
    crosses to the writer (a child process by default), which builds the rows. The SDK's own
    processor likewise only queues its spans for its exporter thread."""

    def __init__(self) -> None:
        self.stats = AdapterStats()
        self.enabled = True
        self._traces: dict[str, _OpenTrace] = {}

    # -- the TracingProcessor interface -------------------------------------------------------

    def on_trace_start(self, sdk_trace: Any) -> None:
        if not self.enabled or _runtime.current() is None:
            return
        try:
            sdk_id = sdk_trace.trace_id
            opened = _OpenTrace(sdk_id, Scope.opened(sdk_id), sdk_trace)
            self._traces[sdk_id] = opened
            opened.scope.enter(opened.current_context)
        except Exception as exc:  # tracing never breaks the agent: counted, logged once
            self._failed("trace start", exc)

    def on_trace_end(self, sdk_trace: Any) -> None:
        opened = self._traces.pop(sdk_trace.trace_id, None)
        if opened is None:
            return
        try:
            opened.scope.exit(self.stats)
            self._submit(_Rows(opened.rows, _RunRows(opened)))
            self.stats.add("runs")
            self.stats.add("model_spans_left_to_transport", len(opened.models))
        except Exception as exc:
            self._failed("trace end", exc)

    def on_span_start(self, span: Any) -> None:
        opened = self._traces.get(span.trace_id)
        if opened is None:
            return
        try:
            data = span.span_data
            kind = data.type
            opened.parents[span.span_id] = (span.parent_id, kind)
            if kind == "agent" and opened.first_agent is None:
                opened.first_agent = data.name
        except Exception as exc:
            self._failed("span start", exc)

    def on_span_end(self, span: Any) -> None:
        opened = self._traces.get(span.trace_id)
        if opened is None:
            return
        try:
            kind = span.span_data.type
            if span.error and kind != "function" and opened.failed is None:  # a tool's error is the model's
                opened.failed = span.error
            if kind in MODEL_SPAN_TYPES:
                models = opened.models
                models.append(span)
                if len(models) > 2 * KEPT_MODEL_SPANS:
                    del models[1:-KEPT_MODEL_SPANS]
            elif kind in STORED_SPAN_TYPES:
                rows = opened.rows
                rows.append(_SpanRows(opened.scope.ids, opened.stored_parent(span.parent_id), span))
                if len(rows) >= ROWS_PER_PAYLOAD:
                    opened.rows = []
                    self._submit(_Rows(rows))
                self.stats.add("agent_runs" if kind == "agent" else "tool_executions")
        except Exception as exc:
            self._failed("span end", exc)

    def shutdown(self) -> None:
        """Nothing to flush here: an open run's rows go to the writer when it ends."""

    def force_flush(self) -> None:
        """See `shutdown`: `agent_tracer.flush()` waits for the writer."""

    def _submit(self, payload: Any) -> None:
        rt = _runtime.current()
        if rt is not None:
            rt.submit(payload)

    def _failed(self, what: str, exc: Exception) -> None:
        self.stats.add("errors")
        rt = _runtime.current()
        if rt is not None:
            rt.capture_failed(f"the openai-agents adapter ({what})", exc)


def _sdk_current_span() -> Any:
    from agents.tracing import get_current_span

    return get_current_span()


class _Rows:
    """What the processor hands the writer at once: ended spans, and the run when it ended."""

    __slots__ = ("spans", "run")

    def __init__(self, spans: list[_SpanRows], run: _RunRows | None = None) -> None:
        self.spans, self.run = spans, run

    def records(self) -> list[Record]:
        made = [record for span in self.spans for record in span.records()]
        return made + self.run.records() if self.run is not None else made


class _SpanRows:
    """An ended agent, function, handoff or guardrail span as plain fields (it pickles); the
    writer makes its row (`records`): our ids, parsed times, JSON arguments and result."""

    __slots__ = ("root", "sdk_span_id", "sdk_parent_id", "started_at", "ended_at", "error", "kind", "fields")

    def __init__(self, root: SpanIds, sdk_parent_id: str | None, span: Any) -> None:
        data = span.span_data
        self.root, self.sdk_span_id, self.sdk_parent_id = root, span.span_id, sdk_parent_id
        self.started_at, self.ended_at, self.error = span.started_at, span.ended_at, span.error
        self.kind = kind = data.type
        if kind == "agent":
            self.fields: tuple[Any, ...] = (data.name,)
        elif kind == "function":
            output = data.output
            self.fields = (data.name, data.input, output if isinstance(output, str) else jsonable(output))
        elif kind == "handoff":
            self.fields = (data.from_agent, data.to_agent)
        else:
            self.fields = (data.name, bool(data.triggered))

    def records(self) -> list[Record]:
        parent = span_hex(self.sdk_parent_id) if self.sdk_parent_id else self.root.span_id
        ids = SpanIds(self.root.trace_id, span_hex(self.sdk_span_id), parent)
        error = _error_text(self.error) if self.error else None
        now = time.time_ns()
        started_ns, ended_ns = epoch_ns(self.started_at, now), epoch_ns(self.ended_at, now)
        kind, fields = self.kind, self.fields
        if kind == "agent":
            return run_payload(
                ids, name=fields[0], started_ns=started_ns, ended_ns=ended_ns, error=error, source=SOURCE
            ).records()
        if kind == "function":
            name, arguments, result = fields[0], _parsed(fields[1]), fields[2]
        elif kind == "handoff":
            name, arguments, result = "handoff", {"from_agent": fields[0], "to_agent": fields[1]}, None
        else:
            name, arguments, result = "guardrail", {"name": fields[0]}, {"triggered": fields[1]}
        return tool_payload(
            ids,
            name=name,
            arguments=arguments,
            result=result,
            error=error,
            started_ns=started_ns,
            ended_ns=ended_ns,
            source=SOURCE,
        ).records()


class _RunRows:
    """An ended SDK trace as plain fields (it pickles): the writer makes the run's row (a root
    run's makes the trace's): name, task, output, error, group, metadata. The task and output
    are read there, from the first model span's input and the last ones' answers."""

    __slots__ = ("ids", "name", "started_ns", "ended_ns", "inputs", "answers", "error", "group_id", "metadata")

    def __init__(self, opened: _OpenTrace) -> None:
        sdk_trace = opened.sdk_trace
        export = sdk_trace.export() or {}
        name = getattr(sdk_trace, "name", None) or DEFAULT_WORKFLOW_NAME
        models = opened.models
        self.ids, self.started_ns, self.ended_ns = opened.scope.ids, opened.started_ns, time.time_ns()
        self.name = opened.first_agent if name == DEFAULT_WORKFLOW_NAME and opened.first_agent else name
        self.inputs = [getattr(m.span_data, "input", None) for m in models[:1]]
        self.answers = [_answer(m.span_data) for m in models[-LAST_ANSWERS:]]
        self.error, self.group_id = opened.failed, export.get("group_id")
        self.metadata = {**(export.get("metadata") or {}), "openai_agents.trace_id": sdk_trace.trace_id}

    def records(self) -> list[Record]:
        task = next((text for text in map(_first_user_text, self.inputs) if text), None)
        output = next((text for text in map(_answer_text, reversed(self.answers)) if text), None)
        return run_payload(
            self.ids,
            name=self.name,
            started_ns=self.started_ns,
            ended_ns=self.ended_ns,
            input=task,
            output=output,
            error=_error_text(self.error) if self.error else None,
            task=task,
            tags=[f"group:{self.group_id}"] if self.group_id else [],
            metadata=self.metadata,
            source=SOURCE,
        ).records()


LAST_ANSWERS = 3
"""Model answers a run's payload carries, the last ones: its output is the last with text."""


def _answer(data: Any) -> Any:
    """A model span's answer: the Responses API's response, or the chat output's messages."""
    response = getattr(data, "response", None)
    return response if response is not None else getattr(data, "output", None)


def _answer_text(answer: Any) -> str | None:
    if isinstance(answer, list):
        texts = [content_text(m.get("content")) for m in answer if isinstance(m, dict)]
        return " ".join(t for t in texts if t) or None
    return getattr(answer, "output_text", None) or None


def _parsed(arguments: Any) -> Any:
    """A function span's input: the JSON arguments the model sent, parsed when they parse."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _error_text(error: Any) -> str | None:
    if not error:
        return None
    if not isinstance(error, dict):
        return str(error)
    message, data = str(error.get("message") or "error"), error.get("data")
    if not data:
        return message
    detail = data.get("error") if isinstance(data, dict) and "error" in data else json.dumps(data, default=repr)
    return f"{message}: {detail}"


def _first_user_text(items: Any) -> str | None:
    if isinstance(items, str):
        return items
    for item in items or ():
        if isinstance(item, dict) and item.get("role") == "user":
            return content_text(item.get("content")) or None
    return None


_lock = threading.Lock()
_processor: Any = None


def current() -> AgentTracerProcessor | None:
    """The processor, if one was made in this process."""
    return _processor


def processor() -> Any:
    """The process's processor (a `agents.tracing.TracingProcessor`), made on first use."""
    global _processor
    with _lock:
        if _processor is None:
            from agents.tracing import TracingProcessor

            cls = type("AgentTracerProcessor", (AgentTracerProcessor, TracingProcessor), {})
            _processor = cls()
        return _processor


_registered = False


def instrument() -> Any:
    """Add agent-tracer's processor to the SDK's (once; it records while `agent_tracer.init()` is
    in force). Returns the processor: `agents.set_trace_processors` replaces the whole list, so
    put it in the list you pass (`set_trace_processors([processor])` keeps only ours)."""
    global _registered
    from agents import add_trace_processor

    found = processor()
    found.enabled = True
    with _lock:
        if not _registered:
            add_trace_processor(found)
            _registered = True
    return found


def uninstrument() -> None:
    """Stop recording (the processor stays registered with the SDK, doing nothing)."""
    if _processor is not None:
        _processor.enabled = False
