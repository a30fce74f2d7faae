"""Proxy overhead: what `agent-tracer proxy` adds to a model call, against LiteLLM's proxy (issue 3).

    python bench/proxy_overhead.py [--calls 1500] [--stream-calls 500] [--duration 10] [--repeats 3]

Targets, each answering `POST /v1/chat/completions` in front of its own fake upstream:

    direct         the loopback fake upstream itself (`agent_tracer.testing.upstream.FakeUpstream`)
    agent-tracer   `python -m agent_tracer.cli proxy` (`ProxyProcess`), recording every call into a
                   fresh SQLite file: one uvicorn process, plus its writer process
    litellm        `litellm --config <tmp>/litellm.yaml --num_workers 1` from a venv outside the
                   repository (default ~/.cache/agent-tracer-bench/litellm-venv, created with pip
                   unless --no-install): model `gpt-test` → `openai/gpt-test` at the upstream; no
                   database, callbacks, retries, telemetry, cost-map download or master key (no auth,
                   like agent-tracer's default); `LITELLM_ENV` and `litellm_config()` are the whole
                   set-up, each setting taken from LiteLLM's source

`--workers N` gives both proxies N server processes; the default, 1, pits one event loop against one.

Method. A round runs each target with a fresh upstream process and a fresh target process through
the three phases below, then stops both; `--repeats` rounds rotate the targets (direct, agent-tracer,
litellm, direct, …) so that drift of the machine hits them alike. A figure is the median of the
rounds' figures; "added" is the target's minus direct's; ratios are agent-tracer's over LiteLLM's.
The request is one agent step (bench/agent_call.py: 2.1 KB of JSON with a system prompt, a question,
an earlier tool call and its result, two tools; model `gpt-test`), the same bytes to every target but
for the Host header; the upstream answers it with text whether or not a proxy forwards the
`x-fake-scenario` header (LiteLLM does not). Every answer is checked, so a proxy that fails fast
cannot look fast: a 200 with exactly the upstream's own text (streams: the deltas joined, then
[DONE]); under load, a 200 whose body holds the text's first 40 characters.

1. Latency: `--warmup`, then `--calls` timed non-streamed calls one after another on a kept-alive
   connection from a raw-socket HTTP/1.1 client (a few µs a call, alike for every target), from
   sending the request to the answer's last byte (`perf_counter_ns`): p50, p99, mean.
2. Streams: `--stream-calls` calls with `"stream": true`: time to first token (the first SSE event
   with non-empty delta content is in) and to the stream's end (the chunked terminator).
3. Throughput: `--connections` (64) kept-alive connections for `--duration` seconds after 2 s of the
   same load: checked 200s per second, latency under load, and the CPU time of the target's
   processes (children included) per request. The load generator is `wrk` (C; a Lua script posts
   the body and checks each answer) when on PATH (`apt-get install wrk`), else an asyncio client in
   this process, which on two cores may itself be the limit; the output names it. Direct's figure is
   the Python fake upstream's ceiling: no proxy in front of it can beat it.

Recording every call. After each agent-tracer round the proxy gets SIGINT (its shutdown writes what
is queued) and its `llm_calls` rows are counted: every 200 a client got needs an `ok` row, and every
request that reached the upstream (counted there) a row. Requests in flight when wrk stops (up to one
per connection) add rows too, `incomplete` when the proxy saw the client leave.

The upstream is this script's hidden `--serve-upstream` mode: `FakeUpstream` with its request log
replaced by a counter, so the tens of thousands of requests under load neither grow its memory nor
slow its garbage collections (which would penalise the faster targets). Nothing is pinned to a core:
on two cores the client, the upstream, the proxy and its writer share them. Every figure printed
comes from this run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file from a checkout: import the checkout's agent_tracer
    sys.path.insert(0, str(ROOT))

from proxy_clients import (  # noqa: E402 (beside this script)
    BODY,
    MODEL,
    STREAM_BODY,
    Connection,
    answer_text,
    load_asyncio,
    load_wrk,
    percentile,
    request_bytes,
    sequential,
)

TARGETS = ("direct", "agent-tracer", "litellm")
LITELLM_VENV = Path.home() / ".cache" / "agent-tracer-bench" / "litellm-venv"
LITELLM_INSTALL = f"{sys.executable} -m venv {LITELLM_VENV} && {LITELLM_VENV}/bin/pip install 'litellm[proxy]'"
WARMUP_LOAD_S = 2.0


# ------------------------------------------------------------------------------------------------
# Processes: the upstream and the targets


def serve_upstream() -> None:
    """`--serve-upstream`: FakeUpstream with a counter for its request log; prints its URL, and on
    SIGTERM the number of requests it received."""
    from agent_tracer.testing.upstream import FakeUpstream

    upstream, counter, stop = FakeUpstream(), itertools.count(), threading.Event()
    upstream._record = lambda request: next(counter)  # type: ignore[method-assign]
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(upstream.start().url, flush=True)
    stop.wait()
    upstream.stop()
    print(f"COUNT {next(counter)}", flush=True)


class Upstream:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-upstream"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError(f"the fake upstream did not start (it printed {self.url!r})")
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> int:
        """The number of requests it received."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        return next((int(line.split()[1]) for line in out.splitlines() if line.startswith("COUNT ")), -1)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) so far of a process and its descendants (Linux; elsewhere 0), so
    that agent-tracer's writer process and uvicorn's workers count as their proxy's."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK") + sum(tree_cpu_s(int(c)) for c in children)


