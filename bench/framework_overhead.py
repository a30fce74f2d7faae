"""Framework adapters' overhead: what each adapter adds per agent step, against the same loop
untraced and against the framework's own tracing (issue 22).

    python bench/framework_overhead.py [--runs 60] [--repeats 3] [--frameworks openai-agents,langgraph]

The loop: a real agent with two tools through the official `openai` SDK against the loopback
`FakeUpstream` (its own subprocess, `python -m agent_tracer.testing.upstream`, scenario "auto":
the model calls the first tool, then answers), so one run is two model calls: two agent steps.
The OpenAI Agents SDK runs `Runner.run` on an `Agent` with two `@function_tool`s over Chat
Completions; LangGraph runs the prebuilt ReAct agent with `ChatOpenAI` bound to two tools.

Modes, each in a fresh subprocess of this script, rotated `--repeats` times:

    untraced       no agent-tracer; the Agents SDK's tracing disabled (`set_tracing_disabled`)
    capture        `agent_tracer.init()` only: the transport capture stores the model calls
    adapter        `agent_tracer.init(frameworks=[...])`: the capture plus the adapter (for the
                   Agents SDK, our processor alone, `set_trace_processors([ours])`)
    sdk-default    (Agents SDK only) no agent-tracer; the SDK's default processor, its exporter
                   posting to the loopback server (a 404 there; an API key set so it does post)
    langsmith      (LangGraph only) no agent-tracer; LangSmith's tracer (`LangChainTracer`, on by
                   `LANGSMITH_TRACING=true`), its client posting in a background thread to a
                   loopback LangSmith endpoint this script serves (`LANGSMITH_ENDPOINT`, a dummy
                   `LANGSMITH_API_KEY`); the endpoint counts the runs it receives, so the figure is
                   that of a tracer that really delivers

"adapter added" is adapter minus capture: the adapter's own cost on top of the capture it relies
on. On a shared 2-core machine that difference is below the run-to-run noise, so each mode also
reports the time spent inside the tracing callbacks themselves, on the agent's path: our
processor's or handler's methods in "adapter", the SDK's default processor's `on_trace_*` /
`on_span_*` in "sdk-default", `LangChainTracer`'s `on_*` methods of the same names as our
handler's in "langsmith" (the exporting threads' work is off that path and not counted).
That sum also holds the pauses a callback sits through while another thread has the GIL (our
writer's, the SDK's exporter's), which come and go with the machine; "same, from medians" counts
each callback at its median time instead (times its number of calls), the steadier figure.
"capture+adapter added" is adapter minus untraced; "SDK tracing added" is sdk-default minus
untraced, "LangSmith added" langsmith minus untraced.
A run is timed from `Runner.run` / `invoke` to its result with `time.perf_counter_ns()`; a mode's
figure is the median over its runs' per-step times, then the median over repeats.

"process CPU" is the CPU time of the agent's process (all its threads: the agent, the exporting
threads) over the timed runs and the hand-off of what they traced (`agent_tracer.flush()`, the
SDK processor's `force_flush()`, LangSmith's `wait_for_all_tracers()`), per step. It counts the
work a tracer does off the agent's path too (the SDK's JSON and HTTP, LangSmith's posts, our
pickling onto the writer's pipe), and it moves less with the machine's load than wall time; the
writer child process's CPU (the store's work) is not in it, as the remote end's is not for theirs.
"process CPU added" compares adapter - capture with the framework's own tracing - untraced.

Each mode collects its garbage (`gc.collect()`) after the warm-up, so every timed window starts
from the same collector state. Without it the first full collection after start-up (75-100 ms
of CPU, the whole heap of the SDKs scanned) fell inside some windows and not others: in the
adapter's window of 200 runs it came at run 74 every time, and added about 0.2 ms a step to its
process CPU. Every traced mode meets one such collection within 2,000 runs, the untraced one
none; "full GCs" counts those that still fall inside the windows.

`--instructions` counts instead of timing: each mode runs under valgrind's callgrind, in two
children of `--runs` and of a quarter as many runs, and the difference of their instruction counts
per step is the mode's figure. It counts every thread of the agent's process (the tracing
callbacks, our writer's thread, the SDK's exporter thread and its JSON and HTTP, LangSmith's
client), not the child processes (our writer process, the loopback servers), and it does not move
with the machine's speed, which moves the timed figures by more than the differences between
modes. Timing-dependent work (a writer's batching, collections, an exporter's schedule) still
moves a mode by up to about 0.5 M instructions a step between runs. Minutes a mode; needs valgrind.

Every figure printed comes from this run; nothing is taken from elsewhere.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

STEPS_PER_RUN = 2
MODES = {
    "openai-agents": ("untraced", "capture", "adapter", "sdk-default"),
    "langgraph": ("untraced", "capture", "adapter", "langsmith"),
}
FRAMEWORK_TRACING = {"openai-agents": ("sdk-default", "SDK tracing"), "langgraph": ("langsmith", "LangSmith")}
"""The mode that runs the framework's own tracing, and its name in the summary."""


