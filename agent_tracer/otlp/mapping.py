"""OTLP spans → the store's records, the same rows our own capture writes.

A span is one of four things (`kind_of`):
- a **model call** (`gen_ai.operation.name` chat / text_completion / generate_content,
  `openinference.span.kind` LLM, Traceloop's `llm.request.type`, the AI SDK's `ai.*.doGenerate` /
  `ai.*.doStream`, or any span carrying messages in a layout `layouts.py` reads) → an `llm_call`
  row: the canonical request and response (Chat Completions messages, tools as function specs),
  models, tokens, timing, status;
- an **agent run** (`invoke_agent`, OpenInference AGENT, Traceloop agent/workflow, the AI SDK's
  `ai.generateText` / `ai.streamText` …) → an `agent_run` row; without a parent span it is the
  trace's root and names the trace, as `@trace_agent` does;
- a **tool execution** (`execute_tool`, OpenInference TOOL, Traceloop tool, the AI SDK's
  `ai.toolCall`) → a `tool_execution` row with arguments (`gen_ai.tool.call.arguments`, else
  `input.value`, `ai.toolCall.args`, `traceloop.entity.input`) and result
  (`gen_ai.tool.call.result`, else `output.value`, `ai.toolCall.result`, `traceloop.entity.output`);
- a **workflow** (Google ADK's `invoke_workflow`) → no row of its own: a root one names the trace
  and sets its status, and the agent runs under it are the runs (in process it is skipped, and the
  agent run is the root);
- anything else → an `unmapped_span` row: attributes, events and resource kept whole, so nothing
  that arrived is lost and it stays queryable.

Every mapped span also sends a partial `trace` row (source "otlp"); the store merges them by id,
so the spans of one trace may arrive in any order and in any number of requests (a child before its
parent included). Secrets are scrubbed as capture scrubs them.

Known limit: only an agent span without a parent is the root that names the trace and sets its
status. An agent span under some other span (a web request's) only fills the trace's name when
nothing has yet, and a model call that arrived first has named it `chat MODEL` by then.
"""

from __future__ import annotations

from typing import Any

from agent_tracer import fastjson
from agent_tracer.canonical import CanonicalRequest, CanonicalResponse
from agent_tracer.decorators import TASK_PARAMETERS
from agent_tracer.messages import user_text
from agent_tracer.otlp.layouts import conversation, parts_messages
from agent_tracer.otlp.spans import STATUS_ERROR, Span
from agent_tracer.records import Record, jsonable, utc
from agent_tracer.redact import has_secret, scrub, scrub_text
from agent_tracer.semconv import (
    AGENT_TRACER_API,
    AGENT_TRACER_CALL_STATUS,
    AGENT_TRACER_ROUTE,
    AGENT_TRACER_STREAMED,
    AGENT_TRACER_TAGS,
    ERROR_TYPE,
    GEN_AI_AGENT_NAME,
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OPERATION_NAME,
    GEN_AI_OUTPUT_MESSAGES,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_REQUEST_STOP_SEQUENCES,
    GEN_AI_RESPONSE_ID,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    HTTP_RESPONSE_STATUS_CODE,
    OP_EXECUTE_TOOL,
    OP_INVOKE_AGENT,
    REQUEST_PARAM_ATTRIBUTES,
    SERVER_ADDRESS,
)
from integrations.openai_chat import PARAMS

SOURCE = "otlp"
"""`traces.source` of a trace that arrived over OTLP."""

MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "completion"})

