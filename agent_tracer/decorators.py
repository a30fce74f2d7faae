"""`@trace_agent` and `@trace_tool`: the agent's own spans around its model calls.

An agent run is an `invoke_agent` span; the model calls captured inside are its children, so one
run is one trace (the outermost `trace_agent` names it). Nested agents nest. Tools are
`execute_tool` spans. Both work on plain and async functions, and neither changes what the function
returns or raises; what goes wrong in recording is counted, never raised.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from agent_tracer import runtime as _runtime
from agent_tracer import semconv
from agent_tracer.frameworks.scope import in_framework_run
from agent_tracer.records import AgentRunPayload, SpanIds, ToolPayload, jsonable

F = TypeVar("F", bound=Callable[..., Any])

_in_agent: contextvars.ContextVar[bool] = contextvars.ContextVar("agent_tracer_in_agent", default=False)


def _bound_arguments(func: Callable[..., Any], args: tuple, kwargs: dict) -> dict[str, Any]:
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return {"args": list(args), "kwargs": kwargs}
    return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}


TASK_PARAMETERS = ("task", "question", "query", "prompt", "request", "input", "message", "goal")
"""Parameter names that say "this is the run's task"; otherwise the first text argument is."""


def _task(arguments: dict[str, Any]) -> str | None:
    texts = {k: v for k, v in arguments.items() if isinstance(v, str)}
    named = next((texts[name] for name in TASK_PARAMETERS if name in texts), None)
    return named if named is not None else next(iter(texts.values()), None)


class _Run:
    """One traced invocation: opens the span, makes it current, and builds the payload at the end."""

    def __init__(
        self,
        rt: _runtime.Runtime,
        kind: str,
        name: str,
        func: Callable[..., Any],
        args,
        kwargs,
        tags: tuple[str, ...] = (),
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.rt, self.kind, self.name = rt, kind, name
        self.arguments = _bound_arguments(func, args, kwargs)
        self.tags, self.metadata = list(tags), dict(metadata or {})
        self.root = kind == semconv.OP_INVOKE_AGENT and not _in_agent.get() and not in_framework_run()
        attrs: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: kind}
        if kind == semconv.OP_INVOKE_AGENT:
            attrs[semconv.GEN_AI_AGENT_NAME] = name
            if self.tags:
                attrs[semconv.AGENT_TRACER_TAGS] = self.tags
        else:
            attrs[semconv.GEN_AI_TOOL_NAME] = name
            if rt.config.capture_content:
                attrs[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = _dumps(self.arguments)
        self.started_ns = time.time_ns()
        self.span = rt.tracer.start_span(f"{kind} {name}", attributes=attrs)
        ctx = self.span.get_span_context()
        parent = getattr(self.span, "parent", None)
        self.ids = SpanIds(
            format(ctx.trace_id, "032x"),
            format(ctx.span_id, "016x"),
            format(parent.span_id, "016x") if parent else None,
        )
        if kind == semconv.OP_INVOKE_AGENT:
            self.span.set_attribute(semconv.GEN_AI_AGENT_ID, self.ids.span_id)

    def __enter__(self) -> _Run:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        self._agent_token = _in_agent.set(True) if self.kind == semconv.OP_INVOKE_AGENT else None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:  # the function raised: record it; the exception goes on unchanged
            self.finish(error=exc)
        if self._agent_token is not None:
            _in_agent.reset(self._agent_token)
        otel_context.detach(self._token)

    def returned(self, result: Any) -> Any:
        """Record the function's result and hand it back."""
        self.finish(result)
        return result

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        try:
            self._finish(result, error)
        except Exception as exc:  # recording must never change what the agent sees
            self.rt.capture_failed(f"recording an {self.kind} span", exc)

    def _finish(self, result: Any, error: BaseException | None) -> None:
        ended_ns = time.time_ns()
        error_text = f"{type(error).__name__}: {error}" if error is not None else None
        if error is not None:
            self.span.set_attribute(semconv.ERROR_TYPE, type(error).__qualname__)
            self.span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
        elif self.kind == semconv.OP_EXECUTE_TOOL and self.rt.config.capture_content:
            self.span.set_attribute(semconv.GEN_AI_TOOL_CALL_RESULT, _dumps(result))
        self.span.end()
        if self.kind == semconv.OP_INVOKE_AGENT:
            payload: Any = AgentRunPayload(
                ids=self.ids,
                name=self.name,
                input=jsonable(self.arguments),
                output=jsonable(result) if error is None else None,
                error=error_text,
                started_ns=self.started_ns,
                ended_ns=ended_ns,
                root=self.root,
                task=_task(self.arguments),
                tags=self.tags,
                metadata=jsonable(self.metadata),
            )
        else:
            payload = ToolPayload(
                ids=self.ids,
                name=self.name,
                arguments=jsonable(self.arguments),
                result=jsonable(result) if error is None else None,
                error=error_text,
                started_ns=self.started_ns,
                ended_ns=ended_ns,
            )
        self.rt.submit(payload)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)


def _wrap(func: F, kind: str, name: str, tags: tuple[str, ...] = (), metadata: dict | None = None) -> F:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args, **kwargs):
            rt = _runtime.current()
            if rt is None:
                return await func(*args, **kwargs)
            with _Run(rt, kind, name, func, args, kwargs, tags, metadata) as run:
                return run.returned(await func(*args, **kwargs))

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        rt = _runtime.current()
        if rt is None:
            return func(*args, **kwargs)
        with _Run(rt, kind, name, func, args, kwargs, tags, metadata) as run:
            return run.returned(func(*args, **kwargs))

    return wrapper  # type: ignore[return-value]


@overload
def trace_agent(func: F) -> F: ...
@overload
def trace_agent(
    *, name: str | None = None, tags: tuple[str, ...] | list[str] = (), metadata: dict[str, Any] | None = None
) -> Callable[[F], F]: ...


def trace_agent(func=None, *, name=None, tags=(), metadata=None):
    """Trace each call of an agent's entry point as one run: `@trace_agent` or `@trace_agent(name=…)`.

    Every model call made inside (any thread started inside must carry the context along, as
    `contextvars.copy_context().run` does) becomes part of the run's trace.
    """

    def decorate(f: F) -> F:
        return _wrap(f, semconv.OP_INVOKE_AGENT, name or f.__name__, tuple(tags), metadata)

    return decorate(func) if func is not None else decorate


@overload
def trace_tool(func: F) -> F: ...
@overload
def trace_tool(*, name: str | None = None) -> Callable[[F], F]: ...


def trace_tool(func=None, *, name=None):
    """Record each call of one of the agent's tools: arguments, result or error, latency."""

    def decorate(f: F) -> F:
        return _wrap(f, semconv.OP_EXECUTE_TOOL, name or f.__name__)

    return decorate(func) if func is not None else decorate
