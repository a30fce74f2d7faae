"""LangChain and LangGraph: a callback handler that stores their runs.

    agent_tracer.init(frameworks="auto")                     # every run in the process, or:
    graph.invoke(inputs, config={"callbacks": [agent_tracer.frameworks.langchain.callback_handler()]})

`instrument()` (what `frameworks="auto"` calls) registers the handler with langchain-core's
configure hook, so every chain, graph and tool run gets it without a `callbacks` entry; passing it
in `config` as well is harmless (it is one object, and LangChain adds it once). What becomes what:

- a root run (a graph's or chain's `invoke`/`stream`, sync or async) is a trace, named after the
  run (`create_react_agent(..., name=...)`, `.with_config(run_name=...)`), with the run's tags and
  metadata, the first user message as its task and the last message's text as its output; inside a
  `@trace_agent` or another framework's run it is a nested agent run of that trace instead;
- a tool run is a tool execution: its arguments, its result (a `ToolMessage`'s content), its error;
- LangGraph's `interrupt()` (human in the loop) is not a failure: the paused run is stored with no
  error, tagged "interrupted", the interrupts' values in its metadata (`interrupts`), and the tool
  that paused with no error; the run resumed with `Command(resume=...)` is a trace of its own,
  tagged "resumed", its input `{"resume": ...}`; both carry LangGraph's `thread_id` in metadata;
- a chat model run is not stored from here: `langchain-openai` calls the official `openai` SDK, whose
  httpx traffic the transport capture stores once, in this trace, because the root run's context
  is current while the graph runs (nodes run in tasks and executor threads that copy it). Such
  runs are counted as `model_spans_left_to_transport`.

The handler runs inline (`run_inline`), so async runs call it in their own task's context, where
the trace must be made current. Ids: a root run's UUID is the trace id, so `record_outcome(
str(run_id))` after `invoke(..., config={"run_id": run_id})` reaches it. Nothing here raises into
LangChain: a failure is counted in `agent_tracer.stats()["capture_errors"]` and logged once.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, convert_to_openai_messages
from langchain_core.tracers.context import register_configure_hook

from agent_tracer import runtime as _runtime
from agent_tracer.frameworks.scope import AdapterStats, Scope, span_hex, submit_run, submit_tool
from agent_tracer.messages import content_text
from agent_tracer.records import SpanIds

SOURCE = "langchain"


@dataclass
class _Open:
    trace_id: str
    anchor: str
    """The stored span this run's children hang under: its own when stored, else its parent's."""
    scope: Scope | None = None
    name: str | None = None
    arguments: Any = None
    started_ns: int = 0
    task: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    error: str | None = None
    top: _Open | None = None
    """The outermost LangChain run this one lies in (None: this is one): where interrupts go."""
    interrupts: dict[str, Any] | None = None
    """On an outermost run: the values of LangGraph interrupts raised inside it, by interrupt id."""


INTERRUPTED, RESUMED = "interrupted", "resumed"
"""The tags of a run paused by LangGraph's `interrupt()` and of the run that resumed it."""


