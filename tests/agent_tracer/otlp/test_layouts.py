"""Each span layout read into the canonical call, and which one wins when a span carries several.

The installed instrumentations cover the current GenAI conventions (agent-tracer's own spans,
Traceloop's) and OpenInference (`test_instrumented_agents.py`). The layouts no installed package
emits any more are written here as their emitters wrote them: the GenAI conventions' span-event
form (`gen_ai.*.message` / `gen_ai.choice` events, semantic conventions 1.27-1.30) and
OpenLLMetry's indexed `gen_ai.prompt.N.*` / `gen_ai.completion.N.*` attributes (before its 0.4x
releases moved to `gen_ai.input.messages`).
"""

from __future__ import annotations

import json
from typing import Any

from agent_tracer.otlp.mapping import kind_of, span_records
from agent_tracer.otlp.spans import Event, Span

TRACE, SPAN = "1" * 32, "2" * 16
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def make(attributes: dict[str, Any], events: list[Event] | None = None, name: str = "llm") -> Span:
    return Span(TRACE, SPAN, None, name, "client", 1_000, 2_000_000, attributes, events or [])


def call_row(span: Span) -> dict[str, Any]:
    kind, records = span_records(span)
    assert kind == "llm_call"
    return dict(records)["llm_call"]


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": '{"sky": "sunny"}'},
]
ANSWER = {"role": "assistant", "content": "Sunny."}


def test_genai_parts_with_system_instructions_and_flat_tool_definitions():
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "m",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "reasoning", "content": "I should call the tool."},
                        {"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}},
                    ],
                },
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"sky": "sunny"}}]},
            ]
        ),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}], "finish_reason": "stop"}]
        ),
        "gen_ai.tool.definitions": json.dumps(
            [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
        ),
    }
    row = call_row(make(attributes))
    result_as_compact_json = {**CONVERSATION[3], "content": '{"sky":"sunny"}'}  # the part held an object
    assert row["request"]["messages"] == [*CONVERSATION[:3], result_as_compact_json]
    assert row["request"]["tools"] == [WEATHER]
    assert row["response"]["message"] == ANSWER and row["finish_reasons"] == ["stop"]


def test_the_event_based_genai_form():
    events = [
        Event("gen_ai.system.message", 1, {"content": "Be brief."}),
        Event("gen_ai.user.message", 2, {"content": "Weather in Paris?"}),
        Event("gen_ai.assistant.message", 3, {"tool_calls": json.dumps(CONVERSATION[2]["tool_calls"])}),
        Event("gen_ai.tool.message", 4, {"id": "c1", "content": '{"sky": "sunny"}'}),
        Event("gen_ai.choice", 5, {"index": 0, "finish_reason": "stop", "message": json.dumps(ANSWER)}),
    ]
    row = call_row(make({"gen_ai.operation.name": "chat", "gen_ai.system": "openai"}, events))
    assert row["request"]["messages"] == CONVERSATION
    assert row["response"]["message"] == ANSWER and row["finish_reasons"] == ["stop"]
    assert row["provider"] == "openai"


def test_openllmetry_indexed_prompt_and_completion_attributes():
    attributes = {
        "llm.request.type": "chat",
        "gen_ai.system": "OpenAI",
        "gen_ai.request.model": "m",
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "Be brief.",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": "Weather in Paris?",
        "gen_ai.prompt.2.role": "assistant",
        "gen_ai.prompt.2.tool_calls.0.id": "c1",
        "gen_ai.prompt.2.tool_calls.0.name": "get_weather",
        "gen_ai.prompt.2.tool_calls.0.arguments": '{"city": "Paris"}',
        "gen_ai.prompt.3.role": "tool",
        "gen_ai.prompt.3.tool_call_id": "c1",
        "gen_ai.prompt.3.content": '{"sky": "sunny"}',
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Sunny.",
        "gen_ai.completion.0.finish_reason": "stop",
        "llm.request.functions.0.name": "get_weather",
        "llm.request.functions.0.parameters": '{"type": "object"}',
        "gen_ai.usage.prompt_tokens": 12,
        "gen_ai.usage.completion_tokens": 2,
    }
    row = call_row(make(attributes))
    assert row["request"]["messages"] == CONVERSATION
    assert row["request"]["tools"] == [WEATHER]
    assert row["response"]["message"] == ANSWER
    assert (row["input_tokens"], row["output_tokens"]) == (12, 2)


