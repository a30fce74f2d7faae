"""Soak: a long load through the proxy, every call checked and counted, the processes' memory watched
(issue 24).

    python bench/soak.py [--calls 100000] [--workers 4] [--db URL] [--connections 32] [--stream-share 0.5]
    python bench/soak.py --fault kill-writer | stop-postgres [--outage-s 60] [--db postgresql+psycopg://…]
    python bench/soak.py --fault disk-full [--disk-mb 24]         (as root: mounts a small tmpfs)
    python bench/soak.py --fault sigterm | kill-proxy
    python bench/soak.py --through decorator [--calls 1000000] [--threads 8]

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
the spans dropped, from /metrics; the records check says whether any call was lost.

`disk-full` puts the SQLite store on a tmpfs of `--disk-mb` MB mounted for the run (the spill file
stays on the temporary folder's filesystem, as a spill path on another disk would): the store
fills during the load, its writes fail and are spilled; after the load the filesystem is grown
(`mount -o remount,size=…`, what an operator does) and the spill is loaded back. `sigterm` sends
SIGTERM to the proxy (what a deployment's stop does) and `kill-proxy` SIGKILLs it and its workers
(an OOM kill, a node lost), both mid-load with half of the calls streamed: the clients' view is
counted (answered, cut mid-answer, refused), and the store is checked against the answers the
clients got whole: with SIGTERM every one of them must be recorded (what was queued is drained
before the exit); with SIGKILL what the dead processes held is lost, and said. No proxy is
started again: the load stops there. Every figure printed comes from this run.

`--through decorator` is the other way in: no proxy; this process runs `--threads` agent threads,
each making its calls with the official `openai` SDK (plain and streamed mixed as above) inside a
`@trace_agent` run of its own, captured by `agent_tracer.init` (its writer process) into a fresh
SQLite file. Requests/s and the memory of this process and of its writer process are taken after
each tenth; at the end every call must be stored exactly once.
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
    rss = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")),
        0,
    )
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


COUNTS = ("ok", "bad", "socket_errors", "refused")


async def load(
    port: int,
    numbers: range,
    connections: int,
    stream_share: float,
    expected: str,
    answered: set[int],
) -> dict[str, int]:
    """Send the calls `numbers`; count whole right answers (their numbers into `answered`), wrong
    ones, answers cut (the connection closed or reset before the answer's end: a new connection
    takes the next call) and calls refused (no proxy listening: the client stops)."""
    counts = dict.fromkeys(COUNTS, 0)
    queue = iter(numbers)
    every = max(int(round(1 / stream_share)), 1) if stream_share > 0 else 0

    async def client() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            counts["refused"] += 1
            return
        for n in queue:
            stream = bool(every) and n % every == 0
            response = Response(sse=stream)
            try:
                writer.write(request(port, n, stream))
                while not response.done:
                    data = await reader.read(262144)
                    if not data:
                        raise ConnectionResetError("closed before the answer's end")
                    response.feed(data)
            except OSError:
                counts["socket_errors"] += 1
                writer.close()
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    counts["refused"] += 1
                    return
                continue
            good = response.status == 200 and answer_text(response) == expected
            counts["ok" if good else "bad"] += 1
            if good:
                answered.add(n)
        writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return counts


def recorded(db: str, calls: int, answered: set[int]) -> dict[str, int]:
    """The store's counts, and how many of the calls answered whole have no row (`missing`)."""
    from sqlalchemy import text

    from agent_tracer.run_ids import trace_id_for
    from agent_tracer.store import TraceStore

    with TraceStore(db) as store, store.engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*), count(DISTINCT trace_id) FROM llm_calls")).one()
        ok = conn.execute(text("SELECT count(*) FROM llm_calls WHERE status = 'ok'")).scalar_one()
        runs = conn.execute(text("SELECT count(*) FROM traces")).scalar_one()
        stored = set(conn.execute(text("SELECT DISTINCT trace_id FROM llm_calls")).scalars())
    missing = sum(1 for n in answered if trace_id_for(f"soak-{n}") not in stored)
    return {
        "calls": calls,
        "rows": rows[0],
        "runs_with_calls": rows[1],
        "ok_rows": ok,
        "traces": runs,
        "answered_missing": missing,
    }


SMALL_DISK_GROWN_MB = 4096
"""What `--fault disk-full` grows the store's filesystem to after the load."""


def mount_small_disk(folder: Path, megabytes: int) -> None:
    import subprocess

    folder.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
        check=True,
    )


