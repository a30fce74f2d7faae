"""`agent-tracer traces …` through click's CliRunner, and once as a real subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent_tracer.cli import main
from agent_tracer.spill import append_spill
from agent_tracer.store import TraceStore

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "4bf9aaaa77b34da6a3ce929d0e0e0001"
T0 = datetime(2024, 5, 1, 10, 0, 0)
SYSTEM = "You are a weather agent."


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def weather_trace(trace_id: str = TRACE) -> list[tuple[str, dict[str, Any]]]:
    """An agent that calls a model, runs the tool it asked for, answers, and runs a sub-agent."""
    system = {"role": "system", "content": SYSTEM}
    user = {"role": "user", "content": "Weather in Paris?"}
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    asks = {"role": "assistant", "content": None, "tool_calls": [call]}
    result = {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"}
    answer = {"role": "assistant", "content": "It is sunny in Paris (21C)."}
    root, sub = "a000000000000001", "a000000000000002"
    return [
        (
            "trace",
            {
                "id": trace_id,
                "name": "weather-agent",
                "task": "Weather in Paris?",
                "started_at": at(0),
                "ended_at": at(5),
                "status": "ok",
                "source": "decorator",
                "tags": ["demo"],
                "authoritative": True,
            },
        ),
        (
            "agent_run",
            {
                "id": root,
                "trace_id": trace_id,
                "name": "weather-agent",
                "input": {"q": "Weather in Paris?"},
                "output": "It is sunny in Paris (21C).",
                "started_at": at(0),
                "latency_ms": 5000.0,
            },
        ),
        (
            "llm_call",
            {
                "id": "c000000000000001",
                "trace_id": trace_id,
                "parent_span_id": root,
                "request_model": "gpt-4o-mini",
                "response_model": "gpt-4o-mini-2024-07-18",
                "route": "primary",
                "request": {"model": "gpt-4o-mini", "messages": [system, user]},
                "response": {"message": asks, "finish_reasons": ["tool_calls"]},
                "input_tokens": 50,
                "output_tokens": 10,
                "latency_ms": 800.0,
                "started_at": at(0.1),
            },
        ),
        (
            "tool_execution",
            {
                "id": "t000000000000001",
                "trace_id": trace_id,
                "parent_span_id": root,
                "name": "get_weather",
                "arguments": {"city": "Paris"},
                "result": "sunny, 21C",
                "latency_ms": 12.0,
                "started_at": at(1),
            },
        ),
        (
            "llm_call",
            {
                "id": "c000000000000002",
                "trace_id": trace_id,
                "parent_span_id": root,
                "request_model": "gpt-4o-mini",
                "request": {"model": "gpt-4o-mini", "messages": [system, user, asks, result]},
                "response": {"message": answer, "finish_reasons": ["stop"]},
                "input_tokens": 80,
                "output_tokens": 12,
                "latency_ms": 600.0,
                "ttft_ms": 150.0,
                "streamed": True,
                "started_at": at(2),
            },
        ),
        (
            "agent_run",
            {
                "id": sub,
                "trace_id": trace_id,
                "parent_span_id": root,
                "name": "summarizer",
                "started_at": at(3),
                "latency_ms": 1000.0,
            },
        ),
        (
            "llm_call",
            {
                "id": "c000000000000003",
                "trace_id": trace_id,
                "parent_span_id": sub,
                "request_model": "claude-3-5-haiku",
                "request": {"messages": [{"role": "user", "content": [{"type": "text", "text": "Summarise"}]}]},
                "status": "error",
                "http_status": 529,
                "error": "overloaded",
                "latency_ms": 90.0,
                "started_at": at(3.1),
            },
        ),
    ]


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    with TraceStore(url) as store:
        store.write(weather_trace())
        store.write(
            [
                ("trace", {"id": OTHER, "name": "other-agent", "started_at": at(3600), "status": "error"}),
                (
                    "llm_call",
                    {
                        "id": "c0000000000000ff",
                        "trace_id": OTHER,
                        "request_model": "gpt-4o",
                        "input_tokens": 5,
                        "output_tokens": 1,
                        "latency_ms": 50.0,
                    },
                ),
            ]
        )
        store.record_feedback(TRACE, outcome="success", rating=5, comment="good")
    return url


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def one_line_error(result: Any, text: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and text in lines[0], result.output


def test_help_and_version():
    assert "traces" in run("--help").output
    assert "0.1.0" in run("--version").output
    assert "import" in run("traces", "--help").output


def test_list_prints_a_table(db):
    result = run("traces", "list", "--db", db)
    assert result.exit_code == 0, result.output
    header, first, second = result.output.strip().splitlines()
    assert header.split() == ["ID", "NAME", "STARTED", "(UTC)", "CALLS", "TOKENS", "OUTCOME", "RATING", "STATUS"]
    assert first.split() == ["4bf9aaaa77b3", "other-agent", "2024-05-01", "11:00:00", "1", "6", "-", "-", "error"]
    assert second.split() == [TRACE[:12], "weather-agent", "2024-05-01", "10:00:00", "3", "152", "success", "5", "ok"]


def test_list_filters_and_json(db):
    def listed(*args: str) -> list[str]:
        result = run("traces", "list", "--db", db, "--json", *args)
        assert result.exit_code == 0, result.output
        return [row["id"] for row in json.loads(result.output)]

    assert listed() == [OTHER, TRACE]
    assert listed("--order", "oldest") == [TRACE, OTHER]
    assert listed("--order", "best", "--limit", "1") == [TRACE]
    assert listed("--outcome", "success") == [TRACE]
    assert listed("--min-rating", "4") == [TRACE]
    assert listed("--name", "weather*") == [TRACE]
    assert listed("--tag", "demo") == [TRACE]
    assert listed("--tag", "demo", "--tag", "nope") == []
    assert listed("--since", "2024-05-01T10:30") == [OTHER]
    assert listed("--until", "2024-05-01T10:30") == [TRACE]
    assert listed("--since", "1d") == []
    assert listed("--model", "gpt-4o") == [OTHER]
    assert listed("--has-tool-calls") == [TRACE]
    assert listed("--no-tool-calls") == [OTHER]
    assert listed("--search", "sunny") == [TRACE]  # a tool result and the answer: full-text search
    assert listed("--search", "get_weath", "--outcome", "success") == [TRACE]
    assert listed("--search", "role") == listed("--search", 'sunny" OR') == []
    rows = json.loads(run("traces", "list", "--db", db, "--json").output)
    assert rows[1]["calls"] == 3 and rows[1]["input_tokens"] == 130 and rows[1]["rating"] == 5.0
    assert rows[1]["started_at"] == "2024-05-01T10:00:00" and rows[1]["tags"] == ["demo"]


def test_list_reads_the_url_from_the_environment(db):
    result = run("traces", "list", "--json", env={"AGENT_TRACER_DB": db})
    assert [row["id"] for row in json.loads(result.output)] == [OTHER, TRACE]


def test_list_with_nothing_to_show(db):
    assert run("traces", "list", "--db", db, "--outcome", "nope").output.strip() == "No traces match."


def test_show_prints_the_conversation(db):
    result = run("traces", "show", "4bf92", "--db", db)
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"Trace {TRACE}\n")
    for text in (
        "agent:    weather-agent",
        "task:     Weather in Paris?",
        "outcome:  success",
        "rating:   5",
        "tags:     demo",
    ):
        assert text in out
    assert out.count(SYSTEM) == 1  # the first call shows its whole request, later calls only what is new
    assert out.count("user: Weather in Paris?") == 1
    assert "[llm #1] gpt-4o-mini -> gpt-4o-mini-2024-07-18  800 ms  tokens 50 in / 10 out  ok  route primary" in out
    assert 'assistant: -> get_weather({"city": "Paris"})  [call_1]' in out
    assert "[tool] get_weather  12 ms" in out and 'args: {"city": "Paris"}' in out and "result: sunny, 21C" in out
    assert "tool [call_1]: sunny, 21C" in out
    assert "assistant: It is sunny in Paris (21C)." in out
    assert "ttft 150 ms" in out and "streamed" in out
    lines = out.splitlines()
    assert "  [agent] summarizer  1,000 ms" in lines  # nested under the root agent
    assert "    [llm #3] claude-3-5-haiku  90 ms  error (HTTP 529)" in lines
    assert "        user: Summarise" in lines and "        error: overloaded" in lines
    order = [out.index(marker) for marker in ("[llm #1]", "[tool] get_weather", "[llm #2]", "[agent] summarizer")]
    assert order == sorted(order)
    assert 'outcome success  rating 5  from api  "good"' in out


def test_show_json(db):
    result = run("traces", "show", TRACE, "--db", db, "--json")
    detail = json.loads(result.output)
    assert detail["trace"]["id"] == TRACE
    assert [call["id"] for call in detail["calls"]] == ["c000000000000001", "c000000000000002", "c000000000000003"]
    assert detail["tools"][0]["arguments"] == {"city": "Paris"}
    assert detail["feedback"][0]["rating"] == 5.0


def test_show_errors_are_one_line(db, tmp_path):
    one_line_error(run("traces", "show", "ffff", "--db", db), "no trace with id 'ffff'")
    one_line_error(run("traces", "show", "4bf9", "--db", db), "ambiguous")
    missing = tmp_path / "missing.db"
    one_line_error(run("traces", "show", "4bf9", "--db", f"sqlite:///{missing}"), "no trace store at")
    assert not missing.exists()  # read commands never create a store
    one_line_error(run("traces", "list", "--db", "mysql://x/y"), "unsupported database")


def test_rate(db):
    result = run("traces", "rate", "4bf92", "--rating", "3", "--label", "golden", "--db", db)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"Rated {TRACE[:12]}: rating 3, label golden"
    result = run("traces", "rate", "4bf92", "--outcome", "failure", "--comment", "wrong", "--db", db, "--json")
    feedback = json.loads(result.output)
    assert (feedback["trace_id"], feedback["outcome"], feedback["source"]) == (TRACE, "failure", "cli")
    with TraceStore(db) as store:
        trace = store.get_trace(TRACE).trace
        assert (trace.outcome, trace.rating, trace.comment) == ("failure", 3.0, "wrong")
        assert [item.label for item in store.get_trace(TRACE).feedback] == [None, "golden", None]


def test_rate_errors(db):
    one_line_error(run("traces", "rate", "ffff", "--rating", "3", "--db", db), "no trace with id")
    result = run("traces", "rate", TRACE, "--rating", "7", "--db", db)
    assert result.exit_code == 2 and "0<=x<=5" in result.output
    result = run("traces", "rate", TRACE, "--db", db)
    assert result.exit_code == 2 and "at least one of" in result.output


def test_stats(db):
    result = run("traces", "stats", "--db", db)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Traces                   2   errors 1" in out
    assert "LLM calls                4   errors 1" in out
    assert "Latency           p50 90 ms   p95 800 ms" in out
    assert "First token       p50 150 ms" in out
    assert "Store " in out and "KB a model call" in out and "calls in the last 7 days, about" in out
    assert "success" in out and "gpt-4o-mini" in out and "claude-3-5-haiku" in out
    stats = json.loads(run("traces", "stats", "--db", db, "--json").output)
    assert stats["by_outcome"] == {"success": 1, "none": 1}
    assert stats["by_model"][0] == {
        "model": "gpt-4o-mini",
        "calls": 2,
        "input_tokens": 130,
        "output_tokens": 22,
        "errors": 0,
    }
    later = json.loads(run("traces", "stats", "--db", db, "--json", "--since", "2024-05-01T10:30").output)
    assert (later["traces"], later["since"]) == (1, "2024-05-01T10:30:00")


def test_import_a_spill_file(tmp_path):
    spill = tmp_path / "spill.jsonl"
    append_spill(spill, weather_trace())
    with open(spill, "ab") as handle:
        handle.write(b'{"kind": "llm_call", "row": {"id"')  # a crash mid-write
    url = f"sqlite:///{tmp_path / 'new' / 'traces.db'}"
    result = run("traces", "import", str(spill), "--format", "spill", "--db", url)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"Imported 7 records from {spill}: 7 rows new or changed (skipped 1 truncated last line)"
    )
    again = json.loads(run("traces", "import", str(spill), "--db", url, "--json", "--batch-size", "2").output)
    assert again == {"file": str(spill), "format": "spill", "records": 7, "written": 0, "truncated": 1}
    shown = run("traces", "show", "4bf92", "--db", url)
    assert "tool [call_1]: sunny, 21C" in shown.output


def test_import_errors(tmp_path):
    spill = tmp_path / "spill.jsonl"
    append_spill(spill, weather_trace()[:2])
    with open(spill, "ab") as handle:
        handle.write(b"garbage\n")
    append_spill(spill, weather_trace()[2:3])
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    result = run("traces", "import", str(spill), "--db", url, "--batch-size", "1")
    one_line_error(result, "spill.jsonl:3: not a spill record")
    assert "the 2 records before it are in the store" in result.output
    result = run("traces", "import", str(spill), "--format", "otlp", "--db", url)
    assert result.exit_code == 2 and "Invalid value for '--format'" in result.output
    result = run("traces", "import", str(tmp_path / "nope.jsonl"), "--db", url)
    assert result.exit_code == 2 and "does not exist" in result.output


def test_bad_time_is_a_usage_error(db):
    result = run("traces", "list", "--since", "yesterday", "--db", db)
    assert result.exit_code == 2 and "not a time: 'yesterday'" in result.output


def test_real_subprocess(db, tmp_path):
    executable = shutil.which("agent-tracer")
    command = [executable] if executable else [sys.executable, "-m", "agent_tracer.cli"]
    done = subprocess.run([*command, "traces", "list", "--db", db], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert TRACE[:12] in done.stdout and "weather-agent" in done.stdout
    missing = subprocess.run(
        [*command, "traces", "list", "--db", f"sqlite:///{tmp_path / 'none.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and missing.stderr.startswith("Error: no trace store at")
    assert len(missing.stderr.strip().splitlines()) == 1