class Target:
    """The upstream itself; subclasses put a proxy in front. `stop()` returns what it recorded."""

    def __init__(self, upstream: Upstream, tmp: Path, args: argparse.Namespace) -> None:
        self.port, self.pid = upstream.port, upstream.proc.pid

    def stop(self) -> dict[str, Any]:
        return {}


class AgentTracerTarget(Target):
    def __init__(self, upstream: Upstream, tmp: Path, args: argparse.Namespace) -> None:
        from agent_tracer.proxy.process import ProxyProcess

        self.db = tmp / "proxy.db"
        self.proxy = ProxyProcess(upstream.url, self.db, "--workers", str(args.workers))
        self.port, self.pid = self.proxy.port, self.proxy.process.pid

    def stop(self) -> dict[str, Any]:
        output = self.proxy.stop(signal.SIGINT, timeout=120)
        if not self.proxy.stopped_cleanly:
            raise RuntimeError(f"the proxy did not stop cleanly ({self.proxy.process.returncode}): {output[-500:]}")
        with sqlite3.connect(self.db) as conn:
            return {"rows": dict(conn.execute("SELECT status, count(*) FROM llm_calls GROUP BY status").fetchall())}


LITELLM_ENV = {
    "LITELLM_LOG": "ERROR",  # proxy_cli.py: uvicorn's log level (so no access log), and LiteLLM's loggers
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # get_model_cost_map.py: the bundled map, no download at start
    "LITELLM_TELEMETRY_DISABLED": "true",  # proxy/telemetry/settings.py: the veto
    "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",  # start without a master key: no auth
    "DISABLE_ADMIN_UI": "True",
}
LITELLM_UNSET = ("DATABASE_URL", "DIRECT_URL", "LITELLM_MASTER_KEY", "REDIS_HOST", "REDIS_URL")
"""Removed from LiteLLM's environment whatever the caller's shell holds: no database, cache or key."""


def litellm_config(api_base: str) -> str:
    """No callbacks (so no logging integrations), no retries, no spend or error logs, no health checks."""
    return f"""\
model_list:
  - model_name: {MODEL}
    litellm_params: {{model: openai/{MODEL}, api_base: "{api_base}", api_key: sk-fake}}
litellm_settings: {{num_retries: 0, callbacks: [], success_callback: [], failure_callback: [],
                   turn_off_message_logging: true}}
router_settings: {{num_retries: 0}}
general_settings: {{disable_spend_logs: true, disable_error_logs: true, background_health_checks: false}}
"""