def test_structured_messages_win_over_the_flat_body():
    """OpenInference sets `input.value` beside `llm.input_messages`: the messages are read, not the
    flat value (which here says something else); a span with only the flat body is read from it."""
    body = {"model": "m", "messages": [{"role": "user", "content": "the flat body"}], "tools": [WEATHER]}
    both = {
        "openinference.span.kind": "LLM",
        "input.value": json.dumps(body),
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.contents.0.message_content.type": "text",
        "llm.input_messages.0.message.contents.0.message_content.text": "the structured ",
        "llm.input_messages.0.message.contents.1.message_content.type": "text",
        "llm.input_messages.0.message.contents.1.message_content.text": "messages",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Sunny.",
    }
    row = call_row(make(both))
    assert row["request"]["messages"] == [{"role": "user", "content": "the structured messages"}]
    assert row["request"]["tools"] == [WEATHER]  # only the body had them
    assert row["raw_request"] == json.dumps(body)
    flat = call_row(make({"openinference.span.kind": "LLM", "input.value": json.dumps(body)}))
    assert flat["request"]["messages"] == [{"role": "user", "content": "the flat body"}]
    assert flat["request_model"] == "m" and flat["response"] is None


def test_the_current_conventions_win_over_older_layouts_on_the_same_span():
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "current"}]}]),
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "older",
    }
    assert call_row(make(attributes))["request"]["messages"] == [{"role": "user", "content": "current"}]


def test_kinds_and_failures():
    assert kind_of(make({"openinference.span.kind": "AGENT"})) == "agent_run"
    assert kind_of(make({"traceloop.span.kind": "tool"})) == "tool_execution"
    assert kind_of(make({"gen_ai.operation.name": "embeddings"})) == "unmapped_span"
    assert kind_of(make({}, [Event("gen_ai.user.message", 1, {"content": "hi"})])) == "llm_call"
    failed = make({"gen_ai.operation.name": "chat", "error.type": "RateLimitError"})
    failed.status_code, failed.status_message = 2, "429 slow down sk-abcdefghijklmnopqrstuvwxyz0123"
    row = call_row(failed)
    assert row["status"] == "error"
    assert row["error"].startswith("RateLimitError: 429 slow down") and "sk-abcdefghij" not in row["error"]


def test_the_vercel_ai_sdk_attributes():
    """As `ai` 6.0 writes them (copied from a run of `vercel/agent.mjs`, shortened)."""
    prompt = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool-call", "toolCallId": "c1", "toolName": "get_weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "tool",
            "content": [
                {
                    "type": "tool-result",
                    "toolCallId": "c1",
                    "toolName": "get_weather",
                    "output": {"type": "json", "value": {"sky": "sunny"}},
                }
            ],
        },
    ]
    attributes = {
        "ai.operationId": "ai.generateText.doGenerate",
        "ai.model.id": "m",
        "ai.prompt.messages": json.dumps(prompt),
        "ai.prompt.tools": [json.dumps({"type": "function", "name": "get_weather", "inputSchema": {"type": "object"}})],
        "ai.response.text": "Sunny.",
        "ai.response.finishReason": "stop",
        "ai.usage.inputTokens": 9,
        "ai.usage.outputTokens": 2,
    }
    row = call_row(make(attributes))
    assert row["request"]["messages"] == [*CONVERSATION[:3], {**CONVERSATION[3], "content": '{"sky":"sunny"}'}]
    assert row["request"]["tools"] == [WEATHER]
    assert row["response"]["message"] == ANSWER and row["finish_reasons"] == ["stop"]
    assert (row["request_model"], row["input_tokens"], row["output_tokens"]) == ("m", 9, 2)
    calls = make(
        {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.response.toolCalls": json.dumps(
                [{"toolCallId": "c1", "toolName": "get_weather", "input": '{"city": "Paris"}'}]
            ),
            "ai.response.finishReason": "tool-calls",
        }
    )
    row = call_row(calls)
    assert row["response"]["message"]["tool_calls"] == CONVERSATION[2]["tool_calls"]
    assert row["finish_reasons"] == ["tool_calls"]
    kind, records = span_records(
        make(
            {
                "ai.operationId": "ai.toolCall",
                "ai.toolCall.name": "get_weather",
                "ai.toolCall.args": '{"city": "Paris"}',
                "ai.toolCall.result": '{"sky": "sunny"}',
            }
        )
    )
    assert kind == "tool_execution"
    tool = dict(records)["tool_execution"]
    assert (tool["name"], tool["arguments"], tool["result"]) == ("get_weather", {"city": "Paris"}, {"sky": "sunny"})