# Other layouts' attribute names, read only here (our own spans use `semconv`'s).
GEN_AI_SYSTEM = "gen_ai.system"
"""The deprecated name of `gen_ai.provider.name`, still sent by many instrumentations."""
OI_SPAN_KIND = "openinference.span.kind"
TL_SPAN_KIND = "traceloop.span.kind"
OP_INVOKE_WORKFLOW, GEN_AI_WORKFLOW_NAME = "invoke_workflow", "gen_ai.workflow.name"
"""Google ADK's span around one turn of a workflow (its root agent's name as the workflow's)."""
ADK_MERGED_TOOLS = "(merged tools)"
"""The tool name of Google ADK's `execute_tool` span around tools the model called at once."""
TL_REQUEST_TYPE = "llm.request.type"
AI_OPERATION_ID = "ai.operationId"
"""The Vercel AI SDK's span kind: `ai.generateText` (a run), `ai.generateText.doGenerate` (a model
call), `ai.toolCall` (a tool), and the same for streamText, generateObject, streamObject."""
AI_MODEL_CALLS = frozenset(
    {"ai.generateText.doGenerate", "ai.streamText.doStream", "ai.generateObject.doGenerate", "ai.streamObject.doStream"}
)
AI_RUNS = frozenset({"ai.generateText", "ai.streamText", "ai.generateObject", "ai.streamObject"})
INPUT_VALUE, OUTPUT_VALUE = "input.value", "output.value"
PAI_ALL_MESSAGES, PAI_FINAL_RESULT = "pydantic_ai.all_messages", "final_result"
"""PydanticAI's agent span: the run's whole conversation (GenAI parts) and its output."""
INPUT_TOKENS = (
    GEN_AI_USAGE_INPUT_TOKENS,
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
    "ai.usage.inputTokens",
    "ai.usage.promptTokens",
)
OUTPUT_TOKENS = (
    GEN_AI_USAGE_OUTPUT_TOKENS,
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
    "ai.usage.outputTokens",
    "ai.usage.completionTokens",
)
REQUEST_MODEL = (GEN_AI_REQUEST_MODEL, "llm.model_name", "llm.request.model", "ai.model.id")
RESPONSE_MODEL = (GEN_AI_RESPONSE_MODEL, "llm.response.model", "llm.model_name", "ai.response.model")
RESPONSE_ID = (GEN_AI_RESPONSE_ID, "ai.response.id")
TL_ENTITY_NAME, TL_ENTITY_INPUT, TL_ENTITY_OUTPUT = (
    "traceloop.entity.name",
    "traceloop.entity.input",
    "traceloop.entity.output",
)
"""The Traceloop SDK's `@workflow` / `@agent` / `@tool` / `@task` spans: the decorated function's name,
its arguments as JSON `{"args": [...], "kwargs": {...}}` and its return value as JSON."""
AGENT_NAME = (GEN_AI_AGENT_NAME, "agent.name", "ai.telemetry.functionId", TL_ENTITY_NAME)
AGENT_INPUT = (INPUT_VALUE, GEN_AI_INPUT_MESSAGES, PAI_ALL_MESSAGES, "ai.prompt", TL_ENTITY_INPUT)
AGENT_OUTPUT = (OUTPUT_VALUE, GEN_AI_OUTPUT_MESSAGES, PAI_FINAL_RESULT, "ai.response.text", TL_ENTITY_OUTPUT)
TOOL_ARGUMENTS = (GEN_AI_TOOL_CALL_ARGUMENTS, INPUT_VALUE, "ai.toolCall.args", "ai.toolCall.input", TL_ENTITY_INPUT)
TOOL_RESULT = (GEN_AI_TOOL_CALL_RESULT, OUTPUT_VALUE, "ai.toolCall.result", "ai.toolCall.output", TL_ENTITY_OUTPUT)
PROVIDER = (GEN_AI_PROVIDER_NAME, GEN_AI_SYSTEM, "llm.provider", "llm.system")
STREAMED = (AGENT_TRACER_STREAMED, "gen_ai.is_streaming", "llm.is_streaming")
ENDPOINT = ("gen_ai.openai.api_base", "url.full", SERVER_ADDRESS)
MESSAGE_PREFIXES = (GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES, "gen_ai.prompt.", "llm.input_messages.")
MESSAGE_EVENTS = frozenset(
    {"gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message", "gen_ai.choice"}
)
_PARAM_NAMES = {attribute: name for name, attribute in REQUEST_PARAM_ATTRIBUTES.items()}