class LiteLLMTarget(Target):
    def __init__(self, upstream: Upstream, tmp: Path, args: argparse.Namespace) -> None:
        from agent_tracer.loopback import free_port

        self.port, config, log = free_port(), tmp / "litellm.yaml", tmp / "litellm.log"
        config.write_text(litellm_config(upstream.url + "/v1"))
        command = [
            args.litellm_bin,
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--num_workers",
            str(args.workers),
        ]
        env = {**{k: v for k, v in os.environ.items() if k not in LITELLM_UNSET}, **LITELLM_ENV}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
        self.pid, deadline = self.proc.pid, time.monotonic() + 180
        while not self._alive():  # LiteLLM takes seconds to import and start
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"LiteLLM did not start: {log.read_text(errors='replace')[-800:]}")
            time.sleep(0.2)

    def _alive(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"GET /health/liveliness HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stop(self) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return {}


def ensure_litellm(args: argparse.Namespace) -> str | None:
    """None when `args.litellm_bin` can run (the default venv created if missing and allowed), else why not."""
    if args.litellm_bin is None:
        args.litellm_bin = str(LITELLM_VENV / "bin" / "litellm")
        if not Path(args.litellm_bin).exists():
            if args.no_install:
                return f"no {args.litellm_bin} (--no-install); create it with: {LITELLM_INSTALL}"
            print(f"creating LiteLLM's venv, once (minutes): {LITELLM_INSTALL}", file=sys.stderr, flush=True)
            proc = subprocess.run(["bash", "-c", LITELLM_INSTALL], capture_output=True, text=True)
            if proc.returncode != 0:
                return f"installing LiteLLM failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    return None if os.access(args.litellm_bin, os.X_OK) else f"{args.litellm_bin} is not an executable"


def versions(python: str, dists: tuple[str, ...]) -> str:
    """Versions of `dists` in an interpreter (LiteLLM's is another one), and the event loop and HTTP
    parser its uvicorn picks: uvloop and httptools when importable there."""
    code = (
        "import importlib.metadata as m, importlib.util as u, sys\n"
        "def v(d):\n try: return d + ' ' + m.version(d)\n except Exception: return d + ' missing'\n"
        "print(', '.join(map(v, sys.argv[1:])) + '; uvicorn with ' + ('uvloop' if u.find_spec('uvloop') "
        "else 'asyncio') + ' and ' + ('httptools' if u.find_spec('httptools') else 'h11'))"
    )
    proc = subprocess.run([python, "-c", code, *dists], capture_output=True, text=True)
    return proc.stdout.strip() or f"unknown ({proc.stderr.strip()[-200:]})"


def checkout() -> str:
    """The commit of the agent-tracer code measured, and whether it had local changes: the proxy
    process imports the working tree, so an edit made during a run shows here."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "agent_tracer", "integrations")
    return f"{head}{' + uncommitted changes' if changed else ''}" if head else "no git checkout"


# ------------------------------------------------------------------------------------------------
# Rounds


def run_target(name: str, args: argparse.Namespace, expected: str, marker: str) -> dict[str, Any]:
    """One round of one target: fresh upstream and target processes, the three phases, the stop."""
    cls = {"direct": Target, "agent-tracer": AgentTracerTarget, "litellm": LiteLLMTarget}[name]
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp_name:
        tmp, upstream, target = Path(tmp_name), Upstream(), None
        try:
            target = cls(upstream, tmp, args)
            result: dict[str, Any] = {
                "plain": sequential(target.port, False, args.calls, args.warmup, expected),
                "stream": sequential(target.port, True, args.stream_calls, args.warmup, expected),
            }
            if args.wrk:
                load = lambda s: load_wrk(target.port, s, args, marker, tmp)  # noqa: E731
            else:
                load = lambda s: load_asyncio(target.port, s, args, marker)  # noqa: E731
            result["load_warmup"] = load(WARMUP_LOAD_S)
            cpu = tree_cpu_s(target.pid)
            result["load"] = load(args.duration)
            result["load"]["cpu_s"] = tree_cpu_s(target.pid) - cpu
            result.update(target.stop())
            target = None
        except Exception as exc:  # this round of this target failed; the bench goes on
            result = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            if target is not None:
                with contextlib.suppress(Exception):
                    target.stop()
            result["upstream_received"] = upstream.stop()
    return result


def probe_expected() -> str:
    """The text the upstream answers the benchmark's request with, plain and streamed alike."""
    upstream = Upstream()
    try:
        conn = Connection(upstream.port)
        plain = answer_text(conn.call(request_bytes(upstream.port, BODY))[0])
        streamed = answer_text(conn.call(request_bytes(upstream.port, STREAM_BODY), sse=True)[0])
        conn.sock.close()
    finally:
        upstream.stop()
    if not plain or plain != streamed:
        raise RuntimeError(f"the fake upstream's answers differ: {plain!r} vs {streamed!r}")
    return plain


# ------------------------------------------------------------------------------------------------
# Figures and the report


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per target, each figure's value in every good round ("per_round") and their median."""
    summary: dict[str, dict[str, Any]] = {}
    for name, results in runs.items():
        good = [r for r in results if "error" not in r]
        per_round: dict[str, list[float]] = {}
        for r in good:
            for label, values in (
                ("plain", r["plain"]["ns"]),
                ("ttft", r["stream"]["first_ns"]),
                ("end", r["stream"]["ns"]),
            ):
                values = sorted(values)
                per_round.setdefault(f"{label} p50", []).append(percentile(values, 50))
                per_round.setdefault(f"{label} p99", []).append(percentile(values, 99))
                per_round.setdefault(f"{label} mean", []).append(statistics.mean(values) / 1000)
            load = r["load"]
            per_round.setdefault("rps", []).append(load["ok"] / load["duration_s"])
            per_round.setdefault("load p50", []).append(load["p50_us"])
            per_round.setdefault("load p99", []).append(load["p99_us"])
            per_round.setdefault("cpu", []).append(1e6 * load["cpu_s"] / max(1, load["requests"]))
        if good:
            summary[name] = {k: statistics.median(v) for k, v in per_round.items()}
            summary[name].update(per_round=per_round, runs=good)
    return summary


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Plain text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def tables(summary: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    names, direct = [n for n in TARGETS if n in summary], summary.get("direct")

    def cells(n: str, keys: tuple[str, ...], added: tuple[str, ...]) -> list[str]:
        s = summary[n]
        return [f"{s[k]:,.0f}" for k in keys] + [
            f"{s[k] - direct[k]:+,.0f}" if direct and n != "direct" else "-" for k in added
        ]

    def failed(n: str, *phases: str) -> str:
        return str(sum(r[p]["bad"] + r[p].get("socket_errors", 0) for r in summary[n]["runs"] for p in phases))

    def each(n: str, key: str) -> str:
        return " ".join(f"{v:,.0f}" for v in summary[n]["per_round"][key])

    runs = {n: len(summary[n]["runs"]) for n in names}
    plain = [
        [
            n,
            f"{args.calls}×{runs[n]}",
            *cells(n, ("plain p50", "plain p99", "plain mean"), ("plain p50", "plain p99", "plain mean")),
            failed(n, "plain"),
            each(n, "plain p50"),
        ]
        for n in names
    ]
    stream = [
        [
            n,
            f"{args.stream_calls}×{runs[n]}",
            *cells(n, ("ttft p50", "ttft p99", "end p50", "end p99"), ("ttft p50", "end p50")),
            failed(n, "stream"),
        ]
        for n in names
    ]
    load = [
        [
            n,
            f"{args.duration:g} s×{runs[n]}",
            *cells(n, ("rps",), ()),
            f"{summary[n]['rps'] / direct['rps']:.2f}" if direct else "-",
            *cells(n, ("load p50", "load p99", "cpu"), ()),
            failed(n, "load", "load_warmup"),
            each(n, "rps"),
        ]
        for n in names
    ]
    return [
        "Non-streamed calls, one after another on a kept-alive connection (µs):",
        _table(
            [
                "target",
                "calls",
                "p50",
                "p99",
                "mean",
                "added p50",
                "added p99",
                "added mean",
                "failed",
                "p50 of each round",
            ],
            plain,
        ),
        "",
        "Streamed calls (µs): time to first token (ttft: first SSE event with content) and to the stream's end:",
        _table(
            [
                "target",
                "calls",
                "ttft p50",
                "ttft p99",
                "end p50",
                "end p99",
                "added ttft p50",
                "added end p50",
                "failed",
            ],
            stream,
        ),
        "",
        f"Throughput at {args.connections} connections, non-streamed ({args.load_name}): checked 200s per second; "
        "latency under load (µs); CPU µs per request of the target's processes (for direct: the upstream's):",
        _table(
            [
                "target",
                "duration",
                "requests/s",
                "of direct",
                "p50",
                "p99",
                "CPU µs/req",
                "failed",
                "requests/s of each round",
            ],
            load,
        ),
    ]


def record_lines(runs: list[dict[str, Any]]) -> tuple[list[str], bool | None]:
    """agent-tracer's rows in llm_calls, per round, against what its clients and the upstream saw."""
    lines, all_good = [], None
    for i, r in enumerate(runs, 1):
        if "error" in r:
            continue
        got_200 = r["plain"]["ok"] + r["stream"]["ok"] + r["load_warmup"]["ok"] + r["load"]["ok"]
        rows = r["rows"]
        total, ok = sum(rows.values()), rows.get("ok", 0)
        good = ok >= got_200 and total >= r["upstream_received"]
        all_good = good if all_good is None else all_good and good
        others = ", ".join(f"{s} {c:,}" for s, c in rows.items() if s != "ok") or "none"
        lines.append(
            f"  round {i}: clients got {got_200:,} checked 200s, the upstream received "
            f"{r['upstream_received']:,}; llm_calls rows {total:,} (ok {ok:,}; others: {others}): "
            f"{'every call recorded' if good else 'CALLS MISSING'}"
        )
    return lines, all_good


def goal_lines(summary: dict[str, dict[str, Any]], why_not: dict[str, str], recorded: bool | None) -> list[str]:
    at, lt, direct = summary.get("agent-tracer"), summary.get("litellm"), summary.get("direct")
    out = []
    if at and direct:
        added = {k: at[k] - direct[k] for k in ("plain p50", "ttft p50")}
        out.append(
            f"  at most 1 ms added at p50: {'met' if added['plain p50'] <= 1000 else 'NOT met'} "
            f"({added['plain p50']:+,.0f} µs; first token of a stream {added['ttft p50']:+,.0f} µs)"
        )
        if lt:
            lt_added = {k: lt[k] - direct[k] for k in added}
            ratios = [f"{added[k] / lt_added[k]:.2f}" if lt_added[k] > 0 else "n/a" for k in added]
            out.append(
                f"  added p50, agent-tracer / LiteLLM: {ratios[0]} ({added['plain p50']:+,.0f} vs "
                f"{lt_added['plain p50']:+,.0f} µs); first token: {ratios[1]} ({added['ttft p50']:+,.0f} "
                f"vs {lt_added['ttft p50']:+,.0f} µs)"
            )
    if at and lt:
        ratio = at["rps"] / lt["rps"]
        out.append(
            f"  at least 2× LiteLLM's requests/s: {'met' if ratio >= 2 else 'NOT met'} "
            f"({ratio:.2f}×: {at['rps']:,.0f} vs {lt['rps']:,.0f}/s)"
        )
    elif at:
        out.append(f"  at least 2× LiteLLM's requests/s: not measured ({why_not.get('litellm', 'not run')})")
    if recorded is not None:
        out.append(f"  while recording every call: {'met' if recorded else 'NOT met'}")
    return out


def report(
    runs: dict[str, list[dict[str, Any]]],
    args: argparse.Namespace,
    why_not: dict[str, str],
    started: dt.datetime,
    command: str,
    code: str,
) -> str:
    summary = summarize(runs)
    out = [
        "",
        f"Proxy overhead: {args.repeats} round(s), targets in rotation, fresh upstream and target "
        f"processes each time; figures are medians of the rounds",
        "",
    ]
    out += tables(summary, args) if summary else ["no target completed a round"]
    out.append("")
    for name, results in runs.items():
        out += [f"{name}, round {i}: FAILED: {r['error']}" for i, r in enumerate(results, 1) if "error" in r]
    out += [f"{name}: not measured: {reason}" for name, reason in why_not.items()]
    lines, recorded = record_lines(runs.get("agent-tracer", []))
    if lines:
        out += ["agent-tracer's records (counted after a graceful stop):", *lines]
    out += ["", "goals:", *goal_lines(summary, why_not, recorded), ""]
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
    now = checkout()
    out += [
        f"machine: {cpu or 'unknown CPU'}, {os.cpu_count()} cores, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end; {platform.system()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"agent-tracer's proxy: commit {code if code == now else f'{code} at the start, {now} at the end'}; "
        f"{versions(sys.executable, ('uvicorn', 'starlette', 'aiohttp', 'httpx'))}",
    ]
    if "litellm" in runs:
        python = str(Path(args.litellm_bin).with_name("python"))
        out += [
            f"LiteLLM's proxy: {versions(python, ('litellm', 'uvicorn', 'fastapi', 'aiohttp', 'httpx'))}",
            f"LiteLLM started as: {' '.join(f'{k}={v}' for k, v in LITELLM_ENV.items())} {args.litellm_bin} "
            f"--config <tmp>/litellm.yaml --host 127.0.0.1 --port <free> --num_workers {args.workers}",
        ]
    out += [f"load generator: {args.load_name}", f"date: {started:%Y-%m-%d %H:%M} UTC", f"command: {command}"]
    if args.json:
        figures = {n: {k: v for k, v in s.items() if k != "runs"} for n, s in summary.items()}
        Path(args.json).write_text(json.dumps({"summary": figures, "not_run": why_not}, indent=2))
    return "\n".join(out)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Latency and throughput added by agent-tracer's proxy, against the "
        "upstream directly and LiteLLM's proxy, and whether it records every call."
    )
    p.add_argument("--calls", type=int, default=1500, help="timed non-streamed calls per round (default 1500)")
    p.add_argument("--stream-calls", type=int, default=500, help="timed streamed calls per round (default 500)")
    p.add_argument("--warmup", type=int, default=100, help="untimed calls before each of those (default 100)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per round (default 10)")
    p.add_argument("--connections", type=int, default=64, help="concurrent connections of the load (default 64)")
    p.add_argument("--repeats", type=int, default=3, help="rounds, the targets in rotation (default 3)")
    p.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, from {','.join(TARGETS)}")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes per proxy: agent-tracer's --workers, LiteLLM's --num_workers (default 1)",
    )
    p.add_argument(
        "--litellm-bin",
        metavar="PATH",
        help=f"the `litellm` executable (default {LITELLM_VENV}/bin/litellm, created when missing)",
    )
    p.add_argument("--no-install", action="store_true", help="do not create LiteLLM's venv when it is missing")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk's threads (default 1: one C thread is plenty)")
    p.add_argument("--python-load", action="store_true", help="the asyncio load generator even when wrk is there")
    p.add_argument("--json", metavar="PATH", help="also write the figures, per round too, to this JSON file")
    p.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.serve_upstream:
        return serve_upstream()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if set(targets) - set(TARGETS):
        parser.error(f"unknown targets: {', '.join(sorted(set(targets) - set(TARGETS)))}")
    why_not: dict[str, str] = {}
    if "litellm" in targets and (reason := ensure_litellm(args)):
        why_not["litellm"] = reason
        targets.remove("litellm")
    args.wrk = bool(shutil.which("wrk")) and not args.python_load
    if args.wrk:
        first = (subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines() or ["wrk"])[0]
        args.load_name = f"{first.split(' [')[0]}, {args.wrk_threads} thread(s)"
    else:
        args.load_name = "asyncio client in this process" + ("" if shutil.which("wrk") else " (wrk not found)")
    started, code = dt.datetime.now(dt.timezone.utc), checkout()
    expected = probe_expected()
    marker = json.dumps(expected)[1:41]  # how the answer's first 40 characters read inside any JSON body
    print(f"proxy overhead: {', '.join(targets)}; {args.repeats} round(s); load: {args.load_name}", file=sys.stderr)
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    for rnd in range(args.repeats):
        for name in targets:
            t0 = time.perf_counter()
            r = run_target(name, args, expected, marker)
            runs[name].append(r)
            status = r.get("error") or (
                f"p50 {percentile(sorted(r['plain']['ns']), 50):,.0f} µs, first token p50 "
                f"{percentile(sorted(r['stream']['first_ns']), 50):,.0f} µs, "
                f"{r['load']['ok'] / r['load']['duration_s']:,.0f} requests/s"
            )
            print(
                f"  round {rnd + 1}/{args.repeats} {name:<13} {time.perf_counter() - t0:5.1f} s  {status}",
                file=sys.stderr,
                flush=True,
            )
    command = " ".join(["python bench/proxy_overhead.py", *(sys.argv[1:] if argv is None else argv)])
    print(report(runs, args, why_not, started, command, code))


if __name__ == "__main__":
    main()
