"""Capture overhead: what agent-tracer adds to an OpenAI SDK call, against OpenLLMetry, and how fast
its writer stores calls in SQLite (issue 2).

    python bench/capture_overhead.py [--calls 2000] [--stream] [--repeats 3] [--write-calls 20000]

Latency. The same loop of `client.chat.completions.create(...)` calls (an agent step, 2.1 KB of JSON:
system prompt, user question, an earlier tool call and its result, two tool definitions) runs
against the loopback `FakeUpstream` in three modes:

    plain          no tracing at all
    agent-tracer   `agent_tracer.init(db=<SQLite file in a temp dir>)`, the calls inside no agent;
                   the writer (a child process by default) runs during the loop, as in an agent
    openllmetry    OpenLLMetry's `opentelemetry-instrumentation-openai` (installed with pip when
                   missing) on an SDK TracerProvider with a BatchSpanProcessor and an exporter that
                   discards spans, so the instrumentation is measured, not I/O; its defaults are
                   kept (message content on spans, TRACELOOP_TRACE_CONTENT=true)

Each mode runs in a fresh subprocess of this script, so patches and instrumentors never leak from
one mode into another, and the modes run `--repeats` times in rotation (plain, agent-tracer,
openllmetry, plain, …) so that drift of the machine hits them alike. A run warms up (`--warmup`
calls, then a flush so the store is open and migrated), then times each call with
`time.perf_counter_ns()`: `create()` returning for plain calls, the stream fully consumed with
`--stream`. A mode's p50, p99 and mean are the medians of its runs' p50s, p99s and means; "added"
is the difference to plain, and the ratios are agent-tracer's added time over OpenLLMetry's.

Where the server runs. By default each run gets its own `python -m agent_tracer.testing.upstream`
subprocess, and that is the fairer setup: in-process, the server's handler threads run Python in the
measured interpreter, so they compete with the client for the GIL (and, on two cores, with the
tracing modes' writer or exporter thread for the CPU). Measured both ways on the 2-core machine
(BENCHMARKS.md): in-process, a plain call's p50 was ~10% higher (the server's Python work and
garbage collections land in the measured process) while the added times moved by less than the
run-to-run noise, so in-process mostly flatters the percentages with a slower baseline; and while
other processes loaded the machine it inflated OpenLLMetry's added time more than agent-tracer's.
`--server inprocess` keeps that variant for comparison.

What the columns mean. p50 is mostly the cost on the agent's thread per call. The mean and p99 also
carry the writer's work: pickling batches onto the pipe in this process, and, on two cores, the
writer process's CPU (turning payloads into rows, writing them) competing with the agent and the
fake upstream. With `writer="thread"` that work runs in the agent's process and takes the GIL.
The mode `agent-tracer-idle-writer` (named in `--modes`) holds the writer back until the loop ends,
which separates the two. `--breakdown` adds one agent-tracer run that times its capture functions
inside the loop, and every run reports the garbage collections during its loop.

Write throughput. Separately, `--write-calls` LLM call payloads (real captured calls, plain and
streamed, text and tool-call answers, replicated with fresh trace and span ids) are stored the way
the writer stores them: `payload.records()` for a batch of the exporter's batch size, then
one `TraceStore.write`, into a fresh SQLite file. Reported as calls per second, with the part spent
in `records()`; and, as a cross-check, end to end through the running writer (submit them all, then
`agent_tracer.flush()`).

Every figure printed comes from this run; nothing is taken from elsewhere.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file from a checkout: import the checkout's agent_tracer
    sys.path.insert(0, str(ROOT))

MODES = ("plain", "agent-tracer", "openllmetry")
EXTRA_MODES = ("agent-tracer-idle-writer",)
"""Run only when named in --modes: agent-tracer with its writer held back until the loop ends, which
separates the capture path's cost from the writer's."""
ALL_MODES = MODES + EXTRA_MODES
OPENLLMETRY = "opentelemetry-instrumentation-openai"
RESULT_PREFIX = "RESULT "
"""A worker prints its result as one JSON line after this prefix."""

from agent_call import call_once  # noqa: E402 (beside this script)
from capture_write import run_write_worker  # noqa: E402

# ------------------------------------------------------------------------------------------------
# Worker: one mode in this process


class _Tracing:
    """What a mode set up: `flush()` waits for its spans, `report()` says what it recorded."""

    def flush(self) -> None: ...

    def report(self) -> dict[str, Any]:
        return {}


def _setup_agent_tracer(tmp: Path, idle_writer: bool = False) -> _Tracing:
    import agent_tracer

    db = tmp / "bench.db"
    held_back = {"batch_size": 1_000_000, "flush_interval_s": 3600.0} if idle_writer else {}
    agent_tracer.init(db=f"sqlite:///{db}", **held_back)

    class AgentTracer(_Tracing):
        def flush(self) -> None:
            if not agent_tracer.flush(timeout=60):
                raise RuntimeError("agent_tracer.flush() timed out")

        def report(self) -> dict[str, Any]:
            t0 = time.perf_counter()
            self.flush()
            flush_s = time.perf_counter() - t0
            stats = agent_tracer.stats()
            agent_tracer.uninstrument()
            rows = 0
            with sqlite3.connect(db) as conn:  # the table exists once the writer has opened the store
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'llm_calls'").fetchone():
                    rows = conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
            return {"flush_ms": flush_s * 1000, "stats": stats, "llm_calls_rows": rows}

    return AgentTracer()


def _setup_openllmetry() -> _Tracing:
    from opentelemetry import trace
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DiscardingExporter(SpanExporter):
        """Counts spans and drops them: the cost measured is the instrumentation's, not I/O."""

        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans):
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

    exporter = DiscardingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)

    class OpenLLMetry(_Tracing):
        def flush(self) -> None:
            provider.force_flush()

        def report(self) -> dict[str, Any]:
            self.flush()
            return {"spans_exported": exporter.spans, "version": importlib.metadata.version(OPENLLMETRY)}

    return OpenLLMetry()


