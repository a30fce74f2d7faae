"""What the framework tests share: a store that really captures (`agent_tracer.init`), and a fake
model scripted like a two-tool agent loop: first it calls `get_weather`, after that tool's result
`get_time`, after both it answers. The script reads the conversation, not a
counter, so the same loop run twice gets the same answers."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import agent_tracer
from agent_tracer.testing import FakeUpstream, Reply

ANSWER = "Sunny, and it is noon in Paris."
QUESTION = "What is the weather and the time in Paris?"


def weather(city: str) -> str:
    return f"sunny in {city}"


def clock(city: str) -> str:
    return f"noon in {city}"


def tool_results(body: dict[str, Any]) -> int:
    """How many tool results the request carries (Chat Completions, Responses or Gemini)."""
    chat = [m for m in body.get("messages") or () if m.get("role") == "tool"]
    items = body.get("input") if isinstance(body.get("input"), list) else []
    responses = [i for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]
    parts = [p for c in body.get("contents") or () for p in c.get("parts") or () if "functionResponse" in p]
    return len(chat) + len(responses) + len(parts)


def two_tool_loop(body: dict[str, Any]) -> Reply:
    done = tool_results(body)
    if done == 0:
        return Reply(calls=[("get_weather", {"city": "Paris"})], prompt_tokens=40, completion_tokens=7)
    if done == 1:
        return Reply(calls=[("get_time", {"city": "Paris"})], prompt_tokens=50, completion_tokens=7)
    return Reply(content=ANSWER, prompt_tokens=60, completion_tokens=9)


def parallel_tools(body: dict[str, Any]) -> Reply:
    """Both tools in one answer (the frameworks run them concurrently), then the answer."""
    if tool_results(body) == 0:
        return Reply(calls=[("get_weather", {"city": "Paris"}), ("get_time", {"city": "Paris"})])
    return Reply(content=ANSWER)


@dataclass
class Recording:
    url: str
    path: Path
    upstream: FakeUpstream

    def rows(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        assert agent_tracer.flush()
        with sqlite3.connect(self.path) as db:
            db.row_factory = sqlite3.Row
            return db.execute(sql, params).fetchall()

    def sft(self, out: Path) -> list[dict[str, Any]]:
        """`agent-tracer dataset sft` over the store, as a user runs it."""
        from agent_tracer.cli import main

        assert agent_tracer.flush()
        args = ["dataset", "sft", "--db", self.url, "--out", str(out), "--no-progress", "--eval-ratio", "0"]
        result = CliRunner().invoke(main, [*args, "--tokenizer", "none"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in out.read_text().splitlines()]


def start(tmp_path: Path, upstream: FakeUpstream, name: str, **init: Any) -> Recording:
    path = tmp_path / f"{name}.db"
    url = f"sqlite:///{path}"
    init = {"writer": "thread", "flush_interval_s": 0.02, **init}
    agent_tracer.init(db=url, spill_path=str(tmp_path / f"{name}.spill"), **init)
    return Recording(url, path, upstream)


CALL_ID = re.compile(r"(call|fc|resp|msg|chatcmpl)_[A-Za-z0-9]+")


def same_ids(value: Any) -> Any:
    """A dataset row with the fake model's random ids made equal, for comparing two runs."""
    return json.loads(CALL_ID.sub(lambda m: f"{m.group(1)}_ID", json.dumps(value)))