def kind_of(span: Span) -> str:
    """ "llm_call", "agent_run", "tool_execution", "workflow" or "unmapped_span"."""
    attrs = span.attributes
    operation = attrs.get(GEN_AI_OPERATION_NAME)
    if operation == OP_INVOKE_WORKFLOW:
        return "workflow"
    oi_kind = str(attrs.get(OI_SPAN_KIND) or "").upper()
    tl_kind = str(attrs.get(TL_SPAN_KIND) or "").lower()
    ai_operation = attrs.get(AI_OPERATION_ID)
    if (
        operation == OP_INVOKE_AGENT
        or oi_kind == "AGENT"
        or tl_kind in ("agent", "workflow")
        or ai_operation in AI_RUNS
    ):
        return "agent_run"
    if operation == OP_EXECUTE_TOOL and attrs.get(GEN_AI_TOOL_NAME) == ADK_MERGED_TOOLS:
        return "unmapped_span"  # a grouping span: each of its calls has an execute_tool span of its own
    if operation == OP_EXECUTE_TOOL or oi_kind == "TOOL" or tl_kind == "tool" or ai_operation == "ai.toolCall":
        return "tool_execution"
    if (
        operation in MODEL_OPERATIONS
        or oi_kind == "LLM"
        or attrs.get(TL_REQUEST_TYPE) in ("chat", "completion")
        or ai_operation in AI_MODEL_CALLS
    ):
        return "llm_call"
    if any(key.startswith(MESSAGE_PREFIXES) for key in attrs) or any(e.name in MESSAGE_EVENTS for e in span.events):
        return "llm_call"
    if isinstance(attrs.get("events"), str) and '"gen_ai.' in attrs["events"]:  # Logfire's events attribute
        return "llm_call"
    return "unmapped_span"


def span_records(span: Span) -> tuple[str, list[Record]]:
    """(the span's kind, its records). Raises on nothing the span may hold: values of unexpected
    types are read as absent."""
    kind = kind_of(span)
    if kind == "llm_call":
        return kind, _llm_call(span)
    if kind == "agent_run":
        return kind, _agent_run(span)
    if kind == "tool_execution":
        return kind, _tool(span)
    if kind == "workflow":
        return kind, [_workflow(span)]
    return kind, [("unmapped_span", _unmapped(span))]


# ------------------------------------------------------------------------------------------------


def _base(span: Span) -> dict[str, Any]:
    return {
        "id": span.span_id,
        "trace_id": span.trace_id,
        "parent_span_id": span.parent_span_id,
        "started_at": utc(span.start_ns),
        "ended_at": utc(span.end_ns),
        "latency_ms": max(span.end_ns - span.start_ns, 0) / 1e6,
    }


def _error(span: Span) -> str | None:
    if span.status_code != STATUS_ERROR:
        return None
    kind = span.attributes.get(ERROR_TYPE)
    text = span.status_message or _exception_text(span) or (str(kind) if kind else "error")
    return scrub_text(f"{kind}: {text}" if kind and not text.startswith(str(kind)) else text)


def _exception_text(span: Span) -> str:
    """`Type: message` of the span's last `exception` event (`span.record_exception`), or "": what
    an error status without a description (PydanticAI's tool spans) failed with."""
    for event in reversed(span.events):
        if event.name == "exception":
            kind, message = event.attributes.get("exception.type"), event.attributes.get("exception.message")
            return ": ".join(str(part) for part in (kind, message) if part)
    return ""


def _trace(span: Span, row: dict[str, Any], **extra: Any) -> Record:
    people = _people(span)
    if people:
        extra["meta"] = {**people, **(extra.get("meta") or {})}
    return (
        "trace",
        {"id": span.trace_id, "started_at": row["started_at"], "ended_at": row["ended_at"], "source": SOURCE, **extra},
    )


PEOPLE = (
    ("user.id", ("user.id", "enduser.id", "traceloop.association.properties.user_id", "langfuse.user.id")),
    (
        "session.id",
        (
            "session.id",
            "gen_ai.conversation.id",
            "traceloop.association.properties.session_id",
            "langfuse.session.id",
        ),
    ),
)
"""The trace's metadata keys for whom a run was for, and the span or resource attributes that
give them (OpenTelemetry's and OpenInference's names, the GenAI conventions' conversation id,
Traceloop's association properties, Langfuse's): what `agent-tracer traces erase --user/--session`
finds."""


_PEOPLE_NAMES = frozenset(name for _, names in PEOPLE for name in names)


def _people(span: Span) -> dict[str, str]:
    found: dict[str, str] = {}
    if span.attributes.keys().isdisjoint(_PEOPLE_NAMES) and span.resource.keys().isdisjoint(_PEOPLE_NAMES):
        return found  # most spans: eight names looked up twice each cost more than this
    for key, names in PEOPLE:
        for name in names:
            value = span.attributes.get(name)
            if value is None:
                value = span.resource.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                found[key] = str(value)[:200]
                break
    return found


