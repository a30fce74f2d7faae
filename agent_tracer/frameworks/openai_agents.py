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
  capture stores each call once, with its whole request and response, in the same trace, since
  the trace's context is current while the SDK runs (see `scope.py`). They are counted.

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
from dataclasses import dataclass, field
from typing import Any

from agent_tracer import runtime as _runtime
from agent_tracer.frameworks.scope import AdapterStats, Scope, epoch_ns, span_hex, submit_run, submit_tool, trace_hex
from agent_tracer.messages import content_text
from agent_tracer.records import SpanIds

SOURCE = "openai-agents"
DEFAULT_WORKFLOW_NAME = "Agent workflow"
MODEL_SPAN_TYPES = ("generation", "response")
STORED_SPAN_TYPES = ("agent", "function", "handoff", "guardrail")


def trace_id_for(sdk_trace_id: str) -> str:
    """The stored trace id of an SDK trace id (`result.trace.trace_id`, `agents.gen_trace_id()`),
    for `agent_tracer.record_outcome` after the run or `agent-tracer traces show`. A run inside
    a `@trace_agent` is stored in that trace instead."""
    return trace_hex(sdk_trace_id)


@dataclass
class _OpenTrace:
    scope: Scope
    name: str
    group_id: str | None
    metadata: dict[str, Any]
    started_ns: int = field(default_factory=time.time_ns)
    spans: dict[str, str] = field(default_factory=dict)
    """SDK span id → the span id its children hang under (its own when stored, else its parent's)."""
    scopes: dict[str, Scope] = field(default_factory=dict)
    first_agent: str | None = None
    task: str | None = None
    output: Any = None
    error: str | None = None