class AgentTracerCallbackHandler(BaseCallbackHandler):
    """Stores LangChain's root runs as traces and tool runs as tool executions."""

    run_inline = True
    raise_error = False

    def __init__(self) -> None:
        super().__init__()
        self.stats = AdapterStats()
        self.enabled = True
        self._runs: dict[UUID, _Open] = {}
        self._lock = threading.Lock()

    # -- chains and graphs ---------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._safely(
            "chain start", self._chain_started, serialized, inputs, run_id, parent_run_id, tags, metadata, kwargs
        )

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._safely("chain end", self._chain_ended, run_id, outputs, None)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._safely("chain error", self._chain_ended, run_id, None, error)

    # -- tools ---------------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._safely("tool start", self._tool_started, serialized, input_str, inputs, run_id, parent_run_id, kwargs)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._safely("tool end", self._tool_ended, run_id, output, None)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._safely("tool error", self._tool_ended, run_id, None, error)

    # -- model calls: the transport stores them ------------------------------------------------

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        """Defined so LangChain does not fall back to `on_llm_start` with the messages as text."""

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        if self.enabled and _runtime.current() is not None:
            self.stats.add("model_spans_left_to_transport")

    # -- what each event does ------------------------------------------------------------------

    def _safely(self, what: str, handler: Any, *args: Any) -> None:
        rt = _runtime.current()
        if rt is None or not self.enabled:
            return
        try:
            handler(rt, *args)
        except Exception as exc:  # tracing never breaks the agent: counted, logged once
            self.stats.add("errors")
            rt.capture_failed(f"the langchain adapter ({what})", exc)

    def _parent(self, parent_run_id: UUID | None) -> _Open | None:
        return self._runs.get(parent_run_id) if parent_run_id is not None else None

    def _chain_started(self, rt, serialized, inputs, run_id, parent_run_id, tags, metadata, kwargs) -> None:
        parent = self._parent(parent_run_id)
        if parent is not None:  # a node, a sequence, a subgraph: its tools hang under the stored ancestor
            with self._lock:
                self._runs[run_id] = _Open(parent.trace_id, parent.anchor, top=parent.top or parent)
            return
        scope = Scope.opened(str(run_id), span_hex(str(run_id)))
        command = _command(inputs)
        opened = _Open(
            trace_id=scope.ids.trace_id,
            anchor=scope.ids.span_id,
            scope=scope,
            name=kwargs.get("name") or _name(serialized) or "chain",
            arguments=inputs if command is None else command,
            started_ns=time.time_ns(),
            task=_first_user_text(inputs),
            tags=list(tags or ()) + ([RESUMED] if command is not None and "resume" in command else []),
            metadata=_metadata(metadata),
        )
        with self._lock:
            self._runs[run_id] = opened
        scope.enter()

    def _chain_ended(self, rt, run_id, outputs, error) -> None:
        with self._lock:
            opened = self._runs.pop(run_id, None)
        if opened is not None and self._interrupted(opened, error):
            error = None
        if opened is None or opened.scope is None:
            return
        opened.scope.exit(self.stats)
        self.stats.add("runs" if opened.scope.root else "agent_runs")
        if opened.interrupts:
            opened.tags = [*(opened.tags or ()), INTERRUPTED]
            opened.metadata = {**(opened.metadata or {}), "interrupts": list(opened.interrupts.values())}
        submit_run(
            rt,
            opened.scope.ids,
            name=opened.name or "chain",
            started_ns=opened.started_ns,
            input=_plain(opened.arguments),
            output=_output(outputs) if error is None else None,
            error=_error_text(error),
            task=opened.task,
            tags=opened.tags,
            metadata=opened.metadata,
            source=SOURCE,
        )

    def _tool_started(self, rt, serialized, input_str, inputs, run_id, parent_run_id, kwargs) -> None:
        parent = self._parent(parent_run_id)
        span_id = span_hex(str(run_id))
        if parent is not None:
            scope = Scope(SpanIds(parent.trace_id, span_id, parent.anchor))
        else:  # a tool run on its own: in the current trace, or a trace of its own
            scope = Scope.opened(str(run_id), span_id)
        opened = _Open(
            trace_id=scope.ids.trace_id,
            anchor=span_id,
            scope=scope,
            name=kwargs.get("name") or _name(serialized) or "tool",
            arguments=_plain(inputs) if inputs is not None else _parsed(input_str),
            started_ns=time.time_ns(),
            top=(parent.top or parent) if parent is not None else None,
        )
        with self._lock:
            self._runs[run_id] = opened
        scope.enter()

    def _tool_ended(self, rt, run_id, output, error) -> None:
        with self._lock:
            opened = self._runs.pop(run_id, None)
        if opened is None or opened.scope is None:
            return
        if self._interrupted(opened, error):  # paused for a human, not failed: it runs again on resume
            error = None
        opened.scope.exit(self.stats)
        result, error_text = _tool_result(output), _error_text(error)
        if error_text is None and getattr(output, "status", None) == "error":
            error_text = str(result)
        self.stats.add("tool_executions")
        submit_tool(
            rt,
            opened.scope.ids,
            name=opened.name or "tool",
            arguments=opened.arguments,
            result=result,
            error=error_text,
            started_ns=opened.started_ns,
            source=SOURCE,
        )

    def _interrupted(self, opened: _Open, error: BaseException | None) -> bool:
        """Whether `error` is LangGraph's interrupt (`interrupt()` pausing the graph for a human);
        if so its values are noted on the outermost run, which then stores them."""
        if error is None or not _is_interrupt(error):
            return False
        found = error.args[0] if error.args and isinstance(error.args[0], list | tuple) else ()
        top = opened.top or opened
        with self._lock:
            if top.interrupts is None:
                top.interrupts = {}
            for interrupt in found:
                top.interrupts.setdefault(
                    str(getattr(interrupt, "id", len(top.interrupts))), _plain(getattr(interrupt, "value", interrupt))
                )
        return True