def _llm_call(span: Span) -> list[Record]:
    attrs = span.attributes
    conv = conversation(attrs, span.events)
    body = conv.body or {}
    model = _first_text(attrs, REQUEST_MODEL) or _text(body.get("model"))
    response_model = _first_text(attrs, RESPONSE_MODEL) or model
    input_tokens, output_tokens = _first_int(attrs, INPUT_TOKENS), _first_int(attrs, OUTPUT_TOKENS)
    request = CanonicalRequest(
        model=model,
        messages=conv.messages or [],
        tools=conv.tools,
        params=_params(attrs, body),
        stream=bool(_first(attrs, STREAMED) or body.get("stream")),
    )
    response = None
    if conv.answer is not None:
        response = CanonicalResponse(
            id=_first_text(attrs, RESPONSE_ID),
            model=response_model,
            message=conv.answer,
            finish_reasons=conv.finish_reasons,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
    request_row, response_row = request.to_dict(), response.to_dict() if response else None
    raw_request, raw_response = _text(attrs.get(INPUT_VALUE)), _text(attrs.get(OUTPUT_VALUE))
    if has_secret(fastjson.dumps([request_row, response_row, raw_request, raw_response])):
        request_row, response_row = scrub(request_row), scrub(response_row)
        raw_request = scrub_text(raw_request) if raw_request else None
        raw_response = scrub_text(raw_response) if raw_response else None
    error = _error(span)
    tool_calls = conv.answer.get("tool_calls") or [] if conv.answer else []
    row = _base(span)
    ttft = attrs.get(GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    operation = _text(attrs.get(GEN_AI_OPERATION_NAME)) or "chat"
    row.update(
        provider=_first_text(attrs, PROVIDER),
        api=_text(attrs.get(AGENT_TRACER_API)),
        operation=operation,
        request_model=model,
        response_model=response_model if (response is not None or attrs.get(GEN_AI_RESPONSE_MODEL)) else None,
        response_id=_first_text(attrs, RESPONSE_ID),
        request=request_row,
        response=response_row,
        raw_request=raw_request,
        raw_response=raw_response,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        ttft_ms=ttft * 1000 if isinstance(ttft, int | float) and not isinstance(ttft, bool) else None,
        streamed=request.stream,
        status="error" if error else (_text(attrs.get(AGENT_TRACER_CALL_STATUS)) or "ok"),
        http_status=_int(attrs.get(HTTP_RESPONSE_STATUS_CODE)),
        error=error,
        finish_reasons=conv.finish_reasons,
        has_tool_calls=bool(tool_calls),
        tool_names=[(call.get("function") or {}).get("name") for call in tool_calls],
        route=_text(attrs.get(AGENT_TRACER_ROUTE)),
        endpoint=_first_text(attrs, ENDPOINT),
    )
    return [_trace(span, row, name=f"{operation} {model or ''}".strip()), ("llm_call", row)]


def _agent_run(span: Span) -> list[Record]:
    attrs = span.attributes
    name = _first_text(attrs, AGENT_NAME) or _strip(span.name, OP_INVOKE_AGENT)
    row = _base(span)
    error = _error(span)
    run_input = _call_arguments(_value(*(attrs.get(key) for key in AGENT_INPUT)))
    row.update(
        name=name,
        input=scrub(jsonable(run_input)),
        output=scrub(jsonable(_value(*(attrs.get(key) for key in AGENT_OUTPUT)))),
        error=error,
    )
    trace: dict[str, Any] = {"name": name}
    if span.parent_span_id is None:  # the trace's root: it names the trace and sets its status
        tags = attrs.get(AGENT_TRACER_TAGS)
        trace.update(
            authoritative=True,
            task=scrub_text(task) if (task := _task(run_input)) else None,
            status="error" if error else "ok",
            error=error,
            tags=[str(tag) for tag in tags] if isinstance(tags, list) else [],
        )
    return [_trace(span, row, **trace), ("agent_run", row)]


def _workflow(span: Span) -> Record:
    """Google ADK's `invoke_workflow` around a turn: no row of its own (the agent runs under it are
    the runs, as in process), but a root one names the trace after the workflow (its root agent)
    and sets its status."""
    row = _base(span)
    if span.parent_span_id is not None:  # nested in another workflow: the root's name stands
        return _trace(span, row)
    error = _error(span)
    name = _text(span.attributes.get(GEN_AI_WORKFLOW_NAME)) or _strip(span.name, OP_INVOKE_WORKFLOW) or None
    return _trace(span, row, name=name, authoritative=True, status="error" if error else "ok", error=error)


def _tool(span: Span) -> list[Record]:
    attrs = span.attributes
    name = (
        _text(attrs.get(GEN_AI_TOOL_NAME))
        or _text(attrs.get("tool.name"))
        or _text(attrs.get("ai.toolCall.name"))
        or _strip(span.name, OP_EXECUTE_TOOL)
    )
    row = _base(span)
    error = _error(span)
    row.update(
        name=name,
        arguments=scrub(jsonable(_call_arguments(_value(*(attrs.get(key) for key in TOOL_ARGUMENTS))))),
        result=None if error else scrub(jsonable(_value(*(attrs.get(key) for key in TOOL_RESULT)))),
        error=error,
    )
    return [_trace(span, row), ("tool_execution", row)]


def _unmapped(span: Span) -> dict[str, Any]:
    row = _base(span)
    row.update(
        name=span.name,
        kind=span.kind,
        scope=span.scope,
        attributes=scrub(jsonable(span.attributes)),
        events=scrub(
            jsonable([{"name": e.name, "time_unix_nano": e.time_ns, "attributes": e.attributes} for e in span.events])
        ),
        resource=scrub(jsonable(span.resource)),
        status={0: None, 1: "ok", 2: "error"}.get(span.status_code),
        error=_error(span),
    )
    return row


# ------------------------------------------------------------------------------------------------


def _params(attrs: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    params = {name: body[name] for name in PARAMS if body.get(name) is not None}
    invocation = attrs.get("llm.invocation_parameters")
    if isinstance(invocation, str) and invocation.startswith("{"):
        try:
            parsed = fastjson.loads(invocation)
        except ValueError:
            parsed = {}
        params.update(
            {name: parsed[name] for name in PARAMS if isinstance(parsed, dict) and parsed.get(name) is not None}
        )
    for attribute, name in _PARAM_NAMES.items():
        if attrs.get(attribute) is not None:
            params[name] = attrs[attribute]
    stop = attrs.get(GEN_AI_REQUEST_STOP_SEQUENCES)
    if stop:
        params["stop"] = list(stop) if isinstance(stop, list | tuple) else stop
    return params


def _task(run_input: Any) -> str | None:
    if isinstance(run_input, str):
        return run_input
    if isinstance(run_input, list):  # GenAI messages
        messages = [m for item in run_input if isinstance(item, dict) for m in parts_messages(item)]
        return user_text(messages) or None
    if isinstance(run_input, dict):  # named arguments: the task's name first, as `@trace_agent` reads them
        texts = {key: value for key, value in run_input.items() if isinstance(value, str)}
        named = next((texts[key] for key in TASK_PARAMETERS if key in texts), None)
        return named if named is not None else next(iter(texts.values()), None)
    return None


def _call_arguments(value: Any) -> Any:
    """A Traceloop entity input (`{"args": [...], "kwargs": {...}}`) as what `@trace_tool` stores:
    the named arguments when there are no positional ones, the one positional argument alone
    when there is nothing else; anything else as it came."""
    if not isinstance(value, dict) or value.keys() != {"args", "kwargs"}:
        return value
    args, kwargs = value["args"], value["kwargs"]
    if not args and isinstance(kwargs, dict):
        return kwargs
    if not kwargs and isinstance(args, list) and len(args) == 1:
        return args[0]
    return value


def _value(*candidates: Any) -> Any:
    """The first value given, parsed when it is JSON text (else the text itself)."""
    for value in candidates:
        if value is None:
            continue
        if isinstance(value, str):
            try:
                return fastjson.loads(value)
            except ValueError:
                return value
        return value
    return None


def _strip(name: str, operation: str) -> str:
    return name[len(operation) :].strip() if name.startswith(operation + " ") else name


def _first(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if attrs.get(key) is not None:
            return attrs[key]
    return None


def _first_text(attrs: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return _text(_first(attrs, keys))


def _first_int(attrs: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = _int(attrs.get(key))
        if value is not None:
            return value
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