def _weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _clock(city: str) -> str:
    """The local time in a city."""
    return f"noon in {city}"


CALLBACKS = {
    "openai-agents": ("on_trace_start", "on_trace_end", "on_span_start", "on_span_end"),
    "langgraph": (
        "on_chain_start",
        "on_chain_end",
        "on_tool_start",
        "on_tool_end",
        "on_chat_model_start",
        "on_llm_end",
    ),
}
_in_callbacks = [0]
"""Nanoseconds spent inside the timed callbacks."""
_each_call: dict[str, list[int]] = {}
"""Each timed callback's durations, by name: their medians are blind to the pauses a callback
sits through when another thread holds the GIL (a writer's, an exporter's), which the sum is not."""


def _time_callbacks(target: object, names: tuple[str, ...]) -> None:
    """Wrap the callback methods of an instance, or of a class whose instances the framework makes
    itself (LangChain makes a `LangChainTracer` per root run), so the time spent in them adds up
    in `_in_callbacks`."""
    for name in names:
        method = getattr(target, name)

        def timed(*args, _method=method, _name=name, **kwargs):
            t0 = time.perf_counter_ns()
            try:
                return _method(*args, **kwargs)
            finally:
                took = time.perf_counter_ns() - t0
                _in_callbacks[0] += took
                _each_call.setdefault(_name, []).append(took)

        setattr(target, name, timed)


class LangSmithSink:
    """A loopback LangSmith endpoint: answers `GET /info`, takes runs posted one by one
    (`POST /runs`, `PATCH /runs/<id>`), in JSON batches (`/runs/batch`) and in multipart batches
    (`/runs/multipart`, the client's default), and counts the distinct run ids it received. It reads
    uncompressed bodies (the client's default); a run it cannot read is not counted, and a mode
    whose tracer delivered nothing stops the script."""

    _PART = re.compile(rb'name="(?:post|patch)\.([0-9a-f-]{36})"')
    _ID = re.compile(rb'"id"\s*:\s*"([0-9a-f-]{36})"')

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self
        self.run_ids: set[bytes] = set()
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                sink.received(self.path, self.rfile.read(size))
                body = b"{}"
                self.send_response(200 if self.command == "GET" else 202)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def received(self, path: str, body: bytes) -> None:
        if path.startswith("/runs/multipart"):
            ids = set(self._PART.findall(body))
        elif path.startswith("/runs/batch"):
            batch = json.loads(body or b"{}")
            ids = {str(run.get("id")).encode() for key in ("post", "patch") for run in batch.get(key) or ()}
        elif path.startswith("/runs"):
            found = self._ID.search(body) or re.search(rb"/runs/([0-9a-f-]{36})", path.encode())
            ids = {found.group(1)} if found else set()
        else:
            ids = set()
        with self._lock:
            self.run_ids |= ids

    def count(self) -> int:
        with self._lock:
            return len(self.run_ids)

    def close(self) -> None:
        self._server.shutdown()


