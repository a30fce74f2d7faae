"""OTLP ingest throughput: model-call spans/s into SQLite through `agent-tracer collect` (issue 22).

    python bench/otlp_ingest.py [--spans 20000] [--batch 512] [--runs 3] [--memory-points 5] [--writer process|thread]

The spans are what an instrumented agent exports: one model call each (GenAI conventions, current
layout: system and user message, an assistant tool call, its result, the answer, two tool
definitions; about 1.6 KB of attributes), every span its own trace (the worst case for the
store's trace merge), in protobuf requests of `--batch` spans as OpenTelemetry's
`BatchSpanProcessor` sends them (512 by default). The bodies are built before the clock starts.
A fresh `agent-tracer collect` on a fresh SQLite file takes them over one HTTP connection, one
request after the other (as one exporter does), after one untimed request of one span (start-up
costs are not the rate). Printed per run: spans/s end to end (the last
answer received: the receiver answers once a request's spans are written); the resident memory of
the collector and of its writer process at the start and after each `--memory-points`-th of the
spans, to show whether it stays flat; the CPU time per span of each of the two (they share the
work, and on a loaded machine may not both get a core). Then the receiver's steps per span, timed
one after the other in this process over the first 20,480 spans: decode, map, write.

Goal: at least 5,000 model-call spans/s with their messages; memory flat.

To compare two versions, run each checkout's own copy of this script, one run of each in turn
(`--runs 1 --no-breakdown`): the collector runs the code of the tree the script is in.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent_tracer.loopback import free_port  # noqa: E402

TOOLS = [
    {"type": "function", "name": name, "description": f"The {name} of a city", "parameters": {"type": "object"}}
    for name in ("weather", "time")
]
MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": "You are a helpful assistant with tools. " * 4}]},
    {"role": "user", "parts": [{"type": "text", "content": "What is the weather and the local time in Paris today?"}]},
    {
        "role": "assistant",
        "parts": [
            {
                "type": "tool_call",
                "id": "call_0123456789abcdef01234567",
                "name": "weather",
                "arguments": {"city": "Paris"},
            }
        ],
    },
    {
        "role": "tool",
        "parts": [
            {"type": "tool_call_response", "id": "call_0123456789abcdef01234567", "response": {"sky": "sunny", "c": 21}}
        ],
    },
]
OUTPUT = [
    {
        "role": "assistant",
        "parts": [{"type": "text", "content": "It is sunny and 21 °C in Paris."}],
        "finish_reason": "stop",
    }
]


def bodies(spans: int, batch: int) -> list[bytes]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    attributes = [
        KeyValue(key=key, value={"string_value": value} if isinstance(value, str) else {"int_value": value})
        for key, value in {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.response.id": "chatcmpl-0123456789",
            "gen_ai.input.messages": json.dumps(MESSAGES),
            "gen_ai.output.messages": json.dumps(OUTPUT),
            "gen_ai.tool.definitions": json.dumps(TOOLS),
            "gen_ai.usage.input_tokens": 182,
            "gen_ai.usage.output_tokens": 14,
        }.items()
    ]
    out = []
    start = time.time_ns()
    for first in range(0, spans, batch):
        request = ExportTraceServiceRequest()
        scope = request.resource_spans.add().scope_spans.add()
        scope.scope.name = "bench"
        for n in range(first, min(first + batch, spans)):
            span = scope.spans.add()
            span.name, span.kind = "chat gpt-4o-mini", 3
            span.trace_id, span.span_id = os.urandom(16), os.urandom(8)
            span.start_time_unix_nano = start + n * 1000
            span.end_time_unix_nano = span.start_time_unix_nano + 800_000_000
            span.attributes.extend(attributes)
        out.append(request.SerializeToString())
    return out


BREAKDOWN_SPANS = 20_480
"""The in-process steps are timed over the first requests up to this many spans."""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    return [
        int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    ]


def run_once(
    requests: list[bytes], folder: Path, points: int, extra: list[str]
) -> tuple[float, list[list[float]], list[float]]:
    port = free_port()
    db = folder / f"otlp-{port}.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AGENT_TRACER_DB", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_tracer.cli", "collect", "--db", f"sqlite:///{db}", "--port", str(port), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # `python -m` puts its working folder first on the path, before PYTHONPATH: run from
        # another checkout's folder, the collector would run that checkout's code.
        cwd=ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
        headers = {"content-type": "application/x-protobuf"}
        # One span first, not timed: what is done once (imports, opening the store, starting the
        # writer process) is not the rate.
        httpx.post(f"{url}/v1/traces", content=bodies(1, 1)[0], headers=headers, timeout=120).raise_for_status()
        workers = [process.pid, *children(process.pid)]  # the collector and its writer process
        memory = [[rss_mb(pid) for pid in workers]]
        marks = {round(len(requests) * k / points) for k in range(1, points + 1)}
        cpu_before = [cpu_s(pid) for pid in workers]
        with httpx.Client(timeout=120) as client:
            start = time.perf_counter()
            for n, body in enumerate(requests, start=1):
                answer = client.post(f"{url}/v1/traces", content=body, headers=headers)
                answer.raise_for_status()
                if n in marks:
                    memory.append([rss_mb(pid) for pid in workers])
            elapsed = time.perf_counter() - start
        cpu = [cpu_s(pid) - before for pid, before in zip(workers, cpu_before)]
        return elapsed, memory, cpu
    finally:
        process.terminate()
        process.wait(timeout=30)


def breakdown(requests: list[bytes], folder: Path) -> dict[str, float]:
    """µs per span of the receiver's three steps, in this process."""
    from agent_tracer.otlp.mapping import span_records
    from agent_tracer.otlp.spans import from_protobuf
    from agent_tracer.store import TraceStore

    decode = mapping = write = 0.0
    count = 0
    with TraceStore(f"sqlite:///{folder / 'breakdown.db'}") as store:
        for body in requests:
            t0 = time.perf_counter()
            spans = from_protobuf(body).spans
            t1 = time.perf_counter()
            records = [record for span in spans for record in span_records(span)[1]]
            t2 = time.perf_counter()
            store.write(records)
            t3 = time.perf_counter()
            decode, mapping, write, count = decode + t1 - t0, mapping + t2 - t1, write + t3 - t2, count + len(spans)
    return {step: seconds / count * 1e6 for step, seconds in (("decode", decode), ("map", mapping), ("write", write))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000, help="Model-call spans per run (default 20,000).")
    parser.add_argument("--batch", type=int, default=512, help="Spans per export request (default 512).")
    parser.add_argument("--runs", type=int, default=3, help="Runs, each on a fresh collector and store (default 3).")
    parser.add_argument(
        "--memory-points", type=int, default=5, help="Memory read after each 1/N of the spans (default 5)."
    )
    parser.add_argument(
        "--writer", choices=["process", "thread"], help="The collector's --writer (default: the collector's, process)."
    )
    parser.add_argument(
        "--no-breakdown", action="store_true", help="Leave out the in-process steps (for runs alternated with a copy)."
    )
    args = parser.parse_args()
    extra = ["--writer", args.writer] if args.writer else []
    requests = bodies(args.spans, args.batch)
    size = sum(len(body) for body in requests) / args.spans
    machine = f"Python {platform.python_version()}, {os.cpu_count()} cores"
    print(f"{machine}; {args.spans} spans in {len(requests)} requests, {size:.0f} bytes a span")
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            elapsed, memory, cpu = run_once(requests, Path(tmp), args.memory_points, extra)
            rates.append(args.spans / elapsed)
            rss = " ".join("/".join(f"{m:.0f}" for m in point) for point in memory)
            split = " + ".join(f"{seconds / args.spans * 1e6:.0f}" for seconds in cpu)
            print(
                f"run {run + 1}: {rates[-1]:,.0f} spans/s ({elapsed:.2f} s); RSS MB (collector/writer process): {rss}; "
                f"CPU µs a span (collector + writer process): {split}; load {os.getloadavg()[0]:.1f}"
            )
        print(f"median: {statistics.median(rates):,.0f} spans/s")
        if args.no_breakdown:
            return
        steps = breakdown(requests[: max(BREAKDOWN_SPANS // args.batch, 1)], Path(tmp))
        print("per span, in-process: " + ", ".join(f"{step} {us:.0f} µs" for step, us in steps.items()))


if __name__ == "__main__":
    main()
