"""Is a primary's answer good enough to pass to the agent? The checks behind a `bad answer` fallback.

A tuned small model fails differently from an API: it answers, quickly and with status 200, but
calls a tool the request did not offer, writes arguments that are not JSON or miss a required
field, leaves a `<tool_call>` block it could not finish in its text, or says nothing at all. Each
of these is a reason (a short code, recorded on the call) to ask the fallback instead:

    empty_answer          no text and no tool call
    unknown_tool          a call to a function that is not among the request's tools
    invalid_arguments     arguments that are not a JSON object
    unknown_argument      an argument the tool does not define (unless its schema allows more
                          with `additionalProperties`): the function would not take it
    schema_mismatch       arguments that do not satisfy the tool's JSON schema
    malformed_tool_call   a `<tool_call>` block left as text (the server could not parse it)
    missing_tool_call     tool_choice asked for a call ("required" or a named function), none came
    invalid_json          response_format asked for JSON (or a JSON schema) and the text is not

Checked on the canonical response (`CanonicalResponse`), so a plain answer and a stream rebuilt by
the codec's accumulator are judged alike. The tools' validators are built once per request.
"""

from __future__ import annotations

from typing import Any

from agent_tracer import fastjson
from agent_tracer.canonical import CanonicalResponse

TOOL_CALL_TAG = "<tool_call>"


def judge(request: dict[str, Any], response: CanonicalResponse) -> str | None:
    """The reason `response` must not reach the agent who sent `request` (a Chat Completions
    body), or None when it is fine."""
    message = response.message
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    calls = response.tool_calls
    if not calls and not text.strip() and not message.get("refusal"):
        return "empty_answer"
    tools = _function_tools(request)
    if tools and TOOL_CALL_TAG in text:
        return "malformed_tool_call"
    for call in calls:
        reason = _call_problem(call, tools)
        if reason is not None:
            return reason
    if not calls and _call_required(request.get("tool_choice")):
        return "missing_tool_call"
    if not calls:
        return _format_problem(request, text)
    return None


def _function_tools(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Function name → its parameters schema, for the request's function tools."""
    tools: dict[str, dict[str, Any]] = {}
    for tool in request.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            tools[function["name"]] = parameters if isinstance(parameters, dict) else {}
    return tools


def _call_problem(call: dict[str, Any], tools: dict[str, dict[str, Any]]) -> str | None:
    function = call.get("function") or {}
    name = function.get("name")
    if name not in tools:
        return "unknown_tool"
    try:
        arguments = fastjson.loads(function.get("arguments") or "{}")
    except ValueError:
        return "invalid_arguments"
    if not isinstance(arguments, dict):
        return "invalid_arguments"
    properties = tools[name].get("properties")
    if (
        isinstance(properties, dict)
        and tools[name].get("additionalProperties") in (None, False)
        and not set(arguments) <= set(properties)
    ):
        return "unknown_argument"
    if tools[name] and not _valid(tools[name], arguments):
        return "schema_mismatch"
    return None


def _call_required(tool_choice: Any) -> bool:
    return tool_choice == "required" or (isinstance(tool_choice, dict) and tool_choice.get("type") == "function")


def wants_json(request: dict[str, Any]) -> bool:
    """Whether the request's response_format asks for JSON (an object, or one of a schema)."""
    response_format = request.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")


def _format_problem(request: dict[str, Any], text: str) -> str | None:
    if not wants_json(request):
        return None
    try:
        value = fastjson.loads(text)
    except ValueError:
        return "invalid_json"
    schema = (request["response_format"].get("json_schema") or {}).get("schema")
    if isinstance(schema, dict) and not _valid(schema, value):
        return "schema_mismatch"
    return None


def _valid(schema: dict[str, Any], value: Any) -> bool:
    """Whether `value` satisfies `schema`; a schema that is itself broken judges nothing (the
    agent's tool definitions are not the primary's fault)."""
    import jsonschema
    from referencing.exceptions import Unresolvable

    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        return next(validator.iter_errors(value), None) is None
    except (jsonschema.SchemaError, jsonschema.exceptions.UnknownType, Unresolvable, TypeError, ValueError):
        return True