def _start_tracing(mode: str, framework: str, tmp: Path) -> None:
    if mode in ("capture", "adapter"):
        import agent_tracer

        frameworks = [framework] if mode == "adapter" else None
        agent_tracer.init(db=f"sqlite:///{tmp / 'bench.db'}", spill_path=str(tmp / "spill"), frameworks=frameworks)


def _openai_agents_loop(base_url: str, mode: str, tmp: Path):
    import asyncio

    import openai
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_trace_processors,
        set_tracing_disabled,
    )

    _start_tracing(mode, "openai-agents", tmp)
    if mode == "adapter":
        from agent_tracer.frameworks import openai_agents

        set_trace_processors([openai_agents.processor()])
        _time_callbacks(openai_agents.processor(), CALLBACKS["openai-agents"])
    elif mode == "sdk-default":
        from agents.tracing.processors import default_exporter, default_processor

        os.environ["OPENAI_API_KEY"] = "sk-bench"
        default_exporter().endpoint = base_url + "/traces/ingest"
        _time_callbacks(default_processor(), CALLBACKS["openai-agents"])
    else:
        set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    agent = Agent(
        name="bench-agent",
        instructions="Answer about the weather.",
        tools=[function_tool(_weather, name_override="get_weather"), function_tool(_clock, name_override="get_time")],
        model=OpenAIChatCompletionsModel(model="gpt-test", openai_client=client),
    )
    loop = asyncio.new_event_loop()

    def run() -> None:
        loop.run_until_complete(Runner.run(agent, "Weather in Paris?"))

    return run


def _langgraph_loop(base_url: str, mode: str, tmp: Path):
    import warnings

    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

        _start_tracing(mode, "langchain", tmp)
        if mode == "adapter":
            from agent_tracer.frameworks import langchain

            _time_callbacks(langchain.callback_handler(), CALLBACKS["langgraph"])
        elif mode == "langsmith":
            from langchain_core.tracers.langchain import LangChainTracer

            assert os.environ.get("LANGSMITH_TRACING") == "true", "the parent sets LangSmith's environment"
            _time_callbacks(LangChainTracer, CALLBACKS["langgraph"])
        model = ChatOpenAI(model="gpt-test", base_url=base_url, api_key=SecretStr("sk-bench"), max_retries=0)
        graph = create_react_agent(model, [tool("get_weather")(_weather), tool("get_time")(_clock)])

    def run() -> None:
        graph.invoke({"messages": [("user", "Weather in Paris?")]})

    return run