class GCWatch:
    """Garbage collections (count and ms per generation) while it is entered."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.ms = [0.0, 0.0, 0.0]
        self._t0 = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.counts[info["generation"]] += 1
            self.ms[info["generation"]] += (time.perf_counter() - self._t0) * 1000

    def __enter__(self) -> GCWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


class Breakdown:
    """Per-call time inside agent-tracer's capture functions, measured in the real loop by wrapping
    them with clock readings (bench only; the wrappers cost ~0.5 µs each, so this run's latencies
    are not used elsewhere). Inclusive times: an indented step is part of the one above it."""

    def __init__(self) -> None:
        self._acc: dict[str, int] = {}
        self.per_call: dict[str, list[int]] = {}
        self._restore: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        from agent_tracer import recorder
        from agent_tracer.capture import TransportPatch
        from agent_tracer.exporter import StoreExporter
        from agent_tracer.recorder import CallRecorder

        targets = [
            (TransportPatch, "_start", "_start: request side"),
            (CallRecorder, "__init__", "  CallRecorder.__init__"),
            (recorder, "safe_endpoint", "    safe_endpoint"),
            (TransportPatch, "_attach", "_attach: response headers, wrap the body"),
            (CallRecorder, "feed_safely", "feed_safely (every chunk of the body)"),
            (CallRecorder, "_finish", "_finish: response side"),
            (StoreExporter, "submit", "  exporter.submit"),
        ]
        for owner, name, label in targets:
            self._swap(owner, name, self._timed(getattr(owner, name), label))
            self.per_call[label] = []

    def _swap(self, owner: Any, name: str, value: Any) -> None:
        self._restore.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def _timed(self, func: Callable[..., Any], label: str) -> Callable[..., Any]:
        acc, clock = self._acc, time.perf_counter_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return func(*args, **kwargs)
            finally:
                acc[label] = acc.get(label, 0) + clock() - t0

        return timed

    def start_call(self) -> None:
        self._acc.clear()

    def end_call(self) -> None:
        for label, values in self.per_call.items():
            values.append(self._acc.get(label, 0))

    def remove(self) -> None:
        while self._restore:
            owner, name, value = self._restore.pop()
            setattr(owner, name, value)

    def result(self) -> dict[str, float]:
        """Label → median µs per call."""
        return {label: statistics.median(values) / 1000 for label, values in self.per_call.items() if values}


def run_worker(
    mode: str, base_url: str | None, calls: int, warmup: int, stream: bool, breakdown: bool = False
) -> dict[str, Any]:
    """Set the mode up, warm up, time `calls` calls; the latencies in ns and what the mode recorded."""
    import openai

    upstream = None
    if base_url is None:  # --server inprocess
        from agent_tracer.testing.upstream import FakeUpstream

        upstream = FakeUpstream().start()
        base_url = upstream.openai_base_url
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        tracing = {
            "plain": lambda: _Tracing(),
            "agent-tracer": lambda: _setup_agent_tracer(Path(tmp)),
            "agent-tracer-idle-writer": lambda: _setup_agent_tracer(Path(tmp), idle_writer=True),
            "openllmetry": _setup_openllmetry,
        }[mode]()
        timers = Breakdown() if breakdown else None
        if timers is not None:
            timers.install()
        client = openai.OpenAI(base_url=base_url, api_key="sk-bench-not-a-real-key", max_retries=0)
        for _ in range(warmup):
            call_once(client, stream)
        tracing.flush()
        gc.collect()
        clock = time.perf_counter_ns
        latencies = []
        with GCWatch() as collections:
            for _ in range(calls):
                if timers is not None:
                    timers.start_call()
                t0 = clock()
                call_once(client, stream)
                latencies.append(clock() - t0)
                if timers is not None:
                    timers.end_call()
        if timers is not None:
            timers.remove()
        report = tracing.report()
        client.close()
    if upstream is not None:
        upstream.stop()
    gc_report = {"counts": collections.counts, "ms": collections.ms}
    result = {"mode": mode, "latencies_ns": latencies, "gc": gc_report, **report}
    if timers is not None:
        result["breakdown"] = timers.result()
    return result


# ------------------------------------------------------------------------------------------------
# Orchestration: servers, worker subprocesses, the table


class UpstreamProcess:
    """`python -m agent_tracer.testing.upstream` in a subprocess, on a free port."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent_tracer.testing.upstream", "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env=_child_env(),
        )
        first = self.proc.stdout.readline().strip()
        if not first.startswith("http://"):
            self.close()
            raise RuntimeError(f"the fake upstream did not start (it printed {first!r})")
        self.openai_base_url = first + "/v1"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()

    def __enter__(self) -> UpstreamProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _run_child(args: list[str], server: str) -> dict[str, Any]:
    """Run this script as a worker (with its own upstream subprocess unless in-process); its result."""

    def run(extra: list[str]) -> dict[str, Any]:
        cmd = [sys.executable, str(Path(__file__).resolve()), *args, *extra]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_child_env())
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith(RESULT_PREFIX):
                return json.loads(line[len(RESULT_PREFIX) :])
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker exited {proc.returncode}: {tail}"}

    if server == "inprocess":
        return run([])
    with UpstreamProcess() as upstream:
        return run(["--base-url", upstream.openai_base_url])


