"""What the OTLP tests share: `agent-tracer collect` as a child process on a store of its own, a
two-tool agent loop through the official `openai` SDK against the loopback fake model (scripted to
call both tools, then answer), and what a stored trace looks like once tool-call ids (random per
run) are numbered in order, so two runs of the same loop compare equal."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai

from agent_tracer.loopback import free_port
from agent_tracer.messages import message_text, parse_arguments
from agent_tracer.store import TraceStore
from agent_tracer.testing import Reply

QUESTION = "What is the weather and the time in Paris?"
SYSTEM = "You are a terse assistant with tools."
ANSWER = "Sunny, and it is noon in Paris."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    for name, description in (("get_weather", "The weather in a city"), ("get_time", "The local time in a city"))
]


def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "sky": "sunny"}


def get_time(city: str) -> dict[str, Any]:
    return {"city": city, "time": "12:00"}


TOOL_FUNCTIONS: dict[str, Callable[..., Any]] = {"get_weather": get_weather, "get_time": get_time}


def script(body: dict[str, Any]) -> Reply:
    """Call both tools first; answer once their results are in (Chat Completions or Gemini)."""
    results = [m for m in body.get("messages", []) if m.get("role") == "tool"]
    results += [p for c in body.get("contents") or () for p in c.get("parts") or () if "functionResponse" in p]
    if not results:
        return Reply(calls=[("get_weather", {"city": "Paris"}), ("get_time", {"city": "Paris"})])
    return Reply(content=ANSWER)


def agent_loop(client: openai.OpenAI, question: str, run_tool: Callable[[str, dict[str, Any]], Any]) -> str:
    """The agent: ask, run each tool the model calls (through `run_tool`), send the results back."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    for _ in range(4):
        reply = client.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS).choices[0].message
        if not reply.tool_calls:
            return reply.content or ""
        messages.append(reply.model_dump(exclude_none=True))
        for call in reply.tool_calls:
            result = run_tool(call.function.name, json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    raise AssertionError("the scripted model never answered")


def package_cache(kind: str, manifest: bytes) -> Path:
    """A folder outside the checkout for packages a test installs itself (npm's, or pip's with
    `--target`), one for each `manifest` (what is pinned), kept between runs."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agent-tracer-tests"
    return cache / f"{kind}-{hashlib.sha256(manifest).hexdigest()[:12]}"


class CollectProcess:
    """`python -m agent_tracer.cli collect …` on a free loopback port, ready once /healthz answers."""

    def __init__(self, db_url: str, *extra: str) -> None:
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.traces_url = f"{self.url}/v1/traces"
        self.logs_url = f"{self.url}/v1/logs"
        env = {k: v for k, v in os.environ.items() if k not in ("AGENT_TRACER_DB", "AGENT_TRACER_SPILL")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent_tracer.cli", "collect", "--db", db_url, "--port", str(self.port), *extra],
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"agent-tracer collect exited with {self.process.returncode}: {output}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("agent-tracer collect did not answer /healthz within 30 s")

    def metrics(self) -> dict[str, float]:
        """/metrics as {"name{labels}": value}."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


@contextmanager
def otlp_provider(traces_url: str) -> Iterator[Any]:
    """A TracerProvider whose spans go to `traces_url` through the real OTLP (protobuf) exporter."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    try:
        yield provider
    finally:
        provider.shutdown()  # exports what the processor holds


def genai_spans_loop(tracer: Any, client: openai.OpenAI, name: str) -> str:
    """The loop inside `invoke_agent` / `execute_tool` spans written by hand to the GenAI conventions."""

    def run_tool(tool: str, arguments: dict[str, Any]) -> Any:
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.tool.call.arguments": json.dumps(arguments),
        }
        with tracer.start_as_current_span(f"execute_tool {tool}", attributes=attributes) as span:
            result = TOOL_FUNCTIONS[tool](**arguments)
            span.set_attribute("gen_ai.tool.call.result", json.dumps(result))
            return result

    attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name}
    with tracer.start_as_current_span(f"invoke_agent {name}", attributes=attributes) as span:
        agent_loop(client, QUESTION, run_tool)
        return format(span.get_span_context().trace_id, "032x")


# ------------------------------------------------------------------------------------------------
# Comparing stored traces


_CALL_ID = re.compile(r"call_[0-9a-f]{8,}")


def numbered_ids(value: Any) -> Any:
    """`value` with each tool-call id replaced by `call#N`, N in order of first appearance."""
    seen: dict[str, str] = {}
    text = _CALL_ID.sub(lambda m: seen.setdefault(m.group(0), f"call#{len(seen)}"), json.dumps(value))
    return json.loads(text)


def _message(message: dict[str, Any] | None) -> dict[str, Any] | None:
    if message is None:
        return None
    calls = [
        [(call.get("function") or {}).get("name"), parse_arguments((call.get("function") or {}).get("arguments"))]
        for call in message.get("tool_calls") or []
    ]
    return {
        "role": message.get("role"),
        "text": message_text(message) or None,
        "tool_calls": calls,
        "tool_call_id": message.get("tool_call_id"),
    }


def snapshot(url: str, trace_id: str, *, parts: tuple[str, ...] = ("messages", "tools", "answer", "tokens")) -> dict:
    """What a stored trace holds, in a form two runs of the same loop share (ids numbered)."""
    with TraceStore(url) as store:
        detail = store.get_trace(trace_id)
    calls = []
    for call in detail.calls:
        request, response = call.request or {}, call.response or {}
        item: dict[str, Any] = {"model": call.request_model, "status": call.status}
        if "messages" in parts:
            item["messages"] = [_message(m) for m in request.get("messages") or []]
        if "tools" in parts:
            item["tools"] = request.get("tools") or []
        if "answer" in parts:
            item["answer"] = _message(response.get("message"))
            item["finish_reasons"] = call.finish_reasons
            item["tool_names"] = call.tool_names
        if "tokens" in parts:
            item["tokens"] = [call.input_tokens, call.output_tokens]
        calls.append(item)
    return numbered_ids(
        {
            "name": detail.trace.name,
            "status": detail.trace.status,
            "agent_runs": [run.name for run in detail.agent_runs],
            "calls": calls,
            "tools": [[tool.name, tool.arguments, tool.result, tool.error] for tool in detail.tools],
        }
    )


def sft_rows(url: str, out: Path, name: str | None, *extra: str) -> list[dict[str, Any]]:
    """`agent-tracer dataset sft [--name NAME] EXTRA…` over the store: every row, ids numbered."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_tracer.cli",
            "dataset",
            "sft",
            "--db",
            url,
            "--out",
            str(out),
            "--outcome",
            "any",
            "--tokenizer",
            "none",
            "--eval-ratio",
            "0",
            "--no-progress",
            *(["--name", name] if name else []),
            *extra,
        ],
        check=True,
        capture_output=True,
    )
    return [numbered_ids(json.loads(line)) for line in out.read_text().splitlines() if line.strip()]