def grow_disk(folder: Path) -> None:
    import subprocess

    subprocess.run(["mount", "-o", f"remount,size={SMALL_DISK_GROWN_MB}m", str(folder)], check=True)


def unmount(folder: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(folder)], check=False)


def empty(db: str) -> None:
    from sqlalchemy import text

    from agent_tracer.store import TraceStore

    tables = ("llm_calls", "agent_runs", "tool_executions", "feedback", "unmapped_spans", "traces")
    with TraceStore(db) as store, store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # TRUNCATE, not DELETE: a DELETE leaves the last run's rows dead, and autovacuum then
            # cleans them up during this run's load (it halved a run's rate from its third minute)
            conn.execute(text(f"TRUNCATE {', '.join(tables)}"))
        else:
            for table in tables:
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
    if kind == "sigterm":
        os.kill(proxy_pid, signal.SIGTERM)
        return f"SIGTERM to the proxy {proxy_pid}"
    if kind == "kill-proxy":
        tree = rss_tree(proxy_pid)
        for pid in tree:  # the supervisor, its workers and their writer processes at once
            os.kill(pid, signal.SIGKILL)
        return f"SIGKILL to the proxy and its {len(tree) - 1} child processes"
    if kind == "disk-full":
        return "the store's filesystem filled up during the load"
    version = sorted(os.listdir("/usr/lib/postgresql"), key=float)[-1]
    subprocess.run(["pg_ctlcluster", version, "main", "stop", "-m", "fast"], check=True)
    started = time.monotonic()
    time.sleep(outage_s)
    subprocess.run(["pg_ctlcluster", version, "main", "start"], check=True)
    return f"PostgreSQL {version} stopped for {time.monotonic() - started:.0f} s"


def counted_in(metrics: str, stage: str) -> float:
    """`agent_tracer_spans_total{stage=…}` in a /metrics text (-1: not there)."""
    name = f'agent_tracer_spans_total{{stage="{stage}"}}'
    return next((float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name)), -1.0)