def _openllmetry_installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.instrumentation.openai") is not None
    except ModuleNotFoundError:  # opentelemetry.instrumentation itself is missing
        return False


def ensure_openllmetry(install: bool) -> str | None:
    """None when OpenLLMetry's OpenAI instrumentation is importable (installing it if allowed), else why not."""
    if not _openllmetry_installed():
        if not install:
            return f"{OPENLLMETRY} is not installed (--no-install)"
        print(f"installing {OPENLLMETRY} with pip …", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", OPENLLMETRY], capture_output=True, text=True
        )
        importlib.invalidate_caches()
        if proc.returncode != 0 or not _openllmetry_installed():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return f"pip install {OPENLLMETRY} failed: {tail}"
    return None


def percentile(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile, in µs."""
    rank = max(1, -(-len(sorted_ns) * q // 100))
    return sorted_ns[int(rank) - 1] / 1000


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_line() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # Linux: the model name the kernel reports
        models = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = models[0] if models else cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("openai", "httpx2", "opentelemetry-sdk", OPENLLMETRY, "SQLAlchemy")
    )
    return (
        f"{cpu}, {cores} cores; Python {platform.python_version()} ({platform.system()}); "
        f"{versions}, SQLite {sqlite3.sqlite_version}"
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Plain text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def summarize_latency(runs: dict[str, list[dict[str, Any]]], calls: int, why_not: dict[str, str]) -> tuple[str, dict]:
    """The latency table, and per mode: p50, p99 and mean (medians over runs), added vs plain."""
    summary: dict[str, dict[str, Any]] = {}
    for mode, results in runs.items():
        good = [r for r in results if "error" not in r]
        if not good:
            why_not.setdefault(mode, results[0]["error"] if results else "not run")
            continue
        per_run: dict[str, list[float]] = {"p50": [], "p99": [], "mean": []}
        for r in good:
            ordered = sorted(r["latencies_ns"])
            per_run["p50"].append(percentile(ordered, 50))
            per_run["p99"].append(percentile(ordered, 99))
            per_run["mean"].append(statistics.mean(ordered) / 1000)
        summary[mode] = {stat: statistics.median(values) for stat, values in per_run.items()}
        summary[mode].update(per_run=per_run, runs=good)
    plain = summary.get("plain")
    for mode, s in summary.items():
        if plain is not None and mode != "plain":
            s["added"] = {stat: s[stat] - plain[stat] for stat in ("p50", "p99", "mean")}
    at, olm = summary.get("agent-tracer", {}), summary.get("openllmetry", {})
    header = [
        "mode",
        "calls",
        "p50 µs",
        "p99 µs",
        "mean µs",
        "added p50 µs",
        "added % of p50",
        "ratio p50",
        "added p99 µs",
        "added mean µs",
        "ratio mean",
        "p50 of each run µs",
    ]
    rows = []
    for mode in ALL_MODES:
        if mode not in summary:
            if mode in why_not:
                rows.append([mode, "-", *["n/a"] * 9, "see below"])
            continue
        s = summary[mode]
        added = s.get("added")
        row = [mode, f"{calls}×{len(s['runs'])}", f"{s['p50']:.0f}", f"{s['p99']:.0f}", f"{s['mean']:.0f}"]
        if added is None:
            row += ["-"] * 6
        else:
            row += [
                f"{added['p50']:+.0f}",
                f"{100 * added['p50'] / plain['p50']:+.1f}%",
                _ratio(mode, "p50", at, olm),
                f"{added['p99']:+.0f}",
                f"{added['mean']:+.0f}",
                _ratio(mode, "mean", at, olm),
            ]
        rows.append(row + [" ".join(f"{v:.0f}" for v in s["per_run"]["p50"])])
    return _table(header, rows), summary


def _ratio(mode: str, stat: str, at: dict[str, Any], olm: dict[str, Any]) -> str:
    """agent-tracer's added time over OpenLLMetry's, on the agent-tracer row."""
    if mode != "agent-tracer" or "added" not in at or "added" not in olm:
        return "-"
    reference = olm["added"][stat]
    return f"{at['added'][stat] / reference:.2f}" if reference > 0 else "ref. adds ≤ 0"


def _write_lines(write: dict[str, Any]) -> tuple[list[str], float | None]:
    if "error" in write:
        return [f"write throughput: n/a ({write['error']})"], None
    direct = statistics.median(write["direct_s"])
    records = statistics.median(write["records_s"])
    calls_per_s = write["calls"] / direct
    n = write["calls"]
    return [
        f"write throughput: {calls_per_s:,.0f} LLM calls/s into SQLite (records() + TraceStore.write in batches of "
        f"{write['batch_size']}; {n} calls of ~{write['payload_bytes']:.0f} B raw request+response; "
        f"median of {len(write['direct_s'])})",
        f"  {1e6 * direct / n:.0f} µs per call: payload.records() {1e6 * records / n:.0f} µs, "
        f"TraceStore.write {1e6 * (direct - records) / n:.0f} µs",
        "  of which, in records(): " + ", ".join(f"{k} {v:.0f} µs" for k, v in write["records_breakdown"].items()),
        f"  through the running writer, end to end: {n / write['writer_s']:,.0f} calls/s "
        f"(submit {1e6 * write['writer_submit_s'] / n:.1f} µs per call; stats() {write['writer_stats']})",
    ], calls_per_s


def _breakdown_lines(result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return [f"breakdown: n/a ({result['error']})"]
    ordered = sorted(result["latencies_ns"])
    lines = [
        f"agent-tracer's capture functions inside the loop, median µs per call (one more run, "
        f"call p50 {percentile(ordered, 50):.0f} µs with the timers on; inclusive times):"
    ]
    width = max(len(label) for label in result["breakdown"])
    lines += [f"  {label:<{width}}  {us:7.1f}" for label, us in result["breakdown"].items()]
    return lines


def report(
    summary: dict[str, Any],
    table: str,
    write: dict[str, Any] | None,
    why_not: dict[str, str],
    header: str,
    command: str,
    started: dt.datetime,
    breakdown: dict[str, Any] | None = None,
) -> str:
    out = [header, "", table, ""]
    out += [f"{mode}: not measured: {reason}" for mode, reason in why_not.items()]
    at, olm, plain = summary.get("agent-tracer"), summary.get("openllmetry"), summary.get("plain")
    if at:
        flush = statistics.median(r["flush_ms"] for r in at["runs"])
        last = at["runs"][-1]
        out.append(
            f"agent-tracer: flush after the loop {flush:.1f} ms (median of runs); last run: stats() "
            f"{last['stats']}, llm_calls rows {last['llm_calls_rows']}"
        )
    if olm:
        last = olm["runs"][-1]
        out.append(
            f"openllmetry {last['version']}: spans exported (and discarded) in the last run: {last['spans_exported']}"
        )
    for mode in ALL_MODES:
        if mode in summary:
            runs = summary[mode]["runs"]
            counts = [statistics.median(r["gc"]["counts"][g] for r in runs) for g in range(3)]
            ms = statistics.median(sum(r["gc"]["ms"]) for r in runs)
            out.append(
                f"gc during the loop, {mode}: {counts[0]:.0f} / {counts[1]:.0f} / {counts[2]:.0f} collections "
                f"of generation 0 / 1 / 2, {ms:.1f} ms in all (median of runs)"
            )
    if breakdown is not None:
        out += ["", *_breakdown_lines(breakdown)]
    calls_per_s = None
    if write is not None:
        lines, calls_per_s = _write_lines(write)
        out += lines
    out += ["", "goals:"]
    if at and plain and "added" in at:
        if olm and "added" in olm:
            for stat in ("p50", "mean"):
                ours, ref = at["added"][stat], olm["added"][stat]
                verdict = "met" if ours < ref else "NOT met"
                out.append(f"  less added time than OpenLLMetry ({stat}): {verdict} ({ours:.0f} vs {ref:.0f} µs)")
        else:
            out.append(f"  less added time than OpenLLMetry: not measured ({why_not.get('openllmetry', 'not run')})")
        pct = 100 * at["added"]["p50"] / plain["p50"]
        out.append(f"  at most 5% of a plain call's p50: {'met' if pct <= 5 else 'NOT met'} ({pct:.1f}%)")
    if calls_per_s is not None:
        verdict = "met" if calls_per_s >= 5000 else "NOT met"
        out.append(f"  at least 5,000 calls/s written to SQLite: {verdict} ({calls_per_s:,.0f}/s)")
    out += ["", f"machine: {machine_line()}", f"date: {started:%Y-%m-%d %H:%M} UTC", f"command: {command}"]
    return "\n".join(out)


def run_latency(modes: list[str], args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """Each mode `args.repeats` times, in rotation, each run a fresh worker subprocess."""
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    worker_args = ["--calls", str(args.calls), "--warmup", str(args.warmup)] + (["--stream"] if args.stream else [])
    for rep in range(args.repeats):
        for mode in modes:
            t0 = time.perf_counter()
            result = _run_child(["--worker", mode, *worker_args], args.server)
            runs[mode].append(result)
            status = result.get("error") or f"p50 {percentile(sorted(result['latencies_ns']), 50):.0f} µs"
            print(
                f"  run {rep + 1}/{args.repeats} {mode:<24} {time.perf_counter() - t0:5.1f} s  {status}",
                file=sys.stderr,
                flush=True,
            )
    return runs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="What agent-tracer adds to an OpenAI SDK call, against OpenLLMetry; SQLite write throughput."
    )
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per run (default 2000)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls before timing (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode, in rotation (default 3)")
    parser.add_argument("--stream", action="store_true", help="streamed calls: time until the stream is consumed")
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated, from {','.join(ALL_MODES)} (default: {','.join(MODES)})",
    )
    parser.add_argument(
        "--server",
        choices=("subprocess", "inprocess"),
        default="subprocess",
        help="where the fake upstream runs (default: its own process per run)",
    )
    parser.add_argument(
        "--write-calls",
        type=int,
        default=20_000,
        help="LLM calls stored in the write-throughput test; 0 skips it (default 20000)",
    )
    parser.add_argument("--no-install", action="store_true", help=f"do not pip install {OPENLLMETRY} when missing")
    parser.add_argument("--json", metavar="PATH", help="also write the figures (per run too) to this JSON file")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="one more agent-tracer run timing its capture functions inside the loop",
    )
    parser.add_argument("--worker", choices=(*ALL_MODES, "write"), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.worker:
        if args.worker == "write":
            result = run_write_worker(args.base_url, args.write_calls, args.repeats)
        else:
            try:
                result = run_worker(args.worker, args.base_url, args.calls, args.warmup, args.stream, args.breakdown)
            except Exception as exc:  # reported in the table as this mode's result, not a crash of the bench
                result = {"mode": args.worker, "error": f"{type(exc).__name__}: {exc}"}
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(ALL_MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    why_not: dict[str, str] = {}
    if "openllmetry" in modes:
        reason = ensure_openllmetry(not args.no_install)
        if reason:
            why_not["openllmetry"] = reason
            modes.remove("openllmetry")
    started = dt.datetime.now(dt.timezone.utc)
    kind = "streamed" if args.stream else "plain"
    print(
        f"capture overhead: {args.calls} {kind} calls per run (+{args.warmup} warm-up), "
        f"{args.repeats} runs per mode in rotation, upstream {args.server}",
        file=sys.stderr,
    )
    table, summary = summarize_latency(run_latency(modes, args), args.calls, why_not)
    breakdown = None
    if args.breakdown:
        print("  breakdown: one more agent-tracer run with timers …", file=sys.stderr, flush=True)
        worker_args = ["--calls", str(args.calls), "--warmup", str(args.warmup)] + (["--stream"] if args.stream else [])
        breakdown = _run_child(["--worker", "agent-tracer", "--breakdown", *worker_args], args.server)
    write = None
    if args.write_calls > 0:
        print(f"  write throughput: {args.write_calls} LLM calls into SQLite …", file=sys.stderr, flush=True)
        write_args = ["--worker", "write", "--write-calls", str(args.write_calls), "--repeats", str(args.repeats)]
        write = _run_child(write_args, "subprocess")
    header = f"\nCapture overhead, {kind} chat.completions.create calls (upstream: {args.server})"
    command = " ".join(["python bench/capture_overhead.py", *(sys.argv[1:] if argv is None else argv)])
    print(report(summary, table, write, why_not, header, command, started, breakdown))
    if args.json:
        figures = {mode: {k: v for k, v in s.items() if k != "runs"} for mode, s in summary.items()}
        Path(args.json).write_text(json.dumps({"latency": figures, "write": write, "not_run": why_not}, indent=2))


if __name__ == "__main__":
    main()