def _is_interrupt(error: BaseException) -> bool:
    """LangGraph's `GraphInterrupt` (and its subclasses), known by name so that LangChain alone
    does not import LangGraph."""
    return any(
        cls.__name__ == "GraphInterrupt" and cls.__module__.startswith("langgraph") for cls in type(error).__mro__
    )


def _command(inputs: Any) -> dict[str, Any] | None:
    """LangGraph's `Command` (`graph.invoke(Command(resume=...))`) as the fields it sets, else None."""
    if type(inputs).__name__ != "Command" or not type(inputs).__module__.startswith("langgraph"):
        return None
    fields = {name: getattr(inputs, name, None) for name in ("update", "resume", "goto")}
    return {name: _plain(value) for name, value in fields.items() if value is not None and value != ()}


def _name(serialized: dict[str, Any] | None) -> str | None:
    if not serialized:
        return None
    name = serialized.get("name")
    if name:
        return str(name)
    ids = serialized.get("id")
    return str(ids[-1]) if isinstance(ids, list) and ids else None


def _plain(value: Any) -> Any:
    """Inputs and outputs with LangChain messages as OpenAI chat messages, so they store as JSON."""
    if isinstance(value, BaseMessage):
        return convert_to_openai_messages(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple) and any(isinstance(v, BaseMessage) for v in value):
        return convert_to_openai_messages(list(value))
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _messages(value: Any) -> list[Any]:
    """The chat messages in a run's inputs or outputs (`{"messages": [...]}` or a list), as given."""
    found = value.get("messages") if isinstance(value, dict) else value
    return list(found) if isinstance(found, list | tuple) else []


def _role_and_content(message: Any) -> tuple[str | None, Any]:
    """A message's role and content in any of LangChain's shapes: a message object, an OpenAI
    dict, a `(role, content)` pair."""
    if isinstance(message, BaseMessage):
        return {"human": "user", "ai": "assistant"}.get(message.type, message.type), message.content
    if isinstance(message, dict):
        return message.get("role") or message.get("type"), message.get("content")
    if isinstance(message, list | tuple) and len(message) == 2 and isinstance(message[0], str):
        return message[0], message[1]
    return None, None


def _first_user_text(inputs: Any) -> str | None:
    if isinstance(inputs, str):
        return inputs
    for message in _messages(inputs):
        role, content = _role_and_content(message)
        if role in ("user", "human"):
            return content_text(content) or None
    if isinstance(inputs, dict):
        texts = [v for v in inputs.values() if isinstance(v, str)]
        return texts[0] if texts else None
    return None


def _output(outputs: Any) -> Any:
    """The last message's text when the run returned messages (a graph's state), else the outputs."""
    messages = _messages(outputs)
    if messages:
        return content_text(_role_and_content(messages[-1])[1])
    return _plain(outputs)


def _metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The run's metadata, less LangGraph's per-step bookkeeping."""
    return {k: v for k, v in (metadata or {}).items() if not k.startswith(("langgraph_", "checkpoint_"))}


def _tool_result(output: Any) -> Any:
    if isinstance(output, BaseMessage):
        return output.content
    return _plain(output)


def _parsed(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _error_text(error: BaseException | None) -> str | None:
    return f"{type(error).__name__}: {error}" if error is not None else None


_lock = threading.Lock()
_handler: AgentTracerCallbackHandler | None = None
_hooked = False


def current() -> AgentTracerCallbackHandler | None:
    """The handler, if one was made in this process."""
    return _handler


def callback_handler() -> AgentTracerCallbackHandler:
    """The process's handler (one object, so passing it in `config` and registering it globally
    adds it once), for `config={"callbacks": [handler]}`. It records while `agent_tracer.init()`
    is in force, and after `uninstrument()` again once this is called."""
    global _handler
    with _lock:
        if _handler is None:
            _handler = AgentTracerCallbackHandler()
        _handler.enabled = True
        return _handler


def instrument() -> AgentTracerCallbackHandler:
    """Give every LangChain run in the process the handler (langchain-core's configure hook)."""
    global _hooked
    handler = callback_handler()
    with _lock:
        if not _hooked:
            register_configure_hook(ContextVar("agent_tracer_langchain", default=handler), True)
            _hooked = True
    return handler


def uninstrument() -> None:
    """Stop recording (the handler stays registered with LangChain, doing nothing)."""
    if _handler is not None:
        _handler.enabled = False