class AgentTracerProcessor:
    """Receives the SDK's traces and spans; a `TracingProcessor` (the base class is mixed in by
    `processor()`, so this module imports without the SDK)."""

    def __init__(self) -> None:
        self.stats = AdapterStats()
        self.enabled = True
        self._traces: dict[str, _OpenTrace] = {}
        self._lock = threading.Lock()

    # -- the TracingProcessor interface -------------------------------------------------------

    def on_trace_start(self, sdk_trace: Any) -> None:
        self._safely("trace start", self._trace_started, sdk_trace)

    def on_trace_end(self, sdk_trace: Any) -> None:
        self._safely("trace end", self._trace_ended, sdk_trace)

    def on_span_start(self, span: Any) -> None:
        self._safely("span start", self._span_started, span)

    def on_span_end(self, span: Any) -> None:
        self._safely("span end", self._span_ended, span)

    def shutdown(self) -> None:
        """Nothing to flush here: payloads go to agent-tracer's writer as spans end."""

    def force_flush(self) -> None:
        """See `shutdown`: `agent_tracer.flush()` waits for the writer."""

    # -- what each event does ------------------------------------------------------------------

    def _safely(self, what: str, handler: Any, item: Any) -> None:
        rt = _runtime.current()
        if rt is None or not self.enabled:
            return
        try:
            handler(rt, item)
        except Exception as exc:  # tracing never breaks the agent: counted, logged once
            self.stats.add("errors")
            rt.capture_failed(f"the openai-agents adapter ({what})", exc)

    def _trace_started(self, rt: _runtime.Runtime, sdk_trace: Any) -> None:
        sdk_id = sdk_trace.trace_id
        scope = Scope.opened(sdk_id, span_hex(f"root:{sdk_id}"))
        export = sdk_trace.export() or {}
        opened = _OpenTrace(
            scope=scope,
            name=getattr(sdk_trace, "name", None) or DEFAULT_WORKFLOW_NAME,
            group_id=export.get("group_id"),
            metadata=dict(export.get("metadata") or {}),
        )
        with self._lock:
            self._traces[sdk_id] = opened
        scope.enter()

    def _trace_ended(self, rt: _runtime.Runtime, sdk_trace: Any) -> None:
        with self._lock:
            opened = self._traces.pop(sdk_trace.trace_id, None)
        if opened is None:
            return
        opened.scope.exit(self.stats)
        name = opened.name
        if name == DEFAULT_WORKFLOW_NAME and opened.first_agent:
            name = opened.first_agent
        self.stats.add("runs")
        submit_run(
            rt,
            opened.scope.ids,
            name=name,
            started_ns=opened.started_ns,
            input=opened.task,
            output=opened.output,
            error=opened.error,
            task=opened.task,
            tags=[f"group:{opened.group_id}"] if opened.group_id else [],
            metadata={**opened.metadata, "openai_agents.trace_id": sdk_trace.trace_id},
            source=SOURCE,
        )

    def _span_started(self, rt: _runtime.Runtime, span: Any) -> None:
        opened = self._traces.get(span.trace_id)
        if opened is None:
            return
        kind = span.span_data.type
        parent = opened.spans.get(span.parent_id or "", opened.scope.ids.span_id)
        opened.spans[span.span_id] = span_hex(span.span_id) if kind in STORED_SPAN_TYPES else parent
        if kind == "agent":  # model calls made inside hang under it (a tool's too: under its agent)
            scope = Scope(SpanIds(opened.scope.ids.trace_id, opened.spans[span.span_id], parent))
            opened.scopes[span.span_id] = scope
            scope.enter()
            if opened.first_agent is None:
                opened.first_agent = span.span_data.name

    def _span_ended(self, rt: _runtime.Runtime, span: Any) -> None:
        opened = self._traces.get(span.trace_id)
        if opened is None:
            return
        scope = opened.scopes.pop(span.span_id, None)
        if scope is not None:
            scope.exit(self.stats)
        data = span.span_data
        kind = data.type
        error = _error_text(span.error) if span.error else None
        if error and kind != "function" and opened.error is None:  # a tool's error is the model's to handle
            opened.error = error
        if kind in MODEL_SPAN_TYPES:
            self.stats.add("model_spans_left_to_transport")
            self._note_model_span(opened, data)
            return
        if kind not in STORED_SPAN_TYPES:
            return
        parent = opened.spans.get(span.parent_id or "", opened.scope.ids.span_id)
        ids = SpanIds(opened.scope.ids.trace_id, opened.spans.get(span.span_id) or span_hex(span.span_id), parent)
        started_ns = epoch_ns(span.started_at, time.time_ns())
        ended_ns = epoch_ns(span.ended_at, time.time_ns())
        if kind == "agent":
            self.stats.add("agent_runs")
            submit_run(rt, ids, name=data.name, started_ns=started_ns, ended_ns=ended_ns, error=error, source=SOURCE)
            return
        if kind == "function":
            name, arguments, result = data.name, _parsed(data.input), data.output
        elif kind == "handoff":
            name, arguments, result = "handoff", {"from_agent": data.from_agent, "to_agent": data.to_agent}, None
        else:
            name, arguments, result = "guardrail", {"name": data.name}, {"triggered": bool(data.triggered)}
        self.stats.add("tool_executions")
        submit_tool(
            rt,
            ids,
            name=name,
            arguments=arguments,
            result=result,
            error=error,
            started_ns=started_ns,
            ended_ns=ended_ns,
            source=SOURCE,
        )

    @staticmethod
    def _note_model_span(opened: _OpenTrace, data: Any) -> None:
        """The run's task (the first user text) and output (the last answer's text)."""
        if opened.task is None:
            opened.task = _first_user_text(getattr(data, "input", None))
        response = getattr(data, "response", None)
        if response is not None:
            opened.output = getattr(response, "output_text", None) or opened.output
        elif getattr(data, "output", None):
            texts = [content_text(m.get("content")) for m in data.output if isinstance(m, dict)]
            opened.output = " ".join(t for t in texts if t) or opened.output


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
