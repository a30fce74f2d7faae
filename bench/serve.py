"""Serving and swapping: `agent-tracer serve` throughput, and what the router's fallback decision costs (issue 6).

    python bench/serve.py [--model smollm2] [--requests 16] [--max-tokens 64] [--calls 1000] [--rounds 3]
    python bench/serve.py --only overhead        # or --only serve

1. serve: `agent-tracer serve MODEL` (transformers on this machine's CPU) answers the same short
   chat requests at concurrency 1 and 8 (`--requests` each, greedy, `max_tokens` fixed and the
   answers long enough to use it): output tokens/s over the wall-clock (completion tokens from each
   answer's `usage`), per-request latency p50/p95 and time to first token (streamed). The model is
   loaded once, in a server process of its own started with the CLI, as a user would.

2. overhead: one `agent-tracer proxy --routes` process in front of one fake upstream (a subprocess:
   `FakeUpstream` from agent_tracer.testing, as in bench/proxy_overhead.py). The same request goes
   through it twice over: as `gpt-test`, forwarded as it is (no route), and as `routed`, a route
   whose primary is that upstream (mode fallback), so it is held, judged good and passed back.
   The difference of the two p50s is what the fallback decision adds to a good primary answer:
   re-serialising the body with the primary's model name, holding the answer, decoding and checking
   it (the tool call's arguments against the tool's JSON schema). Four requests: a text answer and
   a tool-call answer, each plain and streamed. Rounds alternate the two names call by call blocks
   (`--calls` per name per round) on one kept-alive connection each, so drift hits both alike.
   Goal: under 1 ms added at p50.

Every figure printed comes from this run; the machine and date head the output.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy_overhead import Connection, Upstream, answer_text, percentile, serve_upstream  # noqa: E402

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 14},
                },
                "required": ["city", "unit"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Flights between two airports.",
            "parameters": {
                "type": "object",
                "properties": {
                    "origin": {"type": "string"},
                    "destination": {"type": "string"},
                    "date": {"type": "string"},
                },
                "required": ["origin", "destination"],
            },
        },
    },
]
MESSAGES = [
    {"role": "system", "content": "You are a travel assistant. Use the tools when they help."},
    {"role": "user", "content": "What is the weather in Oslo this week, in celsius?"},
]
OVERHEAD_REQUESTS = {
    "text": ({"messages": MESSAGES}, "text"),
    "text, streamed": ({"messages": MESSAGES, "stream": True}, "text"),
    "tool call": ({"messages": MESSAGES, "tools": TOOLS}, "auto"),
    "tool call, streamed": ({"messages": MESSAGES, "tools": TOOLS, "stream": True}, "auto"),
}


def machine() -> str:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return f"{platform.node()}: {os.cpu_count()} cores, {cpu}; Python {platform.python_version()}"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(header, widths)), "-|-".join("-" * w for w in widths)]
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# 2. The fallback decision's overhead


def raw_request(port: int, body: dict[str, Any], scenario: str) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer sk-bench-not-a-real-key\r\nx-fake-scenario: {scenario}\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def good(response: Any, tool_call: bool) -> bool:
    """A complete 200 with the answer asked for: the text, or a get_weather call."""
    if response.status != 200 or not response.done:
        return False
    if not tool_call:
        return bool(answer_text(response))
    return b'"get_weather"' in response.body and (not response.sse or response.body.rstrip().endswith(b"[DONE]"))


def overhead(args: argparse.Namespace) -> list[str]:
    from agent_tracer.proxy.process import ProxyProcess

    upstream = Upstream()
    with tempfile.TemporaryDirectory(prefix="agent-tracer-bench-serve-") as tmp:
        routes = Path(tmp) / "routes.yaml"
        routes.write_text(
            "routes:\n  routed:\n    mode: fallback\n"
            f"    primary: {{url: '{upstream.url}/v1', model: tuned}}\n"
            f"    fallback: {{url: '{upstream.url}/v1', model: frontier}}\n"
        )
        proxy = ProxyProcess(upstream.url, Path(tmp) / "traces.db", "--routes", str(routes))
        try:
            times: dict[tuple[str, str], list[int]] = {}
            bad = 0
            for round_ in range(args.rounds):
                for name, (body, scenario) in OVERHEAD_REQUESTS.items():
                    sse = bool(body.get("stream"))
                    for model in ("gpt-test", "routed") if round_ % 2 == 0 else ("routed", "gpt-test"):
                        conn = Connection(proxy.port)
                        request = raw_request(proxy.port, {"model": model, **body}, scenario)
                        try:
                            for n in range(args.warmup + args.calls):
                                response, total, _ = conn.call(request, sse)
                                bad += not good(response, scenario == "auto")
                                if n >= args.warmup:
                                    times.setdefault((name, model), []).append(total)
                        finally:
                            conn.sock.close()
        finally:
            proxy.stop()
            upstream.stop()
    rows = []
    for name in OVERHEAD_REQUESTS:
        plain, routed = sorted(times[(name, "gpt-test")]), sorted(times[(name, "routed")])
        p50_plain, p50_routed = percentile(plain, 50), percentile(routed, 50)  # µs
        rows.append(
            [
                name,
                f"{p50_plain:,.0f}",
                f"{p50_routed:,.0f}",
                f"{p50_routed - p50_plain:+,.0f}",
                f"{percentile(routed, 99) - percentile(plain, 99):+,.0f}",
            ]
        )
    worst = max(float(row[3].replace(",", "")) for row in rows)
    return [
        f"## Fallback decision overhead ({args.rounds} rounds x {args.calls} calls per name per request; "
        f"{bad} bad answers)",
        table(["request", "unrouted p50 µs", "routed p50 µs", "added p50 µs", "added p99 µs"], rows),
        f"goal: under 1,000 µs added at p50 — {'met' if worst < 1000 else 'NOT met'} (worst {worst:+,.0f} µs)",
    ]


# ------------------------------------------------------------------------------------------------
# 1. serve's throughput


def serve_throughput(args: argparse.Namespace) -> list[str]:
    import openai

    from agent_tracer.loopback import free_port

    port = free_port()
    started = time.perf_counter()
    server = ServeProcess(args.model, port, args.max_batch)
    load_s = time.perf_counter() - started
    client_base = f"http://127.0.0.1:{port}/v1"
    prompts = [
        f"Write a long story about a {thing} who learns to sail. Story number {i}."
        for i, thing in enumerate(["cat", "robot", "baker", "child", "dragon", "sailor", "teacher", "fox"] * 8)
    ]
    rows = []
    try:
        client = openai.OpenAI(base_url=client_base, api_key="unused", max_retries=0, timeout=600)
        client.chat.completions.create(
            model=server.name, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )  # warm-up
        for concurrency in (1, 8):
            results = run_requests(client, server.name, prompts[: args.requests], concurrency, args.max_tokens)
            wall = results["wall_s"]
            latencies = sorted(r["latency_s"] for r in results["runs"])
            ttfts = sorted(r["ttft_s"] for r in results["runs"])
            tokens = sum(r["tokens"] for r in results["runs"])
            rows.append(
                [
                    str(concurrency),
                    str(len(latencies)),
                    f"{tokens:,}",
                    f"{tokens / wall:.1f}",
                    f"{statistics.median(latencies):.2f}",
                    f"{latencies[int(0.95 * (len(latencies) - 1))]:.2f}",
                    f"{statistics.median(ttfts):.2f}",
                ]
            )
    finally:
        server.stop()
    ratio = float(rows[1][3]) / float(rows[0][3])
    return [
        f"## agent-tracer serve {args.model} (transformers, CPU; loaded in {load_s:.0f} s; max_tokens "
        f"{args.max_tokens}, greedy, streamed; --max-batch {args.max_batch})",
        table(
            ["concurrency", "requests", "output tokens", "tokens/s", "latency p50 s", "latency p95 s", "TTFT p50 s"],
            rows,
        ),
        f"concurrency 8 / concurrency 1: {ratio:.2f}x the output tokens/s",
    ]


def run_requests(client: Any, model: str, prompts: list[str], concurrency: int, max_tokens: int) -> dict[str, Any]:
    def one(prompt: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        first, tokens = None, 0
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - t0
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        latency = time.perf_counter() - t0
        return {"latency_s": latency, "ttft_s": first if first is not None else latency, "tokens": tokens}

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        runs = list(pool.map(one, prompts))
    return {"wall_s": time.perf_counter() - t0, "runs": runs}


class ServeProcess:
    """`python -m agent_tracer.cli serve MODEL` on a port, ready once /v1/models answers."""

    def __init__(self, model: str, port: int, max_batch: int) -> None:
        import subprocess

        import httpx

        self.name = "bench-model"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_tracer.cli",
                "serve",
                model,
                "--port",
                str(port),
                "--model-name",
                self.name,
                "--max-batch",
                str(max_batch),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.proc.stdout.read()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("serve did not start in 10 minutes")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except Exception:
            self.proc.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["serve", "overhead"], help="Run one part.")
    parser.add_argument("--model", default="smollm2", help="What serve loads (default: the embedded SmolLM2).")
    parser.add_argument("--requests", type=int, default=16, help="Requests per concurrency level.")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-batch", type=int, default=8, help="serve's --max-batch.")
    parser.add_argument("--calls", type=int, default=1000, help="Timed calls per name, request and round (overhead).")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream:
        serve_upstream()
        return
    print(f"# bench/serve.py — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC — {machine()}\n")
    if args.only in (None, "overhead"):
        print("\n".join(overhead(args)) + "\n")
    if args.only in (None, "serve"):
        print("\n".join(serve_throughput(args)) + "\n")


if __name__ == "__main__":
    main()
