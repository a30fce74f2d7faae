"""`traces export`: stored runs as OpenAI fine-tuning JSONL or Parquet, final conversations or one
per call, the selection filters, held-out traces left out, and the round trip through import."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta

import pytest

from agent_tracer.store import TraceStore

T0 = datetime(2024, 5, 1, 10, 0, 0)
RUN, OTHER, HELD = f"{1:032x}", f"{2:032x}", f"{3:032x}"
SYSTEM = {"role": "system", "content": "You are a weather agent."}
USER = {"role": "user", "content": "Weather in Paris?"}
WEATHER_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
ASKS = {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]}
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"}
ANSWER = {"role": "assistant", "content": "It is sunny in Paris (21C)."}
HI = {"role": "user", "content": "Hi"}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]


def call(n: int, trace: str, messages: list, answer: dict | None, *, model: str = "gpt-4o-mini", **fields) -> tuple:
    row = {
        "id": f"c{n:015x}",
        "trace_id": trace,
        "request_model": model,
        "started_at": T0 + timedelta(seconds=n),
        "request": {"model": model, "messages": messages, "tools": TOOLS, "params": {}, "stream": False},
        "response": {"message": answer} if answer else None,
        **fields,
    }
    return "llm_call", row


@pytest.fixture
def runs(db: str) -> str:
    """A weather run (a tool call, its result, the answer; then a failed call), a plain chat, and a
    held-out run; the weather run rated a success."""
    with TraceStore(db) as store:
        store.write(
            [
                ("trace", {"id": RUN, "name": "weather-agent", "started_at": T0, "tags": ["demo"]}),
                call(1, RUN, [SYSTEM, USER], ASKS),
                call(2, RUN, [SYSTEM, USER, ASKS, RESULT], ANSWER),
                call(3, RUN, [USER], None, status="error", error="overloaded"),
                ("trace", {"id": OTHER, "name": "chat", "started_at": T0 + timedelta(hours=1)}),
                call(4, OTHER, [HI], {"role": "assistant", "content": "Hello!"}, model="gpt-4o"),
                ("trace", {"id": HELD, "name": "bfcl:live_simple", "started_at": T0, "tags": ["bfcl", "held-out"]}),
                call(5, HELD, [USER], ANSWER),
            ]
        )
        store.record_feedback(RUN, outcome="success", rating=5)
    return db


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_final_conversations(cli, runs, tmp_path):
    out = tmp_path / "out" / "train.jsonl"
    result = cli("traces", "export", "--format", "openai-jsonl", "--out", out, "--db", runs, "--order", "oldest")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"Wrote 2 conversations from 2 traces to {out} (left out 1 held-out trace: --include-held-out exports them)"
    )
    weather, chat = read_jsonl(out)
    assert weather == {"messages": [SYSTEM, USER, ASKS, RESULT, ANSWER], "tools": TOOLS}
    assert isinstance(weather["messages"][2]["tool_calls"][0]["function"]["arguments"], str)
    assert chat["messages"][-1] == {"role": "assistant", "content": "Hello!"}
    assert not list(out.parent.glob(".*partial"))


def test_per_call_filters_and_held_out(cli, runs, tmp_path):
    out = tmp_path / "calls.jsonl"
    result = cli("traces", "export", "--out", out, "--per-call", "--outcome", "success", "--db", runs, "--json")
    assert json.loads(result.stdout) == {
        "file": str(out),
        "format": "openai-jsonl",
        "rows": 2,
        "traces": 1,
        "held_out_left_out": 0,
    }
    assert [row["messages"] for row in read_jsonl(out)] == [[SYSTEM, USER, ASKS], [SYSTEM, USER, ASKS, RESULT, ANSWER]]

    assert (
        "Wrote 1 conversation from 1 trace"
        in cli("traces", "export", "--out", out, "--model", "gpt-4o", "--db", runs).output
    )
    assert read_jsonl(out)[0]["messages"][0] == HI
    result = cli("traces", "export", "--out", out, "--tag", "bfcl", "--include-held-out", "--db", runs)
    assert result.output.strip() == f"Wrote 1 conversation from 1 trace to {out}"
    result = cli("traces", "export", "--out", out, "--tag", "bfcl", "--db", runs)
    assert result.output.startswith("Wrote 0 conversations from 0 traces")


def test_limit_counts_exported_traces(cli, runs, tmp_path):
    out = tmp_path / "two.jsonl"
    result = cli("traces", "export", "--out", out, "--limit", "2", "--order", "oldest", "--db", runs, "--json")
    assert json.loads(result.stdout)["traces"] == 2  # the held-out run, among the two oldest, takes no place
    assert [row["messages"][-1] for row in read_jsonl(out)] == [ANSWER, {"role": "assistant", "content": "Hello!"}]


def test_parquet(cli, runs, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setattr("agent_tracer.formats.export.PARQUET_BATCH", 1)
    out = tmp_path / "train.parquet"
    result = cli("traces", "export", "--format", "parquet", "--out", out, "--order", "oldest", "--db", runs)
    assert result.exit_code == 0, result.output
    assert pq.ParquetFile(out).num_row_groups == 2  # written a batch at a time
    rows = pq.read_table(out).to_pylist()
    assert [row["trace_id"] for row in rows] == [RUN, OTHER]
    weather = rows[0]
    assert (weather["name"], weather["outcome"], weather["rating"]) == ("weather-agent", "success", 5.0)
    assert (weather["tags"], weather["started_at"], weather["model"]) == (["demo"], T0, "gpt-4o-mini")
    assert weather["call_ids"] == [f"c{1:015x}", f"c{2:015x}"]
    assert json.loads(weather["messages"]) == [SYSTEM, USER, ASKS, RESULT, ANSWER]
    assert json.loads(weather["tools"]) == TOOLS and rows[1]["outcome"] is None


def test_parquet_without_pyarrow(cli, runs, tmp_path, monkeypatch, one_line_error):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    out = tmp_path / "train.parquet"
    one_line_error(
        cli("traces", "export", "--format", "parquet", "--out", out, "--db", runs),
        "--format parquet needs pyarrow: pip install pyarrow",
    )
    assert not out.exists()


def test_export_errors(cli, db, tmp_path, one_line_error):
    one_line_error(cli("traces", "export", "--out", tmp_path / "x.jsonl", "--db", db), "no trace store at")
    result = cli("traces", "export", "--db", db)
    assert result.exit_code == 2 and "Missing option '--out'" in result.output


def test_round_trip_through_import(cli, runs, tmp_path):
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    assert cli("traces", "export", "--out", first, "--include-held-out", "--db", runs).exit_code == 0
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    result = cli("traces", "import", first, "--format", "openai-jsonl", "--db", empty)
    assert "(3 examples)" in result.output
    assert cli("traces", "export", "--out", second, "--per-call", "--db", empty).exit_code == 0
    assert sorted(first.read_text().splitlines()) == sorted(second.read_text().splitlines())
    assert len(read_jsonl(second)) == 3
