"""Bad clients beside a good one: does the proxy keep answering within its latency goal? (issue 24)

    python bench/proxy_bad_clients.py [--calls 300] [--idle 10000] [--slow 500] [--only NAME ...]

`agent-tracer proxy` (one worker, recording into a fresh SQLite file) in front of the loopback
fake model (its own process). A good client, in this process, makes `--calls` timed Chat
Completions calls one after the other on one kept-alive connection (`proxy_clients.sequential`,
after 50 untimed), first straight to the fake model and through the idle proxy, then through the
proxy while each kind of bad client below is at it, from a process of its own:

- `idle`: `--idle` connections that each made one call and keep the connection open, idle
  (HTTP keep-alive), all opened at once before the timing; how many the proxy has closed by the
  end is counted (uvicorn closes a kept-alive connection after 5 s idle);
- `silent`: `--idle` connections that never send a byte;
- `slow`: `--slow` connections sending a whole call one byte every 50 ms (a slow sender, or a
  slowloris: its headers take about 10 s);
- `big-headers`: clients sending a call with a 1 MB header, one after the other;
- `big-body`: clients declaring a 100 MB body (over the proxy's 32 MiB limit), sending only the
  headers: the answer must come without the body;
- `half-closed`: `--slow` connections that send a whole call and shut their sending side
  (`shutdown(SHUT_WR)`), and as many that send half a call and shut it. Both are taken as
  clients that left (a half-close and a close look the same on the wire): no answer is expected.

These last three come as fast as the proxy answers them (a flood: the one worker's time is
theirs to take), or, with `--rate R`, R bad requests (connections, for half-closed) a second in
all, as a misbehaving client rather than an attack would send them.

Printed per kind: the good client's p50 and p99, the p50 added to the fake model's own, failed
good calls, and what the bad clients got (status codes, connections closed, answers). The goal:
the proxy adds at most 1 ms at p50 (BENCHMARKS.md, "Proxy overhead") while bad clients are at it.

`--pin`: the bad clients' process runs on the last core, and everything else (this process, the
proxy and its writer, the fake model) on the others, so that the figures measure what the proxy's
own handling of the bad clients costs the good one, not the bad clients' CPU taken from it (on
a real network they run on other machines).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_clients import BODY, percentile, request_bytes, sequential  # noqa: E402
from proxy_overhead import Upstream, probe_expected  # noqa: E402

KINDS = ("idle", "silent", "slow", "big-headers", "big-body", "half-closed")
FLOODS = ("big-headers", "big-body", "half-closed")
BYTE_EVERY_S = 0.05


def _status(data: bytes) -> str:
    """The status code of a response's first line, or what happened instead."""
    if not data:
        return "closed, no answer"
    first = data.split(b"\r\n", 1)[0].split()
    return first[1].decode() if len(first) > 1 and first[0].startswith(b"HTTP/") else "not HTTP"