def test_logfire_events_attribute():
    """PydanticAI's first instrumentation (Logfire) put the events in one JSON attribute, as its
    source wrote them (`pydantic_ai/models/instrumented.py`, instrumentation version 1)."""
    events = [
        {"event.name": "gen_ai.system.message", "role": "system", "content": "Be brief."},
        {"event.name": "gen_ai.user.message", "role": "user", "content": "Weather in Paris?"},
        {"event.name": "gen_ai.assistant.message", "role": "assistant", "tool_calls": CONVERSATION[2]["tool_calls"]},
        {"event.name": "gen_ai.tool.message", "role": "tool", "id": "c1", "content": '{"sky": "sunny"}'},
        {"event.name": "gen_ai.choice", "index": 0, "message": ANSWER, "finish_reason": "stop"},
    ]
    row = call_row(make({"gen_ai.system": "openai", "events": json.dumps(events)}))
    assert row["request"]["messages"] == CONVERSATION
    assert row["response"]["message"] == ANSWER and row["finish_reasons"] == ["stop"]


def test_whom_a_run_was_for_goes_into_the_traces_metadata():
    """OpenTelemetry's user.id (or enduser.id) and session.id, on the span or its resource, are
    kept where `agent-tracer traces erase --user/--session` finds them."""
    span = make({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "enduser.id": "u-9"})
    span.resource = {"session.id": "s-3", "service.name": "agent"}
    _, records = span_records(span)
    assert dict(records)["trace"]["meta"] == {"user.id": "u-9", "session.id": "s-3"}
    _, records = span_records(make({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}))
    assert "meta" not in dict(records)["trace"]
    chat = make({"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "conv-1", "langfuse.user.id": 4})
    _, records = span_records(chat)
    assert dict(records)["trace"]["meta"] == {"user.id": "4", "session.id": "conv-1"}


def test_traceloop_entity_inputs_read_as_the_arguments_our_capture_stores():
    """The Traceloop SDK's `{"args": [...], "kwargs": {...}}`: the named arguments alone, one
    positional argument alone (the run's task when it is text), anything else as it came."""

    def tool(entity_input: object) -> object:
        span = make({"traceloop.span.kind": "tool", "traceloop.entity.input": json.dumps(entity_input)})
        return dict(span_records(span)[1])["tool_execution"]["arguments"]

    assert tool({"args": [], "kwargs": {"city": "Paris"}}) == {"city": "Paris"}
    assert tool({"args": ["Paris"], "kwargs": {}}) == "Paris"
    both = {"args": ["Paris"], "kwargs": {"unit": "C"}}
    assert tool(both) == both
    assert tool({"args": [], "kwargs": {}, "extra": 1}) == {"args": [], "kwargs": {}, "extra": 1}
    run = make({"traceloop.span.kind": "workflow", "traceloop.entity.name": "support"})
    run.attributes["traceloop.entity.input"] = json.dumps({"args": ["Where is my order?"], "kwargs": {}})
    records = dict(span_records(run)[1])
    assert records["agent_run"]["name"] == "support" and records["trace"]["task"] == "Where is my order?"


def test_adks_workflow_span_names_the_trace_and_its_merged_tools_span_is_no_tool():
    """Google ADK's `invoke_workflow` root: no row, the trace's name and status (its agent run is
    the run, as in process); a nested one changes nothing; `execute_tool (merged tools)` groups
    the tool spans of calls made at once and is kept as an unmapped span."""
    root = make({"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "weather_agent"})
    kind, records = span_records(root)
    assert kind == "workflow" and [name for name, _ in records] == ["trace"]
    trace = records[0][1]
    assert (trace["name"], trace["status"], trace["authoritative"]) == ("weather_agent", "ok", True)
    nested = make({"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "inner"})
    nested.parent_span_id = "00000000000000a1"
    assert "name" not in span_records(nested)[1][0][1]
    merged = make({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "(merged tools)"})
    assert span_records(merged)[0] == "unmapped_span"
