"""`traces import --format openai-jsonl`: OpenAI fine-tuning lines become successful runs, bad lines
are named and skipped (or stop the import with --strict), and importing again adds nothing."""

from __future__ import annotations

import json

from agent_tracer.formats.examples import content_key
from agent_tracer.run_ids import trace_id_for

SYSTEM = {"role": "system", "content": "You are a weather agent."}
USER = {"role": "user", "content": "Weather in Paris?"}
CALL = {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Current weather.", "parameters": PARAMETERS},
    }
]
TOOL_RUN = {
    "messages": [
        SYSTEM,
        USER,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny, 21C"},
        {"role": "assistant", "content": "Sunny, 21C."},
    ],
    "tools": TOOLS,
    "parallel_tool_calls": False,
}
CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
LEGACY = {
    "messages": [
        USER,
        {"role": "assistant", "function_call": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
        {"role": "function", "name": "get_weather", "content": "sunny"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
        },
    ],
    "functions": [TOOLS[0]["function"]],
}


def the_trace(open_store, example):
    return open_store().get_trace(trace_id_for(content_key("openai-jsonl", example)))


def test_examples_become_successful_runs(cli, db, jsonl, open_store):
    path = jsonl("weather.jsonl", [TOOL_RUN, CHAT, LEGACY])
    result = cli("traces", "import", path, "--format", "openai-jsonl", "--db", db)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Imported 9 records from {path}: 9 rows new or changed (3 examples)"

    detail = the_trace(open_store, TOOL_RUN)
    trace, (call,), (feedback,) = detail.trace, detail.calls, detail.feedback
    assert (trace.name, trace.task, trace.source, trace.status) == ("weather", "Weather in Paris?", "import", "ok")
    assert trace.tags == ["openai-jsonl"]
    assert trace.meta == {"format": "openai-jsonl", "file": "weather.jsonl", "line": 1}
    assert (trace.outcome, feedback.outcome, feedback.source) == ("success", "success", "import")
    assert call.request["messages"] == TOOL_RUN["messages"][:-1]
    assert call.request["tools"] == TOOLS and call.request["params"] == {"parallel_tool_calls": False}
    assert call.response["message"] == {"role": "assistant", "content": "Sunny, 21C."}
    assert (call.api, call.operation, call.status, call.has_tool_calls) == ("openai.chat", "chat", "ok", False)
    assert json.loads(call.raw_request) == TOOL_RUN and call.response["finish_reasons"] == ["stop"]

    legacy = the_trace(open_store, LEGACY).calls[0]
    assert legacy.request["tools"] == TOOLS
    assert [m["role"] for m in legacy.request["messages"]] == ["user", "assistant", "tool"]
    answer = legacy.response["message"]["tool_calls"][0]
    assert answer["function"] == {"name": "get_weather", "arguments": '{"city": "Lyon"}'}
    assert (legacy.has_tool_calls, legacy.tool_names) == (True, ["get_weather"])


def test_importing_again_adds_nothing(cli, db, jsonl, open_store):
    path = jsonl("weather.jsonl", [TOOL_RUN, CHAT])
    assert cli("traces", "import", path, "--format", "openai-jsonl", "--db", db).exit_code == 0
    again = cli("traces", "import", path, "--format", "openai-jsonl", "--db", db, "--json", "--batch-size", "2")
    assert json.loads(again.stdout) == {
        "file": str(path),
        "format": "openai-jsonl",
        "records": 6,
        "written": 0,
        "examples": 2,
        "skipped": 0,
    }
    # the same example, spaced and ordered differently, in another file: the same trace
    respaced = jsonl("other.jsonl", [json.dumps(dict(reversed(list(TOOL_RUN.items()))), separators=(" , ", " : "))])
    assert "0 rows new or changed" in cli("traces", "import", respaced, "--format", "openai-jsonl", "--db", db).output
    store = open_store()
    assert store.stats()["traces"] == 2 and store.stats()["feedback"] == 2


def test_secrets_are_scrubbed(cli, db, jsonl, open_store):
    key = "sk-proj-" + "a" * 40
    example = {"messages": [{"role": "user", "content": f"my key is {key}"}, {"role": "assistant", "content": "ok"}]}
    assert cli("traces", "import", jsonl("k.jsonl", [example]), "--format", "openai-jsonl", "--db", db).exit_code == 0
    detail = the_trace(open_store, example)
    stored = json.dumps([detail.trace.task, detail.calls[0].request, detail.calls[0].raw_request])
    assert key not in stored and stored.count("[REDACTED]") == 3


BAD = [
    ("not json at all", "not JSON"),
    ('["a", "list"]', "not a JSON object but list"),
    ({"prompt": "hi"}, "no 'messages' list"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "ends with a user message, not the assistant's answer"),
    (
        {
            "messages": [
                USER,
                {"role": "assistant", "content": None, "tool_calls": [{"id": "x", "function": {"arguments": "{}"}}]},
            ]
        },
        "a tool call without a name",
    ),
    (
        {
            "messages": [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{oops"}}],
                },
            ]
        },
        "the arguments of tool call 'f' are not JSON",
    ),
    ({"messages": [USER, {"role": "assistant", "content": ""}]}, "the assistant's answer is empty"),
    ({"messages": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "ok"}]}, "role 'robot'"),
]


def test_bad_lines_are_named_and_skipped(cli, db, jsonl, open_store):
    path = jsonl("mixed.jsonl", [CHAT, *(line for line, _ in BAD), "", TOOL_RUN])
    result = cli("traces", "import", path, "--format", "openai-jsonl", "--db", db)
    assert result.exit_code == 0, result.output
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == len(BAD)
    for number, (warning, (_, reason)) in enumerate(zip(warnings, BAD), start=2):
        assert warning.startswith(f"Warning: {path}:{number}: ") and reason in warning, warning
    assert result.stdout.strip() == (
        f"Imported 6 records from {path}: 6 rows new or changed (2 examples; skipped 8 bad lines)"
    )
    assert open_store().stats()["traces"] == 2


def test_strict_stops_at_the_first_bad_line(cli, db, jsonl, one_line_error, open_store):
    path = jsonl("mixed.jsonl", [CHAT, TOOL_RUN, BAD[3][0], LEGACY])
    result = cli("traces", "import", path, "--format", "openai-jsonl", "--strict", "--db", db)
    one_line_error(result, f"{path}:3: the conversation ends with a user message")
    assert "the 6 records before it are in the store, and importing again is safe" in result.output
    assert open_store().stats()["traces"] == 2


def test_file_and_option_errors(cli, db, tmp_path, one_line_error):
    missing = tmp_path / "nope.jsonl"
    one_line_error(
        cli("traces", "import", missing, "--format", "openai-jsonl", "--db", db),
        f"{missing} does not exist",
        exit_code=2,
    )
    one_line_error(cli("traces", "import", tmp_path, "--format", "sharegpt", "--db", db), "is a directory", exit_code=2)
    result = cli("traces", "import", missing, "--format", "openai-jsonl", "--answers", missing, "--db", db)
    assert result.exit_code == 2 and "does not exist" in result.output
    answers = tmp_path / "answers.json"
    answers.write_text("{}\n")
    one_line_error(
        cli("traces", "import", missing, "--format", "openai-jsonl", "--answers", answers, "--db", db),
        "--answers goes with --format bfcl",
        exit_code=2,
    )