async def _read_answer(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """What the server sends until it closes, a whole answer is in, or `timeout`."""
    data = b""
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return data
                data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                if _ and b"content-length:" in head.lower():
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    if len(body) >= length:
                        return data
                elif _ and body.endswith(b"0\r\n\r\n"):  # a chunked answer's end
                    return data
    except (TimeoutError, OSError):  # no more in time, or the connection reset
        return data


async def _bad(kind: str, port: int, n: int, rate: float, ready: Any, stop: Any) -> dict[str, Any]:
    seen: Counter[str] = Counter()
    call = request_bytes(port, BODY)
    open_ = asyncio.open_connection

    async def until_stopped() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.05)

    if kind in ("idle", "silent"):
        conns = []
        for start in range(0, n, 500):  # in waves: the listen backlog is finite
            batch = await asyncio.gather(*(open_("127.0.0.1", port) for _ in range(min(500, n - start))))
            if kind == "idle":
                for _, writer in batch:
                    writer.write(call)
                answers = await asyncio.gather(*(_read_answer(reader, 30) for reader, _ in batch))
                seen.update(_status(answer) for answer in answers)
            conns.extend(batch)
        ready.set()
        await until_stopped()
        closed = 0
        for reader, writer in conns:  # closed by the server: the read ends at once
            try:
                async with asyncio.timeout(0.001):
                    closed += await reader.read(1) == b""
            except TimeoutError:
                pass
            writer.close()
        seen[f"closed by the proxy by the end (of {len(conns)})"] = closed
        return dict(seen)

    if kind == "slow":

        async def one() -> None:
            reader, writer = await open_("127.0.0.1", port)
            for byte in range(len(call)):
                if stop.is_set():
                    seen["stopped mid-request"] += 1
                    writer.close()
                    return
                writer.write(call[byte : byte + 1])
                await writer.drain()
                await asyncio.sleep(BYTE_EVERY_S)
            seen[_status(await _read_answer(reader, 30))] += 1
            writer.close()

        tasks = [asyncio.create_task(one()) for _ in range(n)]
        await asyncio.sleep(1)
        ready.set()
        await asyncio.gather(*tasks)
        return dict(seen)

    if kind in ("big-headers", "big-body"):
        if kind == "big-headers":
            payload = call.replace(b"\r\n\r\n", b"\r\nX-Padding: " + b"a" * (1 << 20) + b"\r\n\r\n", 1)
        else:
            head, _, _ = call.partition(b"\r\n\r\n")
            size = 100 << 20
            head = head.replace(
                f"Content-Length: {len(call) - len(head) - 4}".encode(), f"Content-Length: {size}".encode()
            )
            payload = head + b"\r\n\r\n"  # the body is not sent: the answer must not wait for it

        async def one() -> None:
            next_at = time.monotonic()
            while not stop.is_set():
                if rate:  # each of the 4 clients starts one request every 4 / rate seconds
                    next_at += 4 / rate
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                reader, writer = await open_("127.0.0.1", port)
                try:
                    writer.write(payload)
                    await writer.drain()
                    seen[_status(await _read_answer(reader, 10))] += 1
                except OSError:
                    seen["reset while sending"] += 1
                finally:
                    writer.close()

        tasks = [asyncio.create_task(one()) for _ in range(4)]
        await asyncio.sleep(0.5)
        ready.set()
        await asyncio.gather(*tasks)
        return dict(seen)

    # half-closed: whole calls and half calls, each followed by shutdown(SHUT_WR)
    async def half(whole: bool) -> None:
        reader, writer = await open_("127.0.0.1", port)
        writer.write(call if whole else call[: len(call) // 2])
        await writer.drain()
        writer.write_eof()
        answer = await _read_answer(reader, 10)
        seen[f"{'whole' if whole else 'half'} call: {_status(answer)}"] += 1
        writer.close()

    if rate:  # one connection every 1 / rate seconds, whole and half calls in turn
        ready.set()
        tasks, whole = [], True
        while not stop.is_set():
            tasks.append(asyncio.create_task(half(whole)))
            whole = not whole
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
        return dict(seen)
    waves = 0
    ready.set()
    while not stop.is_set():
        await asyncio.gather(*(half(whole) for whole in (True, False) for _ in range(n // 10)))
        waves += 1
    seen["waves"] = waves
    return dict(seen)


def _bad_process(
    kind: str, port: int, n: int, rate: float, ready: Any, stop: Any, out: Any, cores: set[int] | None
) -> None:
    if cores:
        os.sched_setaffinity(0, cores)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    out.put(asyncio.run(_bad(kind, port, n, rate, ready, stop)))


def _summary(result: dict[str, Any], direct_p50: float) -> str:
    ns = sorted(result["ns"])
    p50, p99 = percentile(ns, 50), percentile(ns, 99)
    return f"| {p50:,.0f} | {p99:,.0f} | {p50 - direct_p50:+,.0f} | {result['bad']} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="the good client's timed calls (default 300)")
    parser.add_argument("--idle", type=int, default=10_000, help="idle and silent connections (default 10,000)")
    parser.add_argument("--slow", type=int, default=500, help="slow and half-closed connections (default 500)")
    parser.add_argument("--only", nargs="+", choices=KINDS, help="only these kinds")
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="big-headers, big-body and half-closed: bad requests a second in all (default 0: as fast as answered)",
    )
    parser.add_argument("--pin", action="store_true", help="the bad clients on the last core, the rest on the others")
    args = parser.parse_args()

    from agent_tracer.proxy.process import ProxyProcess

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"Python {platform.python_version()}, {os.cpu_count()} cores; open files limit {soft} (hard {hard})")
    expected = probe_expected()
    upstream = Upstream()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-bad-clients-") as tmp:
        proxy = ProxyProcess(upstream.url, Path(tmp) / "bad.db", "--no-ui")
        bad_cores = None
        if args.pin:
            import psutil

            cores = sorted(os.sched_getaffinity(0))
            if len(cores) < 2:
                raise SystemExit("--pin needs two cores or more")
            bad_cores, ours = {cores[-1]}, set(cores[:-1])
            for pid in (os.getpid(), upstream.proc.pid, proxy.process.pid):
                for process in (psutil.Process(pid), *psutil.Process(pid).children(recursive=True)):
                    for thread in process.threads():  # each thread has its own affinity
                        os.sched_setaffinity(thread.id, ours)
            print(f"pinned: the bad clients on core {cores[-1]}, the rest on {sorted(ours)}")
        try:
            direct = sequential(upstream.port, False, args.calls, 50, expected)
            direct_p50 = percentile(sorted(direct["ns"]), 50)
            direct_p99 = percentile(sorted(direct["ns"]), 99)
            rows.append(
                f"| none: straight to the fake model | {direct_p50:,.0f} | {direct_p99:,.0f} | | {direct['bad']} | |"
            )
            quiet = sequential(proxy.port, False, args.calls, 50, expected)
            rows.append(f"| none: through the idle proxy {_summary(quiet, direct_p50)} |")
            context = multiprocessing.get_context("spawn")
            for kind in args.only or KINDS:
                n = args.idle if kind in ("idle", "silent") else args.slow
                ready, stop, out = context.Event(), context.Event(), context.Queue()
                child = context.Process(
                    target=_bad_process, args=(kind, proxy.port, n, args.rate, ready, stop, out, bad_cores)
                )
                started = time.monotonic()
                child.start()
                if not ready.wait(timeout=300):
                    raise RuntimeError(f"the {kind} clients did not get going")
                set_up = time.monotonic() - started
                good = sequential(proxy.port, False, args.calls, 50, expected)
                stop.set()
                seen = out.get(timeout=120)
                child.join(timeout=30)
                what = ", ".join(f"{key}: {value:,}" for key, value in sorted(seen.items()))
                label = f"{kind} ({n:,})" if kind in ("idle", "silent", "slow") else kind
                if kind in FLOODS:
                    label += f", {args.rate:,.0f} a second" if args.rate else ", as fast as answered"
                    label += f" ({2 * (n // 10)} a wave)" if kind == "half-closed" and not args.rate else ""
                rows.append(f"| {label}, set up in {set_up:.1f} s {_summary(good, direct_p50)} {what} |")
                print(rows[-1], file=sys.stderr, flush=True)
                if proxy.process.poll() is not None:
                    rows.append(f"| the proxy exited with {proxy.process.returncode} | | | | | |")
                    break
        finally:
            proxy.stop()
            upstream.stop()
    print()
    print(
        "| bad clients | good p50 µs | good p99 µs | p50 added to the fake model's | good calls failed "
        "| what the bad clients got |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
