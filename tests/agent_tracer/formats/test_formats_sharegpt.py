"""`traces import --format sharegpt`: the ShareGPT variants in circulation, LLaMA-Factory's tool
turns linked by call ids, and the lines that are not examples."""

from __future__ import annotations

import json

from agent_tracer.formats.examples import content_key
from agent_tracer.run_ids import trace_id_for

WEATHER_SPEC = {
    "name": "get_weather",
    "description": "Current weather.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
LLAMA_FACTORY = {
    "id": "ex-7",
    "system": "You are a weather agent.",
    "tools": json.dumps([WEATHER_SPEC]),
    "conversations": [
        {"from": "human", "value": "Weather in Paris and Lyon?"},
        {
            "from": "function_call",
            "value": json.dumps(
                [
                    {"name": "get_weather", "arguments": {"city": "Paris"}},
                    {"name": "get_weather", "arguments": {"city": "Lyon"}},
                ]
            ),
        },
        {"from": "observation", "value": "sunny"},
        {"from": "observation", "value": "rain"},
        {"from": "human", "value": "And Nice?"},
        {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": '{"city": "Nice"}'})},
    ],
}
ROLE_CONTENT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
    ],
    "system": "ignored: the turns start with their own system prompt",
    "tools": [{"type": "function", "function": WEATHER_SPEC}],
}
PLAIN = {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}


def call_of(open_store, example):
    return open_store().get_trace(trace_id_for(content_key("sharegpt", example))).calls[0]


def test_sharegpt_variants(cli, db, jsonl, open_store):
    path = jsonl("chats.jsonl", [LLAMA_FACTORY, ROLE_CONTENT, PLAIN])
    result = cli("traces", "import", path, "--format", "sharegpt", "--db", db)
    assert result.output.strip() == f"Imported 9 records from {path}: 9 rows new or changed (3 examples)"

    call = call_of(open_store, LLAMA_FACTORY)
    messages = call.request["messages"]
    assert messages[0] == {"role": "system", "content": "You are a weather agent."}
    assert messages[2]["tool_calls"] == [
        {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'}},
    ]
    assert messages[3:5] == [
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
    ]
    assert call.response["message"]["tool_calls"] == [
        {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Nice"}'}}
    ]
    assert call.request["tools"] == [{"type": "function", "function": WEATHER_SPEC}]
    assert (call.has_tool_calls, call.tool_names) == (True, ["get_weather"])
    trace = open_store().get_trace(call.trace_id).trace
    assert trace.meta["id"] == "ex-7" and trace.tags == ["sharegpt"] and trace.task == "Weather in Paris and Lyon?"

    call = call_of(open_store, ROLE_CONTENT)
    assert call.request["messages"] == ROLE_CONTENT["messages"][:2]
    assert call.response["message"] == {"role": "assistant", "content": "Hello!"}
    assert call_of(open_store, PLAIN).request["messages"] == [{"role": "user", "content": "2+2?"}]


def test_lines_that_are_not_conversations(cli, db, jsonl):
    bad = [
        ({"conversations": []}, "no 'conversations' or 'messages' list"),
        ({"conversations": [{"from": "alien", "value": "hi"}]}, "a turn from 'alien'"),
        (
            {
                "conversations": [
                    {"from": "human", "value": "hi"},
                    {"from": "observation", "value": "x"},
                    {"from": "gpt", "value": "ok"},
                ]
            },
            "an observation that answers no function call",
        ),
        (
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "function_call", "value": "f(Paris)"}]},
            "a function_call turn whose value is not JSON",
        ),
        (
            {
                "conversations": [
                    {"from": "human", "value": "hi"},
                    {"from": "function_call", "value": '{"arguments": {}}'},
                ]
            },
            "a tool call without a name",
        ),
        (
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}], "tools": "[{"},
            "tools is not JSON",
        ),
        (
            {
                "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}],
                "tools": '[{"x": 1}]',
            },
            "a tool without a name",
        ),
        ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": 4}]}, "value is int, not text"),
        (
            {"conversations": [{"from": "gpt", "value": "ok"}, {"from": "human", "value": "hi"}]},
            "ends with a user message",
        ),
    ]
    path = jsonl("bad.jsonl", [line for line, _ in bad] + [PLAIN])
    result = cli("traces", "import", path, "--format", "sharegpt", "--db", db)
    assert result.exit_code == 0, result.output
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == len(bad)
    for number, (warning, (_, reason)) in enumerate(zip(warnings, bad), start=1):
        assert warning.startswith(f"Warning: {path}:{number}: ") and reason in warning, warning
    assert "(1 example; skipped 9 bad lines)" in result.stdout