def _one_mode(framework: str, mode: str, base_url: str, runs: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        make = _openai_agents_loop if framework == "openai-agents" else _langgraph_loop
        run = make(base_url, mode, Path(tmp))
        for _ in range(warmup):
            run()
        per_step = []
        _in_callbacks[0] = 0
        _each_call.clear()
        gc.collect()
        full = [0]

        def count_full(phase: str, info: dict[str, int]) -> None:
            if phase == "stop" and info["generation"] == 2:
                full[0] += 1

        gc.callbacks.append(count_full)
        cpu0 = time.process_time_ns()
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            run()
            per_step.append((time.perf_counter_ns() - t0) / 1e6 / STEPS_PER_RUN)
        _hand_off(mode)
        cpu = time.process_time_ns() - cpu0
        result: dict[str, Any] = {
            "p50_ms": statistics.median(per_step),
            "mean_ms": statistics.fmean(per_step),
            "callbacks_ms": _in_callbacks[0] / 1e6 / runs / STEPS_PER_RUN,
            "callbacks_median_ms": sum(statistics.median(d) * len(d) for d in _each_call.values())
            / 1e6
            / runs
            / STEPS_PER_RUN,
            "cpu_ms": cpu / 1e6 / runs / STEPS_PER_RUN,
            "full_gcs": full[0],
        }
        if mode in ("capture", "adapter"):
            import agent_tracer

            result["stats"] = agent_tracer.stats()
            agent_tracer.uninstrument()
        return result


def _hand_off(mode: str) -> None:
    """Wait until the mode's tracing has handed everything off (inside the CPU window): our
    writer has the payloads (its child process's work is not this process's), the SDK's exporter
    and LangSmith's client have posted theirs."""
    if mode in ("capture", "adapter"):
        import agent_tracer

        agent_tracer.flush(30)
    elif mode == "sdk-default":
        from agents.tracing.processors import default_processor

        default_processor().force_flush()
    elif mode == "langsmith":
        from langchain_core.tracers.langchain import wait_for_all_tracers

        wait_for_all_tracers()  # everything posted before the parent counts what arrived


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=60, help="timed agent runs per mode and repeat")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frameworks", default="openai-agents,langgraph")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count each mode's instructions a step under valgrind's callgrind instead of timing it (minutes a mode)",
    )
    parser.add_argument("--child", nargs=3, metavar=("FRAMEWORK", "MODE", "BASE_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        framework, mode, base_url = args.child
        print(json.dumps(_one_mode(framework, mode, base_url, args.runs, args.warmup)))
        return

    if args.instructions and args.runs < 2:
        parser.error("--instructions needs --runs of at least 2 (it subtracts a child of a quarter as many runs)")
    if args.instructions and not shutil.which("valgrind"):
        raise SystemExit(
            "--instructions runs each mode under valgrind's callgrind: install valgrind (apt-get install valgrind)"
        )
    server = subprocess.Popen(
        [sys.executable, "-m", "agent_tracer.testing.upstream"], stdout=subprocess.PIPE, text=True
    )
    sink = LangSmithSink()
    try:
        base_url = server.stdout.readline().strip() + "/v1"  # type: ignore[union-attr]
        for framework in args.frameworks.split(","):
            if args.instructions:
                _report_instructions(
                    framework, {m: _instructions(framework, m, base_url, args, sink) for m in MODES[framework]}, args
                )
                continue
            figures: dict[str, list[dict]] = {mode: [] for mode in MODES[framework]}
            for _ in range(args.repeats):
                for mode in MODES[framework]:
                    figures[mode].append(_child(framework, mode, base_url, args, sink))
            _report(framework, figures, args)
    finally:
        sink.close()
        server.terminate()
        server.wait()


def _instructions(framework: str, mode: str, base_url: str, args: argparse.Namespace, sink: LangSmithSink) -> float:
    """Instructions a step of `mode`: two children under callgrind, of `--runs` and a quarter as
    many runs, side by side; the difference leaves out start-up, warm-up and the hand-off's fixed part."""
    many, few = args.runs, max(args.runs // 4, 1)
    with ThreadPoolExecutor(2) as pool:
        counted = list(
            pool.map(lambda runs: _child(framework, mode, base_url, args, sink, runs, CALLGRIND), (few, many))
        )
    return (counted[1]["instructions"] - counted[0]["instructions"]) / (many - few) / STEPS_PER_RUN


CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
"""Counts the instructions of every thread of the process it runs (not of its child processes:
our writer process, the loopback servers), the same from run to run: the machine's speed, which
moves a mode's time by more than the differences between modes here, does not enter."""


def _child(
    framework: str,
    mode: str,
    base_url: str,
    args: argparse.Namespace,
    sink: LangSmithSink,
    runs: int | None = None,
    wrapper: tuple[str, ...] = (),
) -> dict:
    """One mode in a fresh subprocess (under `wrapper`: callgrind); LangSmith's tracing on only in
    the "langsmith" mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_"))}
    if mode == "langsmith":
        env.update(LANGSMITH_TRACING="true", LANGSMITH_ENDPOINT=sink.url, LANGSMITH_API_KEY="lsv2-bench")
    before = sink.count()
    command = [*wrapper, sys.executable, __file__, "--runs", str(runs or args.runs), "--warmup", str(args.warmup)]
    out = subprocess.run(
        [*command, "--child", framework, mode, base_url], capture_output=True, text=True, check=True, env=env
    )
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise SystemExit(f"the {framework} {mode} child printed no figures: {out.stderr.strip()[-500:]}")
    result = json.loads(lines[-1])
    if wrapper:
        found = re.search(r"Collected : (\d+)", out.stderr)
        if found is None:
            raise SystemExit(f"callgrind printed no instruction count for {mode}: {out.stderr[-500:]}")
        result["instructions"] = int(found.group(1))
    if mode == "langsmith":
        result["langsmith_runs"] = sink.count() - before
        if not result["langsmith_runs"]:
            raise SystemExit("LangSmith's tracer delivered no runs to the loopback endpoint: not a working tracer")
    return result


def _report(framework: str, figures: dict[str, list[dict]], args: argparse.Namespace) -> None:
    p50 = {mode: statistics.median(r["p50_ms"] for r in found) for mode, found in figures.items()}
    inside = {mode: statistics.median(r["callbacks_ms"] for r in found) for mode, found in figures.items()}
    typical = {mode: statistics.median(r["callbacks_median_ms"] for r in found) for mode, found in figures.items()}
    cpu = {mode: statistics.median(r["cpu_ms"] for r in found) for mode, found in figures.items()}
    print(f"\n{framework}: {args.runs} runs x {args.repeats} repeats, {STEPS_PER_RUN} model calls a run")
    head = f"{'p50 ms/step':>12} {'in tracing callbacks ms/step':>30} {'same, from medians':>19}"
    print(f"  {'mode':<12} {head} {'process CPU ms/step':>20} {'full GCs':>9}")
    for mode, value in p50.items():
        full = sum(r["full_gcs"] for r in figures[mode])
        print(f"  {mode:<12} {value:>12.3f} {inside[mode]:>30.4f} {typical[mode]:>19.4f} {cpu[mode]:>20.3f} {full:>9}")
    print(f"  adapter added (adapter - capture):           {p50['adapter'] - p50['capture']:+.3f} ms/step")
    print(f"  capture+adapter added (adapter - untraced):  {p50['adapter'] - p50['untraced']:+.3f} ms/step")
    own, label = FRAMEWORK_TRACING[framework]
    print(f"  {label + ' added (' + own + ' - untraced):':<44} {p50[own] - p50['untraced']:+.3f} ms/step")
    print(f"  in callbacks, adapter / {own}: {inside['adapter'] / inside[own]:.2f}", end="")
    print(f" (from each callback's median time: {typical['adapter'] / typical[own]:.2f})")
    print(f"  process CPU added: adapter - capture {cpu['adapter'] - cpu['capture']:+.3f} ms/step, ", end="")
    print(f"{own} - untraced {cpu[own] - cpu['untraced']:+.3f} ms/step")
    if own == "langsmith":
        received = [r["langsmith_runs"] for r in figures[own]]
        agent_runs = args.runs + args.warmup
        print(f"  LangSmith's loopback endpoint received {received} runs per child ({agent_runs} agent runs each)")
    stats = figures["adapter"][-1].get("stats")
    print(f"  last adapter run's agent_tracer.stats(): {stats}")


def _report_instructions(framework: str, per_step: dict[str, float], args: argparse.Namespace) -> None:
    few, runs = max(args.runs // 4, 1), args.runs
    print(f"\n{framework}: instructions a step (callgrind; every thread of the agent's process, its exporting")
    print(f"  threads included; children of {few} and {runs} runs, {STEPS_PER_RUN} model calls a run)")
    for mode, value in per_step.items():
        added = f"{(value - per_step['untraced']) / 1e6:+10.3f} M over untraced" if mode != "untraced" else ""
        print(f"  {mode:<12} {value / 1e6:10.3f} M {added}")
    own, label = FRAMEWORK_TRACING[framework]
    ours, theirs = per_step["adapter"] - per_step["capture"], per_step[own] - per_step["untraced"]
    both = per_step["adapter"] - per_step["untraced"]
    print(f"  adapter added (adapter - capture): {ours / 1e6:+.3f} M; ", end="")
    print(f"{label} added ({own} - untraced): {theirs / 1e6:+.3f} M")
    print(f"  adapter / {label}: {ours / theirs:.2f}; capture+adapter / {label}: {both / theirs:.2f}")


if __name__ == "__main__":
    main()
