"""Soak: a long load through the proxy, every call checked and counted, the processes' memory watched
(issue 24).

    python bench/soak.py [--calls 100000] [--workers 4] [--db URL] [--connections 32] [--stream-share 0.5]
    python bench/soak.py --fault kill-writer | stop-postgres [--outage-s 60] [--db postgresql+psycopg://…]

The proxy (`agent-tracer proxy --workers N`, recording into `--db`: a fresh SQLite file by default,
or a PostgreSQL URL, whose tables are emptied first) in front of the loopback fake model (its own
process, this repo's `proxy_overhead.py --serve-upstream`). `--connections` asyncio clients in this
process send `--calls` Chat Completions requests, plain and streamed mixed (`--stream-share`), each
with its own `X-Agent-Trace-Id: soak-<n>` so every call is one run of its own, and check each
answer (200, the fake's text). The load is cut into tenths; after each, the requests/s of that
tenth and the resident memory (VmRSS) of every process of the proxy (its supervisor, each worker,
each worker's writer process) are taken.

At the end the proxy is stopped (SIGINT: what is queued is written) and the store is read: every
call must be recorded exactly once (as many `llm_calls` rows as calls, one run each, no run twice),
and none lost without being counted (`agent_tracer_spans_total{stage="dropped"}` from /metrics
before the stop). Figures: requests/s of the first and the last tenth, each process's memory at the
first and the last tenth (after the first tenth: start-up and warm-up are left out of "start"), and
the records check.

`--fault` does one harm while the load runs, at the start of its fourth tenth: `kill-writer`
SIGKILLs one worker's writer process (the worker writes in-process from then on, the batches the
child had not acknowledged first); `stop-postgres` stops the PostgreSQL cluster (`pg_ctlcluster
… stop -m fast`, as root) for `--outage-s` seconds and starts it again (calls are spilled, then
loaded back by the writers). The report then adds the spans spilled, the records loaded back and
the spans dropped, from /metrics; the records check says whether any call was lost. Every figure
printed comes from this run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_clients import BODY, STREAM_BODY, Response, answer_text, request_bytes  # noqa: E402
from proxy_overhead import Upstream, probe_expected  # noqa: E402

TENTHS = 10


def request(port: int, n: int, stream: bool) -> bytes:
    """One call of the soak, its own run."""
    return request_bytes(port, STREAM_BODY if stream else BODY, f"X-Agent-Trace-Id: soak-{n}\r\n")


def rss_tree(pid: int) -> dict[int, tuple[str, int]]:
    """PID → (what it runs, resident kB) for a process and all its descendants (Linux)."""
    found: dict[int, tuple[str, int]] = {}
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    role = (
        "writer"
        if "writer_process" in cmdline
        else "tracker"  # multiprocessing's resource tracker, started with uvicorn's workers
        if "resource_tracker" in cmdline
        else "proxy"
        if " proxy " in cmdline
        else "worker"
    )
    found[pid] = (role, rss)
    for child in children:
        found.update(rss_tree(int(child)))
    return found


async def load(port: int, numbers: range, connections: int, stream_share: float, expected: str) -> dict[str, int]:
    counts = {"ok": 0, "bad": 0, "socket_errors": 0}
    queue = iter(numbers)
    every = max(int(round(1 / stream_share)), 1) if stream_share > 0 else 0

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in queue:
            stream = bool(every) and n % every == 0
            response = Response(sse=stream)
            writer.write(request(port, n, stream))
            while not response.done:
                data = await reader.read(262144)
                if not data:
                    counts["socket_errors"] += 1
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    break
                response.feed(data)
            else:
                good = response.status == 200 and answer_text(response) == expected
                counts["ok" if good else "bad"] += 1
        writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return counts


def recorded(db: str, calls: int) -> dict[str, int]:
    from sqlalchemy import text

    from agent_tracer.store import TraceStore

    with TraceStore(db) as store, store.engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*), count(DISTINCT trace_id) FROM llm_calls")).one()
        ok = conn.execute(text("SELECT count(*) FROM llm_calls WHERE status = 'ok'")).scalar_one()
        runs = conn.execute(text("SELECT count(*) FROM traces")).scalar_one()
    return {"calls": calls, "rows": rows[0], "runs_with_calls": rows[1], "ok_rows": ok, "traces": runs}


def empty(db: str) -> None:
    from sqlalchemy import text

    from agent_tracer.store import TraceStore

    with TraceStore(db) as store, store.engine.begin() as conn:
        for table in ("llm_calls", "agent_runs", "tool_executions", "feedback", "unmapped_spans", "traces"):
            conn.execute(text(f"DELETE FROM {table}"))


def harm(kind: str, proxy_pid: int, outage_s: float) -> str:
    """Do the fault `kind`; returns what was done, for the report."""
    import os
    import signal
    import subprocess

    if kind == "kill-writer":
        writers = [pid for pid, (role, _) in rss_tree(proxy_pid).items() if role == "writer"]
        os.kill(writers[0], signal.SIGKILL)
        return f"SIGKILL to writer process {writers[0]} (of {len(writers)})"
    version = sorted(os.listdir("/usr/lib/postgresql"), key=float)[-1]
    subprocess.run(["pg_ctlcluster", version, "main", "stop", "-m", "fast"], check=True)
    started = time.monotonic()
    time.sleep(outage_s)
    subprocess.run(["pg_ctlcluster", version, "main", "start"], check=True)
    return f"PostgreSQL {version} stopped for {time.monotonic() - started:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4, help="the proxy's --workers")
    parser.add_argument("--db", help="store URL (default: a fresh SQLite file); a PostgreSQL one is emptied first")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--stream-share", type=float, default=0.5, help="share of streamed calls (0 to 1)")
    parser.add_argument("--fault", choices=("kill-writer", "stop-postgres"), help="a harm done during the load")
    parser.add_argument("--outage-s", type=float, default=60.0, help="how long --fault stop-postgres lasts")
    args = parser.parse_args()
    if args.fault == "stop-postgres" and not (args.db or "").startswith("postgresql"):
        raise SystemExit("--fault stop-postgres needs --db postgresql…")

    from agent_tracer.proxy.process import ProxyProcess

    expected = probe_expected()
    upstream = Upstream()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp_name:
        db = args.db or f"sqlite:///{Path(tmp_name) / 'soak.db'}"
        if args.db:
            empty(db)
        spill = Path(tmp_name) / "spill.jsonl"
        env = {"AGENT_TRACER_SPILL": str(spill)}
        proxy = ProxyProcess(upstream.url, db, "--workers", str(args.workers), "--no-ui", env=env)
        tenths, memory, totals = [], [], {"ok": 0, "bad": 0, "socket_errors": 0}
        done: list[str] = []
        fault = None
        try:
            size = args.calls // TENTHS
            for tenth in range(TENTHS):
                numbers = range(tenth * size, (tenth + 1) * size if tenth < TENTHS - 1 else args.calls)
                if args.fault and tenth == 3:
                    import threading

                    fault = threading.Thread(
                        target=lambda: done.append(harm(args.fault, proxy.process.pid, args.outage_s)), daemon=True
                    )
                    fault.start()
                started = time.perf_counter()
                counts = asyncio.run(load(proxy.port, numbers, args.connections, args.stream_share, expected))
                tenths.append(len(numbers) / (time.perf_counter() - started))
                memory.append(rss_tree(proxy.process.pid))
                for key in totals:
                    totals[key] += counts[key]
                print(f"tenth {tenth + 1}: {tenths[-1]:,.0f} requests/s, {counts}", file=sys.stderr, flush=True)
            if fault is not None:
                fault.join()
            import httpx

            deadline = time.monotonic() + 120  # what was spilled is loaded back at the next write
            while spill.exists() and spill.stat().st_size and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(2)  # the workers share their counts for /metrics once a second
            metrics = httpx.get(proxy.url + "/metrics").text
        finally:
            proxy.stop()
        check = recorded(db, args.calls)
    upstream_received = upstream.stop()

    def counted(stage: str) -> float:
        name = f'agent_tracer_spans_total{{stage="{stage}"}}'
        return next((float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name)), -1.0)

    dropped = counted("dropped")

    print(f"\nSoak: {args.calls:,} calls ({args.stream_share:.0%} streamed) through `proxy --workers {args.workers}`"
          f" into {'PostgreSQL' if args.db and args.db.startswith('postgresql') else 'SQLite'}, "
          f"{args.connections} connections")  # fmt: skip
    print(f"answers: {totals['ok']:,} ok, {totals['bad']:,} bad, {totals['socket_errors']:,} socket errors; "
          f"the upstream received {upstream_received:,}")  # fmt: skip
    print(f"requests/s: first tenth {tenths[0]:,.0f}, last tenth {tenths[-1]:,.0f}")
    print(f"store: {check}; dropped (counted): {dropped:g}")
    if args.fault:
        print(f"fault: {done[0] if done else 'not done'}; spans spilled {counted('spilled'):g}, "
              f"records loaded back {counted('reloaded'):g}, spans dropped {dropped:g}")  # fmt: skip
    print("resident memory, MB, at the end of the first and of the last tenth:")
    first, last = memory[0], memory[-1]
    for pid in sorted(set(first) | set(last)):
        role = (first.get(pid) or last.get(pid))[0]
        start = first.get(pid, ("", 0))[1] / 1024
        end = last.get(pid, ("", 0))[1] / 1024
        print(f"  {role:<7} {pid:>7}  {start:7.1f} → {end:7.1f}")
    once = check["rows"] == args.calls == check["runs_with_calls"] == check["ok_rows"]
    print(f"every call recorded exactly once: {'yes' if once else 'NO'}")


if __name__ == "__main__":
    main()