def decorator_soak(calls: int, threads: int, stream_share: float) -> None:
    """`--through decorator`: the SDK's calls, each its own `@trace_agent` run, captured in process."""
    import gc
    import os
    from concurrent.futures import ThreadPoolExecutor

    import openai
    from agent_call import MESSAGES, TOOLS

    import agent_tracer

    expected = probe_expected()
    upstream = Upstream()
    every = max(int(round(1 / stream_share)), 1) if stream_share > 0 else 0
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        db = f"sqlite:///{Path(tmp) / 'soak.db'}"
        agent_tracer.init(db=db, spill_path=str(Path(tmp) / "spill.jsonl"))
        client = openai.OpenAI(
            base_url=f"{upstream.url}/v1", api_key="sk-bench-not-a-real-key", max_retries=0, timeout=60
        )
        headers = {"x-fake-scenario": "text"}

        @agent_tracer.trace_agent(name="soak")
        def run(n: int) -> bool:
            if every and n % every == 0:
                chunks = client.chat.completions.create(
                    model="gpt-test", messages=MESSAGES, tools=TOOLS, stream=True, extra_headers=headers
                )
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            else:
                answer = client.chat.completions.create(
                    model="gpt-test", messages=MESSAGES, tools=TOOLS, extra_headers=headers
                )
                text = answer.choices[0].message.content or ""
            return text == expected

        def rss_kb(pid: int | None) -> int:
            return rss_tree(pid).get(pid, ("", 0))[1] if pid else 0

        tenths, memory, blocks, good = [], [], [], 0
        size = calls // TENTHS
        with ThreadPoolExecutor(threads) as pool:
            for tenth in range(TENTHS):
                numbers = range(tenth * size, (tenth + 1) * size if tenth < TENTHS - 1 else calls)
                started = time.perf_counter()
                good += sum(pool.map(run, numbers, chunksize=64))
                tenths.append(len(numbers) / (time.perf_counter() - started))
                tree = rss_tree(os.getpid())
                writer = next((pid for pid, (role, _) in tree.items() if role == "writer"), None)
                memory.append((rss_kb(os.getpid()), rss_kb(writer)))
                gc.collect()
                blocks.append(sys.getallocatedblocks())  # Python's objects: a leak of ours grows these
                print(f"tenth {tenth + 1}: {tenths[-1]:,.0f} calls/s", file=sys.stderr, flush=True)
        assert agent_tracer.flush(timeout=300)
        stats = agent_tracer.stats()
        agent_tracer.uninstrument()
        check = recorded(db, calls, set())
    upstream_received = upstream.stop()
    print(f"\nSoak: {calls:,} calls ({stream_share:.0%} streamed) through the `openai` SDK in @trace_agent runs, "
          f"{threads} threads, captured into SQLite (the writer process)")  # fmt: skip
    print(f"answers: {good:,} right of {calls:,}; the upstream received {upstream_received:,}")
    print(f"calls/s: first tenth {tenths[0]:,.0f}, last tenth {tenths[-1]:,.0f}")
    print(f"store: {check}; dropped (counted): {stats['dropped']}, spilled {stats['spilled']}")
    print(f"resident memory, MB, end of the first and of the last tenth: this process "
          f"{memory[0][0] / 1024:.1f} → {memory[-1][0] / 1024:.1f}; its writer process "
          f"{memory[0][1] / 1024:.1f} → {memory[-1][1] / 1024:.1f}")  # fmt: skip
    print(
        "  after each tenth, this process / its writer: "
        + " ".join(f"{a / 1024:.0f}/{b / 1024:.0f}" for a, b in memory)
    )
    print("  Python's allocated blocks in this process after each tenth (after a collection), thousands: "
          + " ".join(f"{b / 1000:.0f}" for b in blocks))  # fmt: skip
    once = check["rows"] == calls == check["runs_with_calls"] == check["ok_rows"]
    print(f"every call recorded exactly once: {'yes' if once else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4, help="the proxy's --workers")
    parser.add_argument(
        "--db",
        help="store URL (default: a fresh SQLite file); a PostgreSQL one is emptied first",
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--stream-share",
        type=float,
        default=0.5,
        help="share of streamed calls (0 to 1)",
    )
    parser.add_argument(
        "--fault",
        choices=("kill-writer", "stop-postgres", "disk-full", "sigterm", "kill-proxy"),
        help="a harm done during the load",
    )
    parser.add_argument(
        "--outage-s",
        type=float,
        default=60.0,
        help="how long --fault stop-postgres lasts",
    )
    parser.add_argument(
        "--disk-mb",
        type=int,
        default=24,
        help="the store's filesystem with --fault disk-full",
    )
    parser.add_argument(
        "--through", choices=("proxy", "decorator"), default="proxy", help="the way in (default: the proxy)"
    )
    parser.add_argument("--threads", type=int, default=8, help="agent threads with --through decorator")
    args = parser.parse_args()
    if args.through == "decorator":
        if args.fault or args.db:
            raise SystemExit("--through decorator takes no --fault and no --db (a fresh SQLite file)")
        decorator_soak(args.calls, args.threads, args.stream_share)
        return
    if args.fault == "stop-postgres" and not (args.db or "").startswith("postgresql"):
        raise SystemExit("--fault stop-postgres needs --db postgresql…")
    if args.fault == "disk-full" and args.db:
        raise SystemExit("--fault disk-full puts a SQLite store on a small filesystem: leave out --db")
    stopping = args.fault in ("sigterm", "kill-proxy")

    from agent_tracer.proxy.process import ProxyProcess

    expected = probe_expected()
    upstream = Upstream()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp_name:
        small_disk = Path(tmp_name) / "small-disk"
        if args.fault == "disk-full":
            mount_small_disk(small_disk, args.disk_mb)
        folder = small_disk if args.fault == "disk-full" else Path(tmp_name)
        db = args.db or f"sqlite:///{folder / 'soak.db'}"
        if args.db:
            empty(db)
        spill = Path(tmp_name) / "spill.jsonl"
        env = {"AGENT_TRACER_SPILL": str(spill)}
        proxy = ProxyProcess(upstream.url, db, "--workers", str(args.workers), "--no-ui", env=env)
        tenths, memory, totals = [], [], dict.fromkeys(COUNTS, 0)
        answered: set[int] = set()
        done: list[str] = []
        fault = None
        metrics = ""
        try:
            size = args.calls // TENTHS
            for tenth in range(TENTHS):
                numbers = range(
                    tenth * size,
                    (tenth + 1) * size if tenth < TENTHS - 1 else args.calls,
                )
                if args.fault and tenth == 3:
                    import threading

                    if stopping:
                        time.sleep(0.5)  # a moment into the tenth's load, with answers under way
                    fault = threading.Thread(
                        target=lambda: done.append(harm(args.fault, proxy.process.pid, args.outage_s)),
                        daemon=True,
                    )
                    if stopping:  # under way while the tenth's calls are
                        threading.Timer(0.5, fault.start).start()
                    else:
                        fault.start()
                started = time.perf_counter()
                counts = asyncio.run(
                    load(
                        proxy.port,
                        numbers,
                        args.connections,
                        args.stream_share,
                        expected,
                        answered,
                    )
                )
                tenths.append(len(numbers) / (time.perf_counter() - started))
                if proxy.process.poll() is None:
                    memory.append(rss_tree(proxy.process.pid))
                for key in totals:
                    totals[key] += counts[key]
                print(
                    f"tenth {tenth + 1}: {tenths[-1]:,.0f} requests/s, {counts}",
                    file=sys.stderr,
                    flush=True,
                )
                if stopping and tenth >= 3:
                    break
            if fault is not None:
                fault.join()
            import httpx

            if args.fault == "disk-full":
                grow_disk(small_disk)  # the operator's remedy: the spill goes back in at the writers' next idle moment
            if not stopping:
                deadline = time.monotonic() + 120  # what was spilled is loaded back at idle moments
                while spill.exists() and spill.stat().st_size and time.monotonic() < deadline:
                    time.sleep(0.5)
                time.sleep(2)  # the workers share their counts for /metrics once a second
                metrics = httpx.get(proxy.url + "/metrics").text
        finally:
            proxy.stop()
        lost_counted = -1.0
        if args.fault == "kill-proxy":  # the next start counts what the killed processes held (their ledgers)
            import httpx

            again = ProxyProcess(upstream.url, db, "--workers", "1", "--no-ui", env=env)
            try:
                time.sleep(2)  # the worker shares its counts for /metrics once a second
                lost_counted = counted_in(httpx.get(again.url + "/metrics").text, "lost")
            finally:
                again.stop()
        left_in_spill = 0
        if stopping and spill.exists():  # what the next start loads back, loaded now by the same code
            from agent_tracer.spill import reload_spill
            from agent_tracer.store import TraceStore

            with TraceStore(db) as store:
                left_in_spill = reload_spill(spill, store.write)
        check = recorded(db, args.calls, answered)
        if args.fault == "disk-full":
            unmount(small_disk)
    upstream_received = upstream.stop()

    def counted(stage: str) -> float:
        return counted_in(metrics, stage)

    dropped = counted("dropped")

    print(f"\nSoak: {args.calls:,} calls ({args.stream_share:.0%} streamed) through `proxy --workers {args.workers}`"
          f" into {'PostgreSQL' if args.db and args.db.startswith('postgresql') else 'SQLite'}, "
          f"{args.connections} connections")  # fmt: skip
    print(f"answers: {totals['ok']:,} ok, {totals['bad']:,} bad, {totals['socket_errors']:,} cut or reset, "
          f"{totals['refused']:,} clients refused; the upstream received {upstream_received:,}")  # fmt: skip
    print(f"requests/s: first tenth {tenths[0]:,.0f}, last tenth {tenths[-1]:,.0f}")
    print(f"store: {check}; dropped (counted): {dropped:g}" if metrics else f"store: {check}")
    if stopping:
        print(f"fault: {done[0] if done else 'not done'}; records left in the spill file and loaded back: "
              f"{left_in_spill:,}; calls answered whole but not recorded: {check['answered_missing']:,}")  # fmt: skip
    if args.fault == "kill-proxy":
        print(f'counted as lost by the next start (/metrics stage="lost"): {lost_counted:g} spans')
    elif args.fault:
        print(f"fault: {done[0] if done else 'not done'}; spans spilled {counted('spilled'):g}, "
              f"records loaded back {counted('reloaded'):g}, spans dropped {dropped:g}")  # fmt: skip
    print("resident memory, MB, at the end of the first and of the last tenth (with the proxy alive):")
    first, last = memory[0], memory[-1]
    every = {
        pid: [round(tenth.get(pid, ("", 0))[1] / 1024) for tenth in memory] for pid in sorted(set(first) | set(last))
    }
    for pid in sorted(set(first) | set(last)):
        role = (first.get(pid) or last.get(pid))[0]
        start = first.get(pid, ("", 0))[1] / 1024
        end = last.get(pid, ("", 0))[1] / 1024
        print(f"  {role:<7} {pid:>7}  {start:7.1f} → {end:7.1f}   after each tenth: {every[pid]}")
    if not stopping:
        once = check["rows"] == args.calls == check["runs_with_calls"] == check["ok_rows"]
        print(f"every call recorded exactly once: {'yes' if once else 'NO'}")


if __name__ == "__main__":
    main()
